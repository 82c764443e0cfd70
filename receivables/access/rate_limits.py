"""Rate limits kept in the database, so they hold however many processes share it.

Each limit counts attempts per client in fixed windows, one row per (limit, client, window)
incremented by one atomic upsert. A sliding window is estimated from the current window
and the part of the previous one still inside it (the previous count is rounded up, so a
burst across a window's edge is not let through twice). The upsert only counts an attempt
while the estimate is under the limit: on Postgres its row lock and on SQLite the write
lock serialise concurrent attempts, so at most `limit` pass whatever their number.
Refused attempts are not counted. Clients are stored as hashes; rows of windows past are
deleted as new windows open.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from piccolo.columns import BigInt, Integer, Serial, Varchar
from piccolo.table import Table

from receivables.db import is_postgres


class RateLimitWindow(Table, tablename="rate_limit_window"):
    """Attempts of one client against one limit within one window."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    key = Varchar(
        length=100,
        unique=True,
        help_text="Limit name, SHA-256 of the client (40 hex digits) and window start.",
    )
    hits = Integer(default=0)
    expires_at = BigInt(index=True, help_text="Unix time after which the row is useless.")


def client_bucket(address: str) -> str:
    """What one client is, for counting: its IP, or its /64 for IPv6 (one subscriber's
    network hands out addresses from a /64 at will)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


async def _prune(now: int) -> None:
    if is_postgres(RateLimitWindow._meta.db):
        # Rows another pruner is deleting are skipped, not waited for (nor deadlocked on).
        await RateLimitWindow.raw(
            "DELETE FROM rate_limit_window WHERE id IN (SELECT id FROM rate_limit_window "
            "WHERE expires_at < {} LIMIT 1000 FOR UPDATE SKIP LOCKED)",
            now,
        )
    else:
        await RateLimitWindow.delete().where(RateLimitWindow.expires_at < now)


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` attempts per client within any `window_seconds` (estimated)."""

    name: str
    limit: int
    window_seconds: int

    def _key(self, client: str, window_start: int) -> str:
        digest = hashlib.sha256(f"{self.name}\x1f{client}".encode()).hexdigest()[:40]
        return f"{self.name}:{digest}@{window_start}"

    async def _hits(self, key: str) -> int:
        row = (
            await RateLimitWindow.select(RateLimitWindow.hits)
            .where(RateLimitWindow.key == key)
            .first()
        )
        return int(row["hits"]) if row else 0

    async def hit(self, client: str, now: float | None = None) -> float | None:
        """Count an attempt: None when allowed, else the seconds to wait before the next."""
        now = time.time() if now is None else now
        window = self.window_seconds
        start = int(now // window) * window
        remaining = 1 - (now - start) / window  # share of the previous window still inside
        previous = await self._hits(self._key(client, start - window))
        cap = self.limit - math.ceil(round(previous * remaining, 6))
        key = self._key(client, start)
        if cap > 0:
            rows = await RateLimitWindow.raw(
                "INSERT INTO rate_limit_window (key, hits, expires_at) VALUES ({}, 1, {}) "
                "ON CONFLICT (key) DO UPDATE SET hits = rate_limit_window.hits + 1 "
                "WHERE rate_limit_window.hits < {} RETURNING hits",
                key,
                start + 2 * window,
                cap,
            )
            if rows:
                if rows[0]["hits"] == 1:  # a new window: forget the windows past
                    await _prune(int(now))
                return None
        current = await self._hits(key)
        return max(1.0, self._wait(previous, current, now - start))

    def _wait(self, previous: int, current: int, elapsed: float) -> float:
        """Seconds until the estimate drops below the limit again."""
        window, room = self.window_seconds, self.limit - 1 - current
        if room >= 0:  # this window has room once enough of the previous one has slid out
            return window * (1 - room / previous) - elapsed if previous else 0.0
        # The next window, where this one's count is the one sliding out.
        return (window - elapsed) + window * max(0.0, 1 - (self.limit - 1) / current)

    async def undo(self, client: str, now: float | None = None) -> None:
        """Give back one counted attempt (a sign-in that succeeded)."""
        now = time.time() if now is None else now
        start = int(now // self.window_seconds) * self.window_seconds
        for window_start in (start, start - self.window_seconds):
            rows = await RateLimitWindow.raw(
                "UPDATE rate_limit_window SET hits = hits - 1 WHERE key = {} AND hits > 0 "
                "RETURNING hits",
                self._key(client, window_start),
            )
            if rows:
                return

    async def forget(self, client: str, now: float | None = None) -> None:
        """Forget the client's attempts against this limit."""
        now = time.time() if now is None else now
        start = int(now // self.window_seconds) * self.window_seconds
        keys = [self._key(client, start), self._key(client, start - self.window_seconds)]
        await RateLimitWindow.delete().where(RateLimitWindow.key.is_in(keys))
