"""Staff sign-in limits: attempts counted per client address and email, in the database.

An attempt is counted before its password is checked (`attempt`), with the atomic counters
of `receivables.access.rate_limits`, so the limit holds however many requests arrive at
once and however many web processes share the database: counting failures after the check
let every request that was already checking through. A sign-in that succeeds gives its
attempt back (`succeeded`): what stays counted are failures and attempts under way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from receivables.access.rate_limits import RateLimit, client_bucket

WINDOW = timedelta(minutes=15)
MAX_PER_ACCOUNT = 5
"""Attempts for one email from one address within WINDOW before that pair is locked."""
MAX_PER_ADDRESS = 30
"""Attempts from one address (any emails) within WINDOW: stops spraying many accounts."""

PAIR_LIMIT = RateLimit("login.pair", MAX_PER_ACCOUNT, int(WINDOW.total_seconds()))
ADDRESS_LIMIT = RateLimit("login.address", MAX_PER_ADDRESS, int(WINDOW.total_seconds()))


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    """Seconds until the next attempt may be made, when refused."""


def _clients(address: str, email: str) -> tuple[str, str]:
    where = client_bucket((address or "unknown").strip())
    return f"{where}\x1f{email.strip().lower()}", where


async def attempt(address: str, email: str, now: float | None = None) -> Verdict:
    """Count an attempt to sign in as `email` from `address`, or refuse it."""
    pair, where = _clients(address, email)
    wait = await PAIR_LIMIT.hit(pair, now)
    if wait is None:
        wait = await ADDRESS_LIMIT.hit(where, now)
        if wait is None:
            return Verdict(True)
        await PAIR_LIMIT.undo(pair, now)  # refused: it was not tried
    return Verdict(False, int(wait) + 1)


async def succeeded(address: str, email: str, now: float | None = None) -> None:
    """The password was right: that pair starts afresh, the address gets its attempt back."""
    pair, where = _clients(address, email)
    await PAIR_LIMIT.forget(pair, now)
    await ADDRESS_LIMIT.undo(where, now)
