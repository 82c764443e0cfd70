"""API keys for ERPs: shown once at creation, stored as SHA-256, sent as a bearer token."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from receivables.access.tables import ApiKey
from receivables.ledger.tables import Company

PREFIX = "rk_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(company: Company, name: str) -> tuple[ApiKey, str]:
    """A new key; the clear value is returned once and never stored."""
    clear = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(company=company.id, name=name, prefix=clear[:10], key_hash=_digest(clear))
    await key.save()
    return key, clear


async def resolve_key(clear: str) -> ApiKey | None:
    """The active key matching `clear`, or None. The lookup is by hash, never by value."""
    if not clear.startswith(PREFIX) or len(clear) > 200:
        return None
    key = await ApiKey.objects().get(
        (ApiKey.key_hash == _digest(clear)) & ApiKey.revoked_at.is_null()
    )
    now = datetime.now(UTC)
    # A write per call would serialise API traffic on SQLite: stamp at most once a minute.
    if key is not None and (
        key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1)
    ):
        await ApiKey.update({ApiKey.last_used_at: now}).where(ApiKey.id == key.id)
    return key


async def revoke_key(prefix: str, company: Company) -> int:
    """Revoke the company's active keys starting with `prefix`; returns how many."""
    rows = (
        await ApiKey.update({ApiKey.revoked_at: datetime.now(UTC)})
        .where(
            (ApiKey.company == company.id)
            & (ApiKey.prefix == prefix[:10])
            & ApiKey.revoked_at.is_null()
        )
        .returning(ApiKey.id)
    )
    return len(rows)


async def list_keys(company: Company) -> list[ApiKey]:
    return await ApiKey.objects().where(ApiKey.company == company.id).order_by(ApiKey.id)
