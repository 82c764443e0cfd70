"""Portal visits: a link is exchanged for a short-lived session so pages carry no token.

The cookie holds 32 random bytes; only their SHA-256 is stored. A visit ends after
SESSION_HOURS or as soon as its link is revoked or expires. The exchange writes the
session and one access entry in the history, and nothing else: a mail scanner opening
the link leaves the link usable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from receivables import history
from receivables.access.portal_links import resolve_token, signature_ok, token_hash
from receivables.access.tables import PortalLink
from receivables.db import atomic
from receivables.history import Actor, ActorKind
from receivables.i18n import LANGUAGES, choose_language
from receivables.ledger.tables import Contact, Customer
from receivables.portal.tables import PortalSession

SESSION_HOURS = 4


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def contact_actor(contact_id: int | None, email: str) -> Actor:
    return Actor(ActorKind.contact, email or "customer (portal)", contact_id)


@dataclass(frozen=True)
class Visit:
    """Who is looking, resolved from the session cookie on each request."""

    session_id: int
    link_id: int
    company_id: int
    customer_id: int
    contact_id: int | None
    contact_email: str
    contact_name: str
    language: str
    chosen_language: str
    company_locale: str
    csrf_token: str

    @property
    def actor(self) -> Actor:
        return contact_actor(self.contact_id, self.contact_email)


def csrf_for(raw_session: str, secret_key: str) -> str:
    """The per-session token every portal POST must carry (derived, so never stored)."""
    mac = hmac.new(secret_key.encode(), b"portal-csrf:" + raw_session.encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def csrf_ok(visit: Visit, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(visit.csrf_token, supplied or "")


async def exchange_link(
    token: str, *, secret_key: str, ip: str, user_agent: str, now: datetime | None = None
) -> str | None:
    """A new session's cookie value for a live link; None for any dead one (alike)."""
    now = now or datetime.now(UTC)
    link = await resolve_token(token, secret_key, now)
    if link is None:
        await _note_refused(token, secret_key, ip, user_agent, now)
        return None
    row = await Customer.select(Customer.company).where(Customer.id == link.customer).first()
    contact = (
        await Contact.select(Contact.email).where(Contact.id == link.contact).first()
        if link.contact
        else None
    )
    assert row is not None  # the link's customer (foreign key)
    raw = secrets.token_urlsafe(32)
    async with atomic():
        await PortalSession.insert(
            PortalSession(
                session_hash=_hash(raw),
                link=link.id,
                customer=link.customer,
                contact=link.contact,
                ip=ip[:45],
                user_agent=user_agent[:300],
                expires_at=now + timedelta(hours=SESSION_HOURS),
            )
        )
        await history.record(
            company_id=row["company"],
            actor=contact_actor(link.contact, contact["email"] if contact else ""),
            kind="portal.link_opened",
            customer_id=link.customer,
            details={"link": link.id, "ip": ip, "user_agent": user_agent[:300]},
            at=now,
        )
    return raw


async def _note_refused(token: str, secret_key: str, ip: str, user_agent: str, now) -> None:
    """A genuine but dead link goes in its account's history; forged ones touch nothing."""
    if not signature_ok(token, secret_key):
        return
    link = await PortalLink.objects().get(PortalLink.token_hash == token_hash(token))
    if link is None:
        return
    customer = await Customer.select(Customer.company).where(Customer.id == link.customer).first()
    assert customer is not None
    reason = "revoked" if link.revoked_at is not None else "expired"
    await history.record(
        company_id=customer["company"],
        actor=contact_actor(link.contact, ""),
        kind="portal.link_refused",
        customer_id=link.customer,
        details={"link": link.id, "reason": reason, "ip": ip, "user_agent": user_agent[:300]},
        at=now,
    )


async def visit_for(raw: str | None, secret_key: str, now: datetime | None = None) -> Visit | None:
    """The live visit a cookie names, or None (unknown, expired, or its link is dead)."""
    if not raw or len(raw) > 100:
        return None
    now = now or datetime.now(UTC)
    row = (
        await PortalSession.select(
            PortalSession.id,
            PortalSession.link,
            PortalSession.customer,
            PortalSession.contact,
            PortalSession.language,
            PortalSession.expires_at,
            PortalSession.link.revoked_at.as_alias("link_revoked_at"),
            PortalSession.link.expires_at.as_alias("link_expires_at"),
            PortalSession.customer.company.as_alias("company_id"),
            PortalSession.customer.language.as_alias("customer_language"),
            PortalSession.customer.company.locale.as_alias("company_locale"),  # type: ignore[union-attr]
            PortalSession.contact.email.as_alias("contact_email"),
            PortalSession.contact.name.as_alias("contact_name"),
            PortalSession.contact.language.as_alias("contact_language"),
        )
        .where(PortalSession.session_hash == _hash(raw))
        .first()
    )
    if row is None or row["expires_at"] <= now:
        return None
    if row["link_revoked_at"] is not None or row["link_expires_at"] <= now:
        return None
    automatic = choose_language(
        row["contact_language"], row["customer_language"], row["company_locale"]
    )
    return Visit(
        session_id=row["id"],
        link_id=row["link"],
        company_id=row["company_id"],
        customer_id=row["customer"],
        contact_id=row["contact"],
        contact_email=row["contact_email"] or "",
        contact_name=row["contact_name"] or "",
        language=row["language"] if row["language"] in LANGUAGES else automatic,
        chosen_language=row["language"],
        company_locale=row["company_locale"] or "",
        csrf_token=csrf_for(raw, secret_key),
    )


async def set_language(visit: Visit, language: str) -> str:
    """Remember the visitor's choice for the rest of the visit; returns the language kept."""
    language = language if language in LANGUAGES else ""
    await PortalSession.update({PortalSession.language: language}).where(
        PortalSession.id == visit.session_id
    )
    return language
