"""The portal's doors in a reminder, sent through the outbox to a real SMTP server (aiosmtpd):
the "view and pay" button, each invoice's PDF and the Excel export through the same signed
link (followed on the real app), held invoices told back with the customer's own words, dispute
reasons by their label, the signature; a forged destination lands on the statement."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from receivables.access.portal_links import issue_link
from receivables.access.staff import create_user
from receivables.access.tables import PortalLink
from receivables.clock import today_in
from receivables.dunning import messages
from receivables.dunning.defaults import install_defaults
from receivables.dunning.message_templates import save_template
from receivables.dunning.messages import compose_email, hashtag_values, load_facts
from receivables.dunning.run import run_dunning
from receivables.dunning.tables import MessageTemplate
from receivables.history import Actor, HistoryEvent
from receivables.ledger.tables import Item, PayerProfile
from receivables.mail.outbox import send_due
from receivables.portal.tables import PortalSession
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET, app_client
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.integration.test_portal_support import csrf_of, fresh_limits  # noqa: F401 (fixture)
from tests.smtp import start_smtp

TODAY = today_in("UTC")
BASE = "http://testserver.local"
LINK = re.compile(re.escape(BASE) + r"/p/[A-Za-z0-9_.-]+(?:\?next=[^\s\"<]*)?")


def settings_for(tmp_path, port: int = 25):
    return load_settings(
        {
            "SECRET_KEY": TEST_SECRET,
            "BASE_URL": BASE,
            "SMTP_PORT": str(port),
            "DOCUMENTS_DIR": str(tmp_path / "documents"),
        }
    )


@pytest.fixture
async def app(db, databases, tmp_path):
    from app import create_app

    return create_app(settings_for(tmp_path), engine=await databases.get(db))


async def seller(collector: bool = True):
    company = await make_company(
        name="Atelier Lumière SAS",
        email="ar@atelier.example",
        phone="+33 4 00 00 00 00",
        address="12 rue des Ateliers\n69002 Lyon",
    )
    await install_defaults(company.id)
    staff = None
    if collector:
        staff = await create_user(
            f"colette{company.id}@atelier.example",
            "Colette Recouvrement",
            "collector",
            "long-password-1",
            phone="+33 6 12 34 56 78",
        )
    return company, staff


async def buyer(company, staff, *, language: str = "", name: str = "Brasserie du Port"):
    customer = await make_customer(
        company,
        name=name,
        payer_profile=PayerProfile.negligent.value,
        collector=staff.id if staff else None,
    )
    contact = await make_contact(
        customer,
        name="Julie Lambert",
        email=f"julie{customer.id}@brasserie.example",
        language=language,
    )
    return customer, contact


async def sent_reminders(tmp_path) -> dict[str, tuple[str, str]]:
    """Run today's dunning, send the outbox to aiosmtpd: (text, html) by recipient."""
    server, rec, port = await start_smtp()
    try:
        await run_dunning(TODAY, settings_for(tmp_path, port))
        while await send_due(settings_for(tmp_path, port)):
            pass
    finally:
        server.close()
    return {
        m["To"].addresses[0].addr_spec: (
            m.get_body(("plain",)).get_content().replace("\r\n", "\n"),
            m.get_body(("html",)).get_content(),
        )
        for m in rec.messages
    }


def links(part: str) -> list[str]:
    return LINK.findall(part)


def local(url: str) -> str:
    return url.removeprefix(BASE)


async def plain_template(company, language: str, body: str) -> None:
    template = await MessageTemplate.objects().get(
        (MessageTemplate.company == company.id)
        & (MessageTemplate.code == "reminder_1")
        & (MessageTemplate.language == language)
    )
    await save_template(
        template.id,
        name=template.name,
        subject=template.subject,
        body=body,
        actor=Actor.system("admin"),
    )


async def test_the_reminder_carries_the_doors_in_both_parts_and_its_pdf_link_opens_the_pdf(
    app, tmp_path
):
    company, staff = await seller()
    customer, contact = await buyer(company, staff)
    late = await make_item(customer, "1200.00", due=TODAY - timedelta(days=3), number="F-1001")
    soon = await make_item(customer, "300.00", due=TODAY + timedelta(days=12), number="F-1002")
    held = await make_item(
        customer,
        "90.00",
        due=TODAY - timedelta(days=3),
        number="F-1003",
        status="disputed",
        dispute_reason="already_credited",
    )
    text, html = (await sent_reminders(tmp_path))[contact.email]

    [link] = await PortalLink.objects().where(PortalLink.customer == customer.id)
    portal = next(u for u in links(text) if "?" not in u)
    pdfs = {i.id: f"{portal}?next=/invoices/{i.id}/pdf" for i in (late, soon, held)}
    excel = f"{portal}?next=/statement.xlsx"
    # The plain part: the link, one line per invoice's PDF, the Excel export.
    assert f"View and pay online: {portal}" in text
    for item in (late, soon, held):
        assert f"Invoice {item.number}: {pdfs[item.id]}" in text
    assert f"Your statement as an Excel file: {excel}" in text
    # The HTML part: the same doors, the button first, every one through the same link.
    assert re.search(
        rf'<a href="{re.escape(portal)}" target="_blank" style="[^"]+">View and pay online</a>',
        html,
    )
    for item in (late, soon, held):
        assert f'<a href="{pdfs[item.id]}" style="color:#1d4ed8;">Invoice {item.number}</a>' in html
    assert f'href="{excel}"' in html
    assert set(links(text)) == set(links(html)) == {portal, excel, *pdfs.values()}
    assert link.message_ref.startswith("dunning-action:")  # one link, issued for this message

    # The dispute by its label, never its code; the default template signs once.
    assert "Disputed: Already credited" in text and "Disputed: Already credited" in html
    assert "already_credited" not in text and "already_credited" not in html
    assert text.count("Colette Recouvrement") == 1

    async with app_client(app) as browser:
        r = await browser.get(local(pdfs[late.id]), follow_redirects=True)
        assert [h.status_code for h in r.history] == [303]
        assert r.history[0].headers["location"] == f"/p/invoices/{late.id}/pdf"
        assert str(r.url) == f"{BASE}/p/invoices/{late.id}/pdf"  # no token left in the URL
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        words = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
        assert "F-1001" in words
        x = await browser.get(local(excel), follow_redirects=True)
        assert str(x.url) == f"{BASE}/p/statement.xlsx" and x.status_code == 200
        sheet = load_workbook(io.BytesIO(x.content), read_only=True).worksheets[0]
        cells = {str(c) for row in sheet.iter_rows(values_only=True) for c in row if c}
        assert {"F-1001", "F-1002"} <= cells
    # GETs changed nothing but the visits and their history.
    assert await Item.count().where(Item.customer == customer.id) == 3
    assert await PortalSession.count() == 2
    kinds = [
        r["kind"]
        for r in await HistoryEvent.select(HistoryEvent.kind)
        .where((HistoryEvent.customer == customer.id) & HistoryEvent.kind.like("portal.%"))
        .order_by(HistoryEvent.id)
    ]
    assert kinds == [
        "portal.link_opened",
        "portal.document_downloaded",
        "portal.link_opened",
        "portal.document_downloaded",
    ]


async def test_held_invoices_say_why_in_french_with_the_customers_own_words(app, tmp_path):
    company, staff = await seller()
    customer, contact = await buyer(company, staff, language="fr")
    await make_item(customer, "1200.00", due=TODAY - timedelta(days=3), number="F-2001")
    paid = await make_item(customer, "400.00", due=TODAY - timedelta(days=3), number="F-2002")
    wrong = await make_item(customer, "250.00", due=TODAY - timedelta(days=3), number="F-2003")
    await make_item(
        customer,
        "90.00",
        due=TODAY - timedelta(days=3),
        number="F-2004",
        status="disputed",
        dispute_reason="quality",
    )
    await make_item(
        customer,
        "70.00",
        due=TODAY - timedelta(days=3),
        number="F-2005",
        status="promised",
        promise_date=TODAY + timedelta(days=4),
    )
    issued = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=TEST_SECRET,
        base_url=BASE,
        days=30,
        issued_by="test",
    )
    paid_on = TODAY - timedelta(days=1)
    async with app_client(app) as browser:  # the customer answers on the portal
        page = await browser.get(f"/p/{issued.token}", follow_redirects=True)
        for item, fields in (
            (
                paid,
                {
                    "kind": "paid",
                    "paid_on": paid_on.isoformat(),
                    "method": "transfer",
                    "text": "Virement   du 12,\nréf. 8841",
                },
            ),
            (wrong, {"kind": "dispute", "dispute_reason": "price", "text": "Tarif 2024 appliqué"}),
        ):
            r = await browser.post(
                "/p/answer",
                data={"_csrf_token": csrf_of(page.text), "item": [str(item.id)], **fields},
            )
            assert r.status_code in (200, 303), r.text[:300]

    text, html = (await sent_reminders(tmp_path))[contact.email]
    held = text[text.index("En attente") :]
    day = messages._day(paid_on, "fr_FR")
    for part in (held, html):
        # The customer's words on one line, in their language's quotes; French spacing
        # (a no-break space before the colon and inside the quotes).
        assert (
            f"Vous nous avez indiqué l’avoir réglée le {day} — "
            "«\u00a0Virement du 12, réf. 8841\u00a0»" in part
        )
        assert "Vous la contestez\u00a0: Prix — «\u00a0Tarif 2024 appliqué\u00a0»" in part
        assert "Contestée\u00a0: Qualité" in part and "quality" not in part
        assert "Paiement promis le" in part
    for number in ("F-2002", "F-2003", "F-2004", "F-2005"):
        assert number in held
    assert "Consulter et payer en ligne\u00a0: http://testserver.local/p/" in text
    assert "Votre relevé au format Excel\u00a0: http://testserver.local/p/" in text


async def test_the_signature_is_the_collectors_else_the_companys(app, tmp_path):
    company, staff = await seller()
    # A template with neither #PortalLink nor a signature: the layout adds both.
    await plain_template(company, "en", "Dear #ContactName,\n\n#OverdueItemsTable")
    mine, contact = await buyer(company, staff)
    nobodys, other = await buyer(company, None, name="Hôtel des Arts")
    for customer in (mine, nobodys):
        await make_item(customer, "500.00", due=TODAY - timedelta(days=3))
    sent = await sent_reminders(tmp_path)

    text, html = sent[contact.email]
    assert text.count("Colette Recouvrement") == 1
    assert f"Colette Recouvrement\n{staff.email}\n+33 6 12 34 56 78\n\n-- \n" in text
    assert "<strong>Colette Recouvrement</strong>" in html
    assert f'<a href="mailto:{staff.email}"' in html and 'href="tel:+33612345678"' in html
    assert "View and pay online: http://testserver.local/p/" in text  # a link all the same

    text, html = sent[other.email]
    assert "Atelier Lumière SAS\nar@atelier.example\n+33 4 00 00 00 00\n\n-- \n" in text
    assert "<strong>Atelier Lumière SAS</strong>" in html


async def test_a_preview_shows_placeholders_and_no_link(db, monkeypatch):
    company, staff = await seller()
    customer, contact = await buyer(company, staff)
    for n in range(3):
        await make_item(customer, "10.00", due=TODAY - timedelta(days=3), number=f"F-30{n}")
    monkeypatch.setattr(messages, "MAX_INVOICE_LINKS", 2)
    facts = await load_facts(customer.id, TODAY)
    values = hashtag_values(facts, language="en", contact=contact, portal_url=None, base_url=BASE)
    email = compose_email("Hello", "Dear #ContactName,", values, company, "en")
    for part in (email.text, email.html):
        assert "View and pay online" in part
        assert "a personal link is made for each recipient when sent" in part
        assert "Invoice F-300" in part and "Invoice F-301" in part and "F-302" not in part
        assert "1 more invoice on your online statement" in part
        assert "/p/" not in part and "next=" not in part
    assert await PortalLink.count() == 0


@pytest.mark.parametrize(
    "forged",
    [
        "//evil.example",
        "https://evil.example",
        "/backoffice/",
        "/p/statement",
        "/invoices/1/pdf/../../../backoffice",
        "/statement.pdf\n",
        "/invoices/0/pdf",
        "/invoices/١٢/pdf",  # digits that are not ASCII
        "\\\\evil.example",
        "",
    ],
)
async def test_a_forged_destination_lands_on_the_statement(app, forged):
    company, staff = await seller(collector=False)
    customer, contact = await buyer(company, staff)
    issued = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=TEST_SECRET,
        base_url=BASE,
        days=30,
        issued_by="test",
    )
    async with app_client(app) as browser:
        r = await browser.get(f"/p/{issued.token}", params={"next": forged})
        assert r.status_code == 303 and r.headers["location"] == "/p/statement"
        allowed = await browser.get(f"/p/{issued.token}", params={"next": "/statement.pdf"})
        assert allowed.status_code == 303 and allowed.headers["location"] == "/p/statement.pdf"
