"""A fresh portal link, emailed to the contacts on file when an old one no longer works.

The visitor never names an address: the account is found from the old token (if it is a
genuine one), and the new links go to that account's contacts. Whatever happens, the
caller shows the same answer, so nobody learns whether a token or an account exists.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receivables import history
from receivables.access.portal_links import issue_link, signature_ok, token_hash
from receivables.access.tables import PortalLink
from receivables.db import atomic
from receivables.history import Actor, HistoryEvent
from receivables.i18n import choose_language
from receivables.ledger.tables import Company, Contact, Customer
from receivables.mail.outbox import Recipient, queue_email
from receivables.portal.emails import PortalMail

RESEND_QUIET = timedelta(minutes=15)
"""At most one round of fresh links per account in this window (no mail bombing)."""


async def send_fresh_links(
    token: str, *, secret_key: str, days: int, ip: str, mail: PortalMail
) -> int:
    """Email a new link to each contact of the token's account; returns how many were sent."""
    if not signature_ok(token, secret_key):
        return 0
    old = await PortalLink.objects().get(PortalLink.token_hash == token_hash(token))
    if old is None:
        return 0
    customer = await Customer.objects().get(Customer.id == old.customer)
    if customer is None:
        return 0
    company = await Company.objects().get(Company.id == customer.company)
    assert company is not None
    since = datetime.now(UTC) - RESEND_QUIET
    recent = await HistoryEvent.exists().where(
        (HistoryEvent.customer == customer.id)
        & (HistoryEvent.kind == "portal.link_resent")
        & (HistoryEvent.occurred_at > since)
    )
    if recent:
        return 0
    contacts = (
        await Contact.objects()
        .where(
            (Contact.customer == customer.id) & (Contact.receives_reminders == True)  # noqa: E712
        )
        .order_by(Contact.id)
    )
    if not contacts:
        contacts = (
            await Contact.objects().where(Contact.customer == customer.id).order_by(Contact.id)
        )
    actor = Actor.system("portal: fresh link asked")
    async with atomic():
        for contact in contacts:
            issued = await issue_link(
                customer=customer,
                contact=contact,
                secret_key=secret_key,
                base_url=mail.base_url,
                days=days,
                issued_by="portal: fresh link asked",
                message_ref="",
            )
            language = choose_language(contact.language, customer.language, company.locale)
            email = mail.compose(
                "portal_link",
                {
                    "company_name": company.name,
                    "customer_name": customer.name,
                    "contact_name": contact.name,
                    "url": issued.url,
                    "days": days,
                    "company_email": company.email,
                    "company_phone": company.phone,
                },
                language,
            )
            message = await queue_email(
                company_id=company.id,
                customer_id=customer.id,
                kind="portal_link",
                mail_from=mail.mail_from,
                to=[Recipient(contact.email, contact.name)],
                subject=email.subject,
                text_body=email.text,
                html_body=email.html,
                reply_to=company.email,
                actor=actor,
                details={"link": issued.link.id},
                portal_token=issued.token,
                secret_key=secret_key,
            )
            await PortalLink.update({PortalLink.message_ref: message.message_id}).where(
                PortalLink.id == issued.link.id
            )
        await history.record(
            company_id=company.id,
            actor=actor,
            kind="portal.link_resent",
            customer_id=customer.id,
            details={"old_link": old.id, "contacts": len(contacts), "ip": ip},
        )
    return len(contacts)
