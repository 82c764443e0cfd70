"""Payments: business keys as unique indexes (SQLite cannot ALTER TABLE ADD CONSTRAINT) and the
indexes behind the finance pages."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-22T06:34:31:000000"
VERSION = "1.38.0"
DESCRIPTION = "payments unique keys and lookup indexes"

INDEXES = [
    # The same file imports once; a bank line (by the bank's own reference) once.
    ("bank_statement_file_unique", "bank_statement", "company, sha256", True),
    ("bank_line_dedup_unique", "bank_line", "company, dedup_key", True),
    ("online_payment_item_unique", "online_payment_item", "online_payment, item", True),
    # Finance lists: payments by date, open exceptions.
    ("online_payment_succeeded", "online_payment", "succeeded_at", False),
    ("finance_exception_open", "finance_exception", "resolved_at, created_at", False),
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="receivables", description=DESCRIPTION)

    async def create_indexes():
        engine = engine_finder()
        for name, table, columns, unique in INDEXES:
            kind = "UNIQUE INDEX" if unique else "INDEX"
            await engine.run_ddl(f"CREATE {kind} IF NOT EXISTS {name} ON {table} ({columns})")

    async def drop_indexes():
        engine = engine_finder()
        for name, *_ in INDEXES:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
