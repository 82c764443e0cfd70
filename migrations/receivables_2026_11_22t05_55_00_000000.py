"""Business keys as unique indexes (SQLite cannot ALTER TABLE ADD CONSTRAINT) and lookup indexes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-22T05:55:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique business keys and lookup indexes"

INDEXES = [
    ("customer_ref_unique", "customer", "company, ref", True),
    ("contact_email_unique", "contact", "customer, email", True),
    ("item_number_unique", "item", "company, number", True),
    ("payment_ref_unique", "payment", "company, ref", True),
    ("item_customer_due", "item", "customer, due_date", False),
    ("history_company_id", "history_event", "company, id", False),
    ("history_customer_id", "history_event", "customer, id", False),
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
