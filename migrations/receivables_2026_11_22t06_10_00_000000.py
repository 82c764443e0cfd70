"""Back office: the indexes behind the customer list (per-customer figures, name order)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-22T06:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes for the customer list: open invoices, name order"

# Only open, uncancelled invoices: a small slice of the item table, enough to compute each
# customer's overdue amount and oldest due date without reading the table itself.
# The WHERE must match receivables.ledger.customer_list._OPEN_INVOICE for the planners to use it.
INDEXES = [
    (
        "item_open_invoice",
        "item (customer, due_date, currency, open_minor) "
        "WHERE kind = 'invoice' AND open_minor > 0 AND status <> 'cancelled'",
    ),
    # Pages of the list by name: the page's ids come from the index alone, however deep.
    ("customer_name_id", "customer (name, id)"),
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="receivables", description=DESCRIPTION)

    async def create_indexes():
        engine = engine_finder()
        for name, definition in INDEXES:
            await engine.run_ddl(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")

    async def drop_indexes():
        engine = engine_finder()
        for name, _ in INDEXES:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
