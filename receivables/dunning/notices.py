"""Emails to staff about an account's collection: a promise broken.

Written to the outbox in the run's transaction, to the assigned collector (else the
company's address), in the collector's language (else the company's); the customer never
receives these.
"""

from __future__ import annotations

from collections import defaultdict
from email.utils import formataddr
from typing import Any

from babel.dates import format_date

from receivables.access.tables import StaffUser
from receivables.history import Actor
from receivables.i18n import choose_language, locale_for, translator
from receivables.ledger.tables import Company, Customer
from receivables.mail.outbox import Recipient, queue_email
from receivables.settings import Settings

BROKEN_KIND = "promise_broken"


async def notify_broken_promises(
    broken: list[dict[str, Any]], settings: Settings, actor: Actor
) -> int:
    """One email per account whose promises broke today; returns how many were queued."""
    by_customer: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in broken:
        by_customer[entry["customer"]].append(entry)
    queued = 0
    for customer_id, entries in sorted(by_customer.items()):
        customer = await Customer.objects().get(Customer.id == customer_id)
        if customer is None:
            continue
        company = await Company.objects().get(Company.id == customer.company)
        assert company is not None
        collector = (
            await StaffUser.objects().get(StaffUser.id == customer.collector)
            if customer.collector
            else None
        )
        address = collector.email if collector else company.email
        if not address:
            continue
        language = choose_language(collector.language if collector else "", company.locale)
        locale = locale_for(language, company.locale)
        _ = translator(language)
        lines = [
            "- "
            + _(
                "%(number)s: promised for %(date)s, still unpaid",
                number=e["number"],
                date=format_date(e["promised_for"], format="medium", locale=locale),
            )
            for e in sorted(entries, key=lambda e: e["number"])
        ]
        addressee = " " + collector.name if collector and collector.name else ""
        hello = _("Hello%(name)s,", name=addressee)
        broke = _.ngettext(
            "%(customer)s (%(ref)s) did not keep its promise to pay:",
            "%(customer)s (%(ref)s) did not keep its promises to pay:",
            len(entries),
            customer=customer.name,
            ref=customer.ref,
        )
        again = _.ngettext(
            "The invoice asks for payment again.",
            "The invoices ask for payment again.",
            len(entries),
        )
        text = (
            f"{hello}\n\n{broke}\n\n"
            + "\n".join(lines)
            + f"\n\n{again}\n{settings.base_url}/backoffice/customers/{customer.id}\n"
        )
        subject = _(
            "Promise broken: %(customer)s (%(ref)s)", customer=customer.name, ref=customer.ref
        )
        # The account's own chain (the run's batch holds its lock already); a company-wide
        # event here would take the company chain after the accounts' (a deadlock with an
        # import, found by tests/integration/test_production.py).
        await queue_email(
            company_id=company.id,
            customer_id=customer.id,
            kind=BROKEN_KIND,
            mail_from=formataddr((company.name, company.email or settings.smtp_from)),
            to=[Recipient(address, collector.name if collector else company.name)],
            subject=subject,
            text_body=text,
            actor=actor,
            details={"customer": customer.id, "items": [e["number"] for e in entries]},
        )
        queued += 1
    return queued
