"""History: the indexes behind the chains (a position once per chain; the legacy chains;
the latest sealed head of each chain). Apart from the columns' migration because Piccolo
runs raw steps before adding columns."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-29T20:40:07:000000"
VERSION = "1.38.0"
DESCRIPTION = "history chain indexes"

INDEXES = [
    # One event per position of a chain: two writers can never fork it.
    ("history_event_chain_seq", "history_event", "chain, seq", True, ""),
    # The legacy chains (events written before chains were split), walked by company.
    ("history_event_legacy", "history_event", "company, id", False, "WHERE chain IS NULL"),
    ("history_checkpoint_head_chain", "history_checkpoint_head", "chain, checkpoint", False, ""),
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
