"""Staff login rate limiting: failed attempts counted per client address and email.

Failures live in the database, not in process memory, so the limit holds however many
web processes share the Postgres. Only hashes of the address and email are stored: the
table says nothing about who tried what.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from piccolo.columns import Serial, Timestamptz, Varchar
from piccolo.table import Table

WINDOW = timedelta(minutes=15)
MAX_PER_ACCOUNT = 5
"""Failures for one email from one address within WINDOW before that pair is locked."""
MAX_PER_ADDRESS = 30
"""Failures from one address (any emails) within WINDOW: stops spraying many accounts."""


class LoginFailure(Table, tablename="login_failure"):
    """One refused staff login. Rows older than the window are pruned as new ones arrive."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    pair_key = Varchar(length=64, index=True, help_text="SHA-256 of address and email.")
    address_key = Varchar(length=64, index=True, help_text="SHA-256 of the client address.")
    failed_at = Timestamptz(index=True)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _keys(address: str, email: str) -> tuple[str, str]:
    address = (address or "unknown").strip()
    return _digest("pair", address, email.strip().lower()), _digest("addr", address)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    """Seconds until the next attempt may be made, when refused."""


async def check(address: str, email: str, now: datetime | None = None) -> Verdict:
    """May this address try a password for this email now?"""
    now = now or datetime.now(UTC)
    pair, addr = _keys(address, email)
    since = now - WINDOW
    for column, key, limit in (
        (LoginFailure.pair_key, pair, MAX_PER_ACCOUNT),
        (LoginFailure.address_key, addr, MAX_PER_ADDRESS),
    ):
        rows = (
            await LoginFailure.select(LoginFailure.failed_at)
            .where((column == key) & (LoginFailure.failed_at > since))
            .order_by(LoginFailure.failed_at, ascending=False)
            .limit(limit)
        )
        if len(rows) >= limit:
            # Locked until the oldest of the last `limit` failures leaves the window.
            oldest = min(r["failed_at"] for r in rows)
            wait = (oldest + WINDOW - now).total_seconds()
            return Verdict(False, max(1, int(wait) + 1))
    return Verdict(True)


async def record_failure(address: str, email: str, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    pair, addr = _keys(address, email)
    await LoginFailure.delete().where(LoginFailure.failed_at < now - WINDOW)
    await LoginFailure.insert(LoginFailure(pair_key=pair, address_key=addr, failed_at=now))


async def clear(address: str, email: str) -> None:
    """A successful login forgets that pair's failures (not the address's)."""
    pair, _ = _keys(address, email)
    await LoginFailure.delete().where(LoginFailure.pair_key == pair)
