"""Emails to staff about an account's collection: a promise broken.

Written to the outbox in the run's transaction, to the assigned collector (else the
company's address), in the company's language; the customer never receives these.
"""

from __future__ import annotations

from collections import defaultdict
from email.utils import formataddr
from typing import Any

from receivables.access.tables import StaffUser
from receivables.history import Actor
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
        lines = [
            f"- {e['number']}: promised for {e['promised_for']:%Y-%m-%d}, still unpaid"
            for e in sorted(entries, key=lambda e: e["number"])
        ]
        name = f" {collector.name}" if collector and collector.name else ""
        text = (
            f"Hello{name},\n\n{customer.name} ({customer.ref}) did not keep "
            f"{'its promise' if len(entries) == 1 else 'its promises'} to pay:\n\n"
            + "\n".join(lines)
            + f"\n\nThe invoices ask for payment again.\n{settings.base_url}/backoffice/customers/"
            f"{customer.id}\n"
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
            subject=f"Promise broken: {customer.name} ({customer.ref})",
            text_body=text,
            actor=actor,
            details={"customer": customer.id, "items": [e["number"] for e in entries]},
        )
        queued += 1
    return queued
