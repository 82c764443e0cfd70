"""A French customer reads no English: the reminder (sent through aiosmtpd), the collector's
notifications (a French collector), the formal-notice letter, the statement and invoice
copies attached to reminders and the portal's statement and invoice PDFs (read back with
pypdf) are scanned for tell-tale English words. SQLite only: the words do not depend on the
engine."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from pypdf import PdfReader

from receivables.access.portal_links import issue_link
from receivables.access.tables import StaffUser
from receivables.documents.pdf import render_pdf_async
from receivables.dunning.letters import assets, invoice_copy_html, letter_html, statement_html
from receivables.dunning.messages import load_facts
from receivables.dunning.notices import notify_broken_promises
from receivables.dunning.sending import Texts
from receivables.dunning.tables import MessageTemplate
from receivables.history import Actor
from receivables.ledger.tables import Company
from receivables.mail.outbox import OutboxMessage
from tests.conftest import TEST_SECRET, app_client
from tests.factories import make_item
from tests.integration.test_portal_support import csrf_of, fresh_limits  # noqa: F401 (fixture)
from tests.integration.test_reminder_doors import (
    BASE,
    TODAY,
    buyer,
    seller,
    sent_reminders,
    settings_for,
)

TELL_TALES = [
    "Invoice", "Invoices", "Amount", "Due", "Overdue", "Statement", "Pay", "Balance", "Message",
    "Reply", "Answer", "Disputed", "Promised", "Payment", "Open", "Credit", "Interest",
    "Penalties", "Hello", "Dear", "Sir", "Madam", "Customer", "Reference", "Days", "late",
    "Issued", "Copy", "Total open", "Total penalties", "Total to pay", "View", "Review",
    "Your", "the", "and", "of", "to",
]  # fmt: skip
"""English words a French reader should never meet ("Total", "Date", "Question" and
"Type" are French words too, so only their English phrases are listed)."""
TELL_TALE = re.compile(r"\b(" + "|".join(re.escape(w) for w in TELL_TALES) + r")\b")


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def english_in(text: str) -> list[str]:
    return sorted(set(TELL_TALE.findall(text)))


@pytest.fixture
async def app(sqlite_db, databases, tmp_path):
    from app import create_app

    return create_app(settings_for(tmp_path), engine=await databases.get(sqlite_db))


async def test_a_french_customer_and_collector_read_no_english(app, tmp_path):
    company, staff = await seller()
    await Company.update({Company.penalty_policy: "france"}).where(Company.id == company.id)
    await StaffUser.update({StaffUser.language: "fr"}).where(StaffUser.id == staff.id)
    customer, contact = await buyer(company, staff, language="fr")
    late = await make_item(customer, "1200.00", due=TODAY - timedelta(days=12), number="F-3001")
    await make_item(customer, "250.00", due=TODAY - timedelta(days=3), number="F-3002")
    await make_item(customer, "300.00", due=TODAY + timedelta(days=9), number="F-3003")
    await make_item(
        customer,
        "90.00",
        due=TODAY - timedelta(days=3),
        number="F-3004",
        status="disputed",
        dispute_reason="price",
    )
    scanned: dict[str, str] = {}

    # The reminder, as the customer's mailbox receives it.
    text, html = (await sent_reminders(tmp_path))[contact.email]
    scanned["reminder (text)"] = text
    scanned["reminder (html)"] = re.sub(r"<[^>]+>|https?://\S+", " ", html)

    # The formal notice, and the statement and invoice copies attached to reminders.
    facts = await load_facts(customer.id, TODAY)
    notice = await MessageTemplate.objects().get(
        (MessageTemplate.company == company.id)
        & (MessageTemplate.language == "fr")
        & (MessageTemplate.channel == "letter")
    )
    assert notice is not None
    settings = settings_for(tmp_path)
    letter = letter_html(facts, Texts("fr", notice.subject, notice.body), contact)
    item = {
        "number": late.number,
        "currency": "EUR",
        "issue_date": late.issue_date,
        "due_date": late.due_date,
        "total_minor": 120000,
        "open_minor": 120000,
        "po_number": "PO-77",
    }
    for name, page in (
        ("letter", letter),
        ("statement copy", statement_html(facts, "fr", contact)),
        ("invoice copy", invoice_copy_html(facts, item, "fr")),
    ):
        scanned[name] = pdf_text(await render_pdf_async(page, assets(settings)))
    assert "lettre recommandée avec accusé de réception" in scanned["letter"].casefold()

    # The portal: the customer answers (a promise), then downloads the PDFs.
    issued = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=TEST_SECRET,
        base_url=BASE,
        days=30,
        issued_by="test",
    )
    async with app_client(app) as browser:
        page = await browser.get(f"/p/{issued.token}", follow_redirects=True)
        answered = await browser.post(
            "/p/answer",
            data={
                "_csrf_token": csrf_of(page.text),
                "item": [str(late.id)],
                "kind": "promise",
                "promise_date": (TODAY + timedelta(days=5)).isoformat(),
                "text": "Virement prévu",
            },
        )
        assert answered.status_code in (200, 303), answered.text[:300]
        statement = await browser.get("/p/statement.pdf")
        invoice = await browser.get(f"/p/invoices/{late.id}/pdf")
    scanned["portal statement PDF"] = pdf_text(statement.content)
    scanned["portal invoice PDF"] = pdf_text(invoice.content)
    assert "Relevé de compte" in scanned["portal statement PDF"]

    # The collector's notifications, in the collector's language (French here).
    notified = await OutboxMessage.objects().get(OutboxMessage.kind == "feedback_notice")
    assert notified is not None and staff.email in notified.to_addrs
    assert "Paiement prévu le " in notified.subject  # the date completes the sentence
    scanned["answer notice"] = notified.subject + "\n" + notified.text_body
    await notify_broken_promises(
        [{"customer": customer.id, "number": "F-3002", "promised_for": TODAY}],
        settings,
        Actor.system("test"),
    )
    broken = await OutboxMessage.objects().get(OutboxMessage.kind == "promise_broken")
    assert broken is not None
    scanned["broken promise notice"] = broken.subject + "\n" + broken.text_body

    found = {name: english_in(words) for name, words in scanned.items()}
    assert {name: words for name, words in found.items() if words} == {}
    # The plural and the dispute reason read right.
    assert "Contestée\u00a0: Prix" in scanned["reminder (text)"]
