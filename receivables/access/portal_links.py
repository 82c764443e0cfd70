"""Portal links: a signed, expiring, revocable token granting one customer account.

The token is 24 random bytes (192 bits) plus an HMAC of them under SECRET_KEY: a
tampered token is refused before any lookup. Only its SHA-256 is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from receivables.access.tables import PortalLink
from receivables.ledger.tables import Contact, Customer


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signature(secret_key: str, body: str) -> str:
    mac = hmac.new(secret_key.encode(), b"portal-link:" + body.encode(), hashlib.sha256)
    return _b64(mac.digest()[:18])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedLink:
    link: PortalLink
    token: str
    url: str


async def issue_link(
    *,
    customer: Customer,
    contact: Contact | None,
    secret_key: str,
    base_url: str,
    days: int,
    issued_by: str,
    message_ref: str = "",
) -> IssuedLink:
    body = _b64(secrets.token_bytes(24))
    token = f"{body}.{_signature(secret_key, body)}"
    link = PortalLink(
        customer=customer.id,
        contact=contact.id if contact else None,
        token_hash=token_hash(token),
        issued_by=issued_by,
        message_ref=message_ref,
        expires_at=datetime.now(UTC) + timedelta(days=days),
    )
    await link.save()
    return IssuedLink(link=link, token=token, url=f"{base_url}/p/{token}")


def signature_ok(token: str, secret_key: str) -> bool:
    body, _, sig = token.partition(".")
    if not body or not sig or len(token) > 200:
        return False
    return hmac.compare_digest(sig, _signature(secret_key, body))


async def resolve_token(
    token: str, secret_key: str, now: datetime | None = None
) -> PortalLink | None:
    """The live link for `token`; None when tampered, unknown, expired or revoked (alike)."""
    if not signature_ok(token, secret_key):
        return None
    link = await PortalLink.objects().get(PortalLink.token_hash == token_hash(token))
    if link is None or link.revoked_at is not None:
        return None
    if link.expires_at <= (now or datetime.now(UTC)):
        return None
    return link


async def revoke(link_id: int) -> bool:
    rows = (
        await PortalLink.update({PortalLink.revoked_at: datetime.now(UTC)})
        .where((PortalLink.id == link_id) & PortalLink.revoked_at.is_null())
        .returning(PortalLink.id)
    )
    return bool(rows)
