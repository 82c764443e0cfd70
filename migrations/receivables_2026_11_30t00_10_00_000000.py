"""Indexes behind cash application, the payments list and the finance export (partial indexes
work on SQLite and Postgres alike)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-30T00:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "cash application and payments list indexes"

INDEXES = [
    # The payments list (newest received first, keyset on received date and id) and the
    # export (payments received in a date range).
    ("payment_received_on_id", "payment", "received_on, id", ""),
    # Unapplied money: the few payments with a remainder, the few open credit notes.
    ("payment_unapplied", "payment", "customer", "WHERE unapplied_minor > 0"),
    (
        "item_open_credit_note",
        "item",
        "customer",
        "WHERE kind = 'credit_note' AND open_minor > 0",
    ),
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="receivables", description=DESCRIPTION)

    async def create_indexes():
        engine = engine_finder()
        for name, table, columns, where in INDEXES:
            await engine.run_ddl(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns}) {where}".strip()
            )

    async def drop_indexes():
        engine = engine_finder()
        for name, *_ in INDEXES:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
