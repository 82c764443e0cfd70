"""Database engines: build one from DATABASE_URL, bind the tables to it, run migrations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.table import Table


def make_engine(database_url: str) -> Engine:
    """An engine for `sqlite:///FILE` or `postgres://USER@HOST:PORT/DB` (not yet connected)."""
    if database_url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(database_url)
        config = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "user": unquote(parts.username or "postgres"),
            "database": parts.path.lstrip("/"),
        }
        if parts.password:
            config["password"] = unquote(parts.password)
        return PostgresEngine(config=config, log_queries=False)
    path = Path(database_url.removeprefix("sqlite:///"))
    # A generous busy timeout: web, worker and CLI share the file.
    return SQLiteEngine(path=str(path), timeout=30)


def all_tables() -> list[type[Table]]:
    from receivables.piccolo_app import APP_CONFIG

    return list(APP_CONFIG.table_classes)


def use_engine(engine: Engine) -> None:
    """Point every table (ours and Piccolo's migration table) and piccolo_conf at `engine`."""
    from piccolo.apps.migrations.tables import Migration

    tables: list[type[Table]] = [*all_tables(), Migration]
    for table in tables:
        table._meta.db = engine
    import piccolo_conf  # the module Piccolo's own tooling reads its engine from

    piccolo_conf.DB = engine


def current_engine() -> Engine:
    from receivables.ledger.tables import Company

    return Company._meta.db


def is_postgres(engine: Engine | None = None) -> bool:
    return (engine or current_engine()).engine_type == "postgres"


@contextlib.asynccontextmanager
async def atomic() -> AsyncIterator[None]:
    """One transaction; joins the caller's transaction when there is one.

    On SQLite it starts IMMEDIATE so two writers queue for the lock up front instead of
    failing on upgrade; on Postgres rows are locked where the service needs it.
    """
    engine = current_engine()
    if engine.current_transaction.get() is not None:
        yield
        return
    if isinstance(engine, SQLiteEngine):
        async with engine.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with engine.transaction():
            yield


DEFAULT_POOL_SIZE = 5


async def _keep_session(connection: object) -> None:
    """What a connection's release runs after asyncpg has rolled back any transaction left
    open: nothing more. asyncpg's default adds `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL` on every release, and Piccolo releases after every statement run
    outside a transaction: it was 1,503 of the webhook bench's 9,912 statements, and costs
    a stored webhook 0.1-0.3 ms of web CPU and 0.15 ms of Postgres (bench/webhooks.py
    --asyncpg-reset). Nothing here leaves session state to reset: advisory locks are
    transaction-scoped (`pg_advisory_xact_lock`), cursors end with their transaction, nothing
    LISTENs or SETs. Connections kept for LISTEN or session settings must not come from
    this pool."""


async def start(engine: Engine, pool_size: int = DEFAULT_POOL_SIZE) -> None:
    """Open the pool of at most `pool_size` connections (Postgres: DATABASE_POOL_SIZE) and
    set per-file pragmas (SQLite)."""
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool(min_size=1, max_size=pool_size, reset=_keep_session)
    else:
        await engine.run_ddl("PRAGMA journal_mode=WAL")


async def stop(engine: Engine) -> None:
    if isinstance(engine, PostgresEngine):
        await engine.close_connection_pool()


async def migrate(engine: Engine) -> None:
    """Bring the database to the latest schema with the committed Piccolo migrations."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    use_engine(engine)
    if isinstance(engine, SQLiteEngine):
        Path(engine.path).parent.mkdir(parents=True, exist_ok=True)
        await engine.run_ddl("PRAGMA journal_mode=WAL")
    result = await run_forwards(app_name="receivables")
    if not result.success:
        raise RuntimeError(f"migration failed: {result.message}")
