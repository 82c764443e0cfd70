"""Dunning: business keys as unique indexes (SQLite cannot ALTER TABLE ADD CONSTRAINT) and the
indexes behind the daily run and the agenda."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-22T06:17:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dunning unique keys and lookup indexes"

INDEXES = [
    ("message_template_unique", "message_template", "company, code, language", True, ""),
    ("reference_rate_unique", "reference_rate", "source, effective_from", True, ""),
    # One default scenario per payer profile and company.
    (
        "scenario_profile_unique",
        "dunning_scenario",
        "company, payer_profile",
        True,
        "WHERE payer_profile IS NOT NULL",
    ),
    ("dunning_action_customer_cycle", "dunning_action", "customer, cycle_start", False, ""),
    # The agenda: open actions by date.
    (
        "dunning_action_open",
        "dunning_action",
        "due_on, customer",
        False,
        "WHERE status IN ('due', 'to_confirm')",
    ),
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="receivables", description=DESCRIPTION)

    async def create_indexes():
        engine = engine_finder()
        for name, table, columns, unique, where in INDEXES:
            kind = "UNIQUE INDEX" if unique else "INDEX"
            await engine.run_ddl(
                f"CREATE {kind} IF NOT EXISTS {name} ON {table} ({columns}) {where}".strip()
            )

    async def drop_indexes():
        engine = engine_finder()
        for name, *_ in INDEXES:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
