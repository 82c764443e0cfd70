"""Test fixtures: a real database per engine (SQLite file, Postgres database unique to the run).

`db` is parametrised over both engines: a test taking it runs on SQLite always and on
Postgres when 127.0.0.1:5432 answers (with REQUIRE_POSTGRES=1 an unreachable Postgres is
a failure, not a skip). Every test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from receivables.db import all_tables, make_engine, migrate, start, stop, use_engine

# localstripe and the live app (`stripe_emulator`, `live_app`) for every module: one emulator
# for the whole session. A module that imported the fixture got its own copy, started once
# per module.
pytest_plugins = ["tests.stripe_emulator"]

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
ENGINES = ["sqlite", "postgres"]


def _postgres_reachable() -> str | None:
    """None when Postgres answers, else the reason it does not."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(
            PG_ADMIN_URL.replace("postgres://", "postgresql://"), timeout=3
        )
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure means: not usable here
        return f"{type(exc).__name__}: {exc}"
    return None


_PG_PROBLEM = _postgres_reachable()


def require_postgres() -> None:
    """Fail when Postgres is required but absent (its tests are skipped at collection else)."""
    if _PG_PROBLEM is None:
        return
    pytest.fail(f"Postgres at {PG_ADMIN_URL} is not reachable ({_PG_PROBLEM})", pytrace=False)


def _uses_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    on_postgres = callspec is not None and callspec.params.get("db") == "postgres"
    return on_postgres or "pg_db" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Postgres, its tests are skipped with the reason, unless REQUIRE_POSTGRES=1."""
    if _PG_PROBLEM is None or os.environ.get("REQUIRE_POSTGRES") == "1":
        return
    reason = f"Postgres at {PG_ADMIN_URL} is not reachable ({_PG_PROBLEM}); Postgres tests skipped"
    marker = pytest.mark.skipif(True, reason=reason)
    for item in items:
        if _uses_postgres(item):
            item.add_marker(marker)


class _Databases:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.engines: dict[str, object] = {}
        self.urls: dict[str, str] = {}
        self.pg_name = f"relance_test_{uuid.uuid4().hex[:10]}"

    async def get(self, name: str):
        if name in self.engines:
            return self.engines[name]
        if name == "sqlite":
            url = f"sqlite:///{self.tmp / 'test.sqlite3'}"
        else:
            require_postgres()
            import asyncpg

            admin = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"))
            await admin.execute(f'CREATE DATABASE "{self.pg_name}"')
            await admin.close()
            base = PG_ADMIN_URL.rsplit("/", 1)[0]
            url = f"{base}/{self.pg_name}"
        engine = make_engine(url)
        await migrate(engine)
        await start(engine)
        self.engines[name] = engine
        self.urls[name] = url
        return engine

    async def close(self) -> None:
        for engine in self.engines.values():
            await stop(engine)
        if "postgres" in self.engines:
            import asyncpg

            admin = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"))
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                self.pg_name,
            )
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}"')
            await admin.close()


@pytest.fixture(scope="session")
async def databases(tmp_path_factory) -> AsyncIterator[_Databases]:
    dbs = _Databases(tmp_path_factory.mktemp("db"))
    yield dbs
    await dbs.close()


async def _empty_all_tables(engine) -> None:
    """Empty what the previous test wrote, ids restarting at 1.

    On Postgres only the tables whose id sequence moved are emptied (DELETE, children first)
    and their sequences reset: a TRUNCATE of every table cost 320 ms a test (its CASCADE
    rewrites every table), this 1-10 ms (measured on this machine)."""
    names = [t._meta.tablename for t in all_tables()]
    if engine.engine_type == "postgres":
        from receivables.ledger.tables import Company

        moved = await Company.raw(
            "SELECT sequencename FROM pg_sequences "
            "WHERE schemaname = 'public' AND last_value IS NOT NULL"
        )
        dirty = {r["sequencename"].removesuffix("_id_seq") for r in moved} & set(names)
        for name in reversed(names):
            if name in dirty:
                await engine.run_ddl(f"DELETE FROM {name}")
        if dirty:
            await engine.run_ddl(
                "SELECT "
                + ", ".join(f"setval('{name}_id_seq', 1, false)" for name in sorted(dirty))
            )
    else:
        for name in reversed(names):
            await engine.run_ddl(f"DELETE FROM {name}")


@pytest.fixture(params=ENGINES)
async def db(request, databases) -> AsyncIterator[str]:
    """An empty, migrated database on the engine of the parameter; yields the engine name."""
    engine = await databases.get(request.param)
    use_engine(engine)
    await _empty_all_tables(engine)
    yield request.param


@pytest.fixture
async def sqlite_db(databases) -> AsyncIterator[str]:
    """For tests that are about SQLite only."""
    engine = await databases.get("sqlite")
    use_engine(engine)
    await _empty_all_tables(engine)
    yield "sqlite"


@pytest.fixture
async def pg_db(databases) -> AsyncIterator[str]:
    """For tests that need Postgres (row locks, several connections)."""
    engine = await databases.get("postgres")
    use_engine(engine)
    await _empty_all_tables(engine)
    yield "postgres"


TEST_SECRET = "test-secret-key-" + "x" * 32


@pytest.fixture
def settings():
    from receivables.settings import load_settings

    return load_settings({"SECRET_KEY": TEST_SECRET, "BASE_URL": "http://testserver.local"})


@pytest.fixture
async def client(db, settings, databases):
    """An HTTP client on the real app, bound to the test's database."""
    from app import create_app

    app = create_app(settings, engine=await databases.get(db))
    async with app_client(app) as c:
        yield c


def app_settings(app):
    """The settings an app was built with, as its handlers receive them (web/deps.py)."""
    return app.dependencies["settings"].dependency()


def app_client(app):
    """httpx on the ASGI app in this event loop (Litestar's test client runs the app in another
    thread's loop, where the Postgres pool of the session cannot be used)."""
    import httpx

    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver.local")
