"""Downloads from the portal: PDFs read back with pypdf, the XLSX with openpyxl, against the
page's own rows and totals; hostile item fields make the PDF renderer fetch nothing."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from receivables.documents import pdf as pdf_module
from receivables.history import HistoryEvent
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import Customer, Item, ItemKind
from tests.factories import make_item, make_payment
from tests.integration.test_portal_support import *  # noqa: F403 (fixtures)
from tests.integration.test_portal_support import make_account, open_visit
from web.filters import money

TODAY = date.today()
EVIL_PO = '=HYPERLINK("http://x","y")'


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


@pytest.fixture
def fetches(monkeypatch):
    """Every URL the PDF renderer asked for, as its child process reports them."""
    seen: list[str] = []
    original = pdf_module._report

    def recording(rendered):
        seen.extend(rendered.fetched)
        original(rendered)

    monkeypatch.setattr(pdf_module, "_report", recording)
    return seen


async def test_statement_pdf_has_every_number_and_amount(pclient, portal_settings):
    account = await make_account(portal_settings)
    await make_item(
        account.customer,
        "42.00",
        due=TODAY - timedelta(days=8),
        kind=ItemKind.credit_note,
        number="CN-PDF",
    )
    await open_visit(pclient, account)
    r = await pclient.get("/p/statement.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert "attachment" in r.headers["content-disposition"]
    text = pdf_text(r.content)
    st = await build_statement(account.customer.id, TODAY)
    for item in [*st.invoices, *st.credit_notes]:
        assert item.number in text
        assert money(item.open, "en_GB") in text
    totals = st.totals["EUR"]
    for figure in (totals.overdue, totals.not_due, totals.open):
        assert money(figure, "en_GB") in text
    assert "Statement of account" in text and "Buyer Ltd" in text
    assert "FR76 3000 6000 0112 3456 7890 189" in text


async def test_invoice_pdf_generated_then_cached_or_the_stored_one(pclient, portal_settings):
    account = await make_account(portal_settings)
    await open_visit(pclient, account)
    item = account.items["late"]
    first = await pclient.get(f"/p/invoices/{item.id}/pdf")
    assert first.status_code == 200
    text = pdf_text(first.content)
    assert item.number in text and "€1,200.00" in text and "Buyer Ltd" in text
    second = await pclient.get(f"/p/invoices/{item.id}/pdf")
    assert second.content == first.content
    sources = [
        r["details"]
        for r in await HistoryEvent.select(HistoryEvent.details)
        .where(HistoryEvent.kind == "portal.document_downloaded")
        .order_by(HistoryEvent.id)
    ]
    assert '"source":"generated"' in sources[0] and '"source":"cache"' in sources[1]

    stored = portal_settings.documents_path / "invoices" / "erp-original.pdf"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(first.content.replace(b"%PDF", b"%PDF", 1) + b"\n% from the ERP\n")
    await Item.update({Item.pdf_path: "invoices/erp-original.pdf"}).where(Item.id == item.id)
    erp = await pclient.get(f"/p/invoices/{item.id}/pdf")
    assert erp.content == stored.read_bytes()
    # A stored path that climbs out of the folder serves nothing from outside it.
    await Item.update({Item.pdf_path: "../../../../etc/passwd"}).where(Item.id == item.id)
    safe = await pclient.get(f"/p/invoices/{item.id}/pdf")
    assert (
        safe.status_code == 200
        and safe.content.startswith(b"%PDF")
        and b"root:" not in safe.content
    )


async def test_hostile_item_fields_make_the_pdf_renderer_fetch_nothing(
    pclient, portal_settings, fetches
):
    account = await make_account(portal_settings)
    hostile = await make_item(
        account.customer,
        "10.00",
        due=TODAY - timedelta(days=2),
        number='<img src="file:///etc/passwd">',
        po_number='<img src="http://169.254.169.254/x">',
    )
    await Customer.update(
        {Customer.address: '<link rel="attachment" href="file:///etc/passwd">\nhttp://127.0.0.1:9/'}
    ).where(Customer.id == account.customer.id)
    await open_visit(pclient, account)
    statement = await pclient.get("/p/statement.pdf")
    invoice = await pclient.get(f"/p/invoices/{hostile.id}/pdf")
    assert statement.status_code == invoice.status_code == 200
    # Only the company logo could be asked for, and this company has none.
    assert fetches == []
    for content in (statement.content, invoice.content):
        reader = PdfReader(io.BytesIO(content))
        assert reader.attachments == {}
        assert b"root:" not in content
    assert '<img src="file:///etc/passwd">' in pdf_text(statement.content).replace("\n", "")


async def test_logo_is_the_only_file_fetched(pclient, portal_settings, fetches):
    account = await make_account(portal_settings, logo_path="img/demo-company-logo.svg")
    await open_visit(pclient, account)
    assert (await pclient.get("/p/statement.pdf")).status_code == 200
    assert len(fetches) == 1 and fetches[0].endswith("/static/img/demo-company-logo.svg")
    assert fetches[0].startswith("file:///")


async def test_xlsx_reads_back_with_the_page_rows_and_totals(pclient, portal_settings):
    account = await make_account(portal_settings)
    customer = account.customer
    await make_item(
        customer, "150.00", due=TODAY - timedelta(days=9), kind=ItemKind.credit_note, number="CN-X"
    )
    await make_payment(customer, "60.00", ref="VIR-X")
    await make_item(
        customer,
        "99.99",
        due=TODAY - timedelta(days=3),
        currency="USD",
        number="INV-USD",
        po_number=EVIL_PO,
    )
    page = await open_visit(pclient, account)
    r = await pclient.get("/p/statement.xlsx")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["EUR", "USD"]  # one sheet per currency
    st = await build_statement(customer.id, TODAY)
    for cur, ws in ((c, wb[c]) for c in wb.sheetnames):
        assert ws.freeze_panes == "A5"
        assert ws.auto_filter.ref.startswith("A4:I")
        header = [c.value for c in ws[4]]
        assert header[:7] == [
            "Type",
            "Number",
            "Issue date",
            "Due date",
            "Days late",
            "Amount",
            "Open amount",
        ]
        rows = [row for row in ws.iter_rows(min_row=5) if row[1].value]
        numbers = [row[1].value for row in rows]
        expected = (
            [i.number for i in st.invoices if i.currency == cur]
            + [c.number for c in st.credit_notes if c.currency == cur]
            + [p.ref for p in st.unapplied_payments if p.unapplied.currency == cur]
        )
        assert numbers == expected, (numbers, expected)
        assert all(f">{n}<" in page.text for n in numbers)  # the page's own rows
        first = rows[0]
        assert first[2].is_date and first[3].is_date
        assert first[3].value.date() == st.invoices[0].due_date if cur == "EUR" else True
        assert first[6].data_type == "n" and "#,##0.00" in first[6].number_format
        totals = {
            row[5].value: Decimal(str(row[6].value))
            for row in ws.iter_rows(min_row=5)
            if row[5].value in ("Overdue", "Coming due", "Credit notes and payments", "Total open")
        }
        t = st.totals[cur]
        assert totals["Overdue"] == t.overdue.amount
        assert totals["Coming due"] == t.not_due.amount
        assert totals["Credit notes and payments"] == -t.credits.amount
        assert totals["Total open"] == t.open.amount
        assert money(t.open, "en_GB") in page.text
        open_sum = sum(Decimal(str(row[6].value)) for row in rows)
        assert open_sum == t.open.amount
    usd = [row for row in wb["USD"].iter_rows(min_row=5) if row[1].value == "INV-USD"][0]
    assert usd[8].value == EVIL_PO and usd[8].data_type == "s"


async def test_xlsx_headers_follow_the_language(pclient, portal_settings):
    account = await make_account(portal_settings, contact_language="fr")
    await open_visit(pclient, account)
    wb = load_workbook(io.BytesIO((await pclient.get("/p/statement.xlsx")).content))
    [name] = wb.sheetnames
    assert name == "Relevé EUR"
    ws = wb[name]
    assert [c.value for c in ws[4]][:4] == ["Type", "Numéro", "Date d’émission", "Date d’échéance"]
    statuses = {row[7].value for row in ws.iter_rows(min_row=5) if row[1].value}
    assert "En retard" in statuses
