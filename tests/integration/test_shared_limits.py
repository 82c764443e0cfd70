"""Rate limits kept in the database: they hold across apps, processes and concurrent requests,
and count the client X-Forwarded-For names only when a trusted proxy says so."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app import create_app
from portal.access import LINK_LIMIT
from receivables.access.rate_limits import RateLimit, RateLimitWindow, client_bucket
from receivables.history import HistoryEvent
from tests.conftest import app_client
from tests.integration.test_portal_support import make_account

ROOT = Path(__file__).resolve().parents[2]
DEAD = "/p/no-such-link"
T0 = 1_800_000_000  # a window start for 60 s windows


async def test_the_link_limit_holds_across_two_apps_on_one_database(db, settings, databases):
    """Two web processes each used to allow their own 30 a minute."""
    engine = await databases.get(db)
    first, second = create_app(settings, engine=engine), create_app(settings, engine=engine)
    async with app_client(first) as a, app_client(second) as b:
        statuses = []
        for _ in range(15):
            statuses.append((await a.get(DEAD)).status_code)
            statuses.append((await b.get(DEAD)).status_code)
        assert statuses == [404] * 30
        limited = await b.get(DEAD)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert (await a.get(DEAD)).status_code == 429


async def test_the_limit_holds_across_processes(db, databases):
    """Another process spends 20 of the client's 30 attempts; this one gets the other 10."""
    await databases.get(db)
    script = textwrap.dedent(
        f"""
        import asyncio
        from portal.access import LINK_LIMIT
        from receivables import db

        async def main():
            engine = db.make_engine({databases.urls[db]!r})
            db.use_engine(engine)
            await db.start(engine, pool_size=2)
            allowed = [await LINK_LIMIT.hit("198.51.100.7") is None for _ in range(20)]
            await db.stop(engine)
            print(sum(allowed))

        asyncio.run(main())
        """
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "20"
    here = [await LINK_LIMIT.hit("198.51.100.7") is None for _ in range(11)]
    assert here == [True] * 10 + [False]


async def test_concurrent_attempts_cannot_pass_the_limit(pg_db):
    """One atomic upsert per attempt: 50 at once on separate connections, 30 pass."""
    limit = RateLimit("test.burst", limit=30, window_seconds=60)
    waits = await asyncio.gather(*(limit.hit("198.51.100.7") for _ in range(50)))
    assert sum(w is None for w in waits) == 30
    assert all(w >= 1 for w in waits if w is not None)


async def test_the_window_slides_and_old_windows_are_forgotten(db):
    limit = RateLimit("test.slide", limit=3, window_seconds=60)
    assert [await limit.hit("c", now=T0 + 1) for _ in range(3)] == [None] * 3
    # Full: the next window must start, and this one's three slide out of it.
    assert await limit.hit("c", now=T0 + 1) == pytest.approx(79)
    # Half-way through the next window, half of the three (rounded up) still count.
    assert await limit.hit("c", now=T0 + 90) is None
    assert await limit.hit("c", now=T0 + 90) == pytest.approx(10)
    # Refused attempts were not counted; another client was never limited.
    assert await limit.hit("other", now=T0 + 90) is None
    # A new window deletes the rows nobody can need any more (those of two windows ago).
    assert await limit.hit("c", now=T0 + 150) is None
    keys = [r["key"] for r in await RateLimitWindow.select(RateLimitWindow.key)]
    assert all(not key.endswith(f"@{T0}") for key in keys)
    assert sum(key.endswith(f"@{T0 + 60}") for key in keys) == 2


def test_an_ipv6_client_is_its_64():
    assert client_bucket("2001:db8:1:2:3:4:5:6") == client_bucket("2001:db8:1:2::9")
    assert client_bucket("2001:db8:1:3::9") != client_bucket("2001:db8:1:2::9")
    assert client_bucket("198.51.100.7") == "198.51.100.7"


async def _opened_from(settings, databases, db, forwarded_for: str) -> str:
    """The address the history records for a link opened through an X-Forwarded-For."""
    account = await make_account(settings)
    app = create_app(settings, engine=await databases.get(db))
    async with app_client(app) as client:  # its peer: 203.0.113.7
        r = await client.get(account.path, headers={"X-Forwarded-For": forwarded_for})
        assert r.status_code == 303
    event = (
        await HistoryEvent.select(HistoryEvent.details)
        .where(
            (HistoryEvent.kind == "portal.link_opened")
            & (HistoryEvent.customer == account.customer.id)
        )
        .first()
    )
    assert event is not None
    return json.loads(event["details"])["ip"]


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(db, settings, databases):
    assert await _opened_from(settings, databases, db, "198.51.100.7") == "203.0.113.7"
    app = create_app(settings, engine=await databases.get(db))
    async with app_client(app) as client:
        # A guesser varying the header still spends its own address's attempts (one went
        # on opening the link above).
        statuses = [
            (await client.get(DEAD, headers={"X-Forwarded-For": f"198.51.100.{n}"})).status_code
            for n in range(30)
        ]
    assert statuses == [404] * 29 + [429]


async def test_x_forwarded_for_is_believed_from_a_trusted_proxy(db, settings, databases):
    behind = dataclasses.replace(settings, trusted_proxies=("203.0.113.0/24",))
    # The right-most address that is not one of our proxies; what the client wrote is left.
    assert (
        await _opened_from(behind, databases, db, "6.6.6.6, 198.51.100.7, 203.0.113.20")
        == "198.51.100.7"
    )
    app = create_app(behind, engine=await databases.get(db))
    async with app_client(app) as client:
        one = {"X-Forwarded-For": "198.51.100.1"}
        assert [(await client.get(DEAD, headers=one)).status_code for _ in range(31)] == [
            404
        ] * 30 + [429]
        # Each customer behind the proxy has its own allowance...
        assert (
            await client.get(DEAD, headers={"X-Forwarded-For": "198.51.100.2"})
        ).status_code == 404
        # ... and cannot borrow another's by writing it in the header first.
        spoofed = {"X-Forwarded-For": "198.51.100.2, 198.51.100.1"}
        assert (await client.get(DEAD, headers=spoofed)).status_code == 429
