"""Cash application from the back office: an unapplied bank transfer applied to two invoices
and a credit note to a third by a finance user, checked to the cent, taken back with a reason,
every step in the timeline; afterwards the back office, the portal and the API show the same
statement. Small remainders written off under the company's tolerance and not chased."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from decimal import Decimal

from openpyxl import load_workbook
from pypdf import PdfReader

from app import create_app
from receivables.access.api_keys import create_key
from receivables.access.portal_links import issue_link
from receivables.access.tables import Role
from receivables.dunning.defaults import install_defaults
from receivables.dunning.run import run_dunning
from receivables.dunning.tables import DunningAction
from receivables.history import Actor, verify
from receivables.ledger import cash_application
from receivables.ledger.allocations import allocate
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import Allocation, Item, ItemKind, Payment
from receivables.ledger.timeline import customer_timeline
from receivables.money import Money
from receivables.payments.bank_reconciliation import confirm_line, import_statement
from receivables.payments.tables import BankLine, FinanceException
from tests.conftest import app_client
from tests.factories import make_company, make_contact, make_customer, make_item, make_payment
from tests.integration.test_backoffice import make_staff, sign_in
from tests.integration.test_dunning_run import settings_for

TODAY = date.today()
FINANCE = Actor.system("finance test")


async def _world():
    company = await make_company(code="CASH", name="Atelier Cash SAS")
    customer = await make_customer(company, ref="BRAS01", name="Brasserie du Port")
    contact = await make_contact(customer, email="ap@brasserie.example")
    invoices = [
        await make_item(customer, "1000.00", due=TODAY - timedelta(days=50), number="F-1"),
        await make_item(customer, "400.00", due=TODAY - timedelta(days=20), number="F-2"),
        await make_item(customer, "300.00", due=TODAY - timedelta(days=10), number="F-3"),
        await make_item(customer, "120.00", due=TODAY + timedelta(days=25), number="F-4"),
    ]
    note = await make_item(
        customer, "250.00", kind=ItemKind.credit_note, number="AV-1", due=TODAY - timedelta(days=5)
    )
    return company, customer, contact, invoices, note


async def _bank_payment(company, customer) -> Payment:
    """A transfer whose reference names no invoice, confirmed as the customer's: all of it
    unapplied (and flagged, like any money that pays nothing)."""
    csv = f"Date;Libellé;Montant;Devise;Id\n{TODAY:%d/%m/%Y};VIREMENT BRASSERIE;1250,00;EUR;TX-9\n"
    report = await import_statement(
        company_id=company.id,
        filename="releve.csv",
        content=csv.encode(),
        currency="EUR",
        actor=FINANCE,
    )
    assert report.review == 1
    line = await BankLine.objects().first()
    payment_id = await confirm_line(line.id, actor=FINANCE, item_ids=[], customer_id=customer.id)
    payment = await Payment.objects().get(Payment.id == payment_id)
    assert payment.unapplied_minor == payment.amount_minor == 125000
    return payment


def _form(html: str) -> dict[str, str]:
    """The apply form as the page fills it (name -> value)."""
    form = re.search(
        r'<form method="post" action="[^"]+" class="stack" id="apply-form">(.*?)</form>', html, re.S
    )
    assert form, html[:3000]
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))


def _pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


async def _open(item) -> int:
    return (await Item.objects().get(Item.id == item.id)).open_minor


async def test_finance_applies_a_bank_payment_and_a_credit_note_and_every_face_agrees(
    db, databases, settings
):
    company, customer, contact, (f1, f2, f3, f4), note = await _world()
    payment = await _bank_payment(company, customer)
    flagged = await FinanceException.objects().get(FinanceException.customer == customer.id)
    assert flagged is not None and flagged.kind == "unallocated"
    await make_staff(Role.finance.value, email="fin@seller.example")
    await make_staff(Role.collector.value, email="col@seller.example")
    app = create_app(settings, engine=await databases.get(db))

    async with app_client(app) as collector:
        await sign_in(collector, "col@seller.example")
        assert (await collector.get("/backoffice/finance/cash")).status_code == 403

    async with app_client(app) as bo:
        token = await sign_in(bo, "fin@seller.example")
        listing = await bo.get("/backoffice/finance/cash")
        assert listing.status_code == 200
        html = listing.text
        assert f"BANK-{(await BankLine.objects().first()).id}" in html and "AV-1" in html
        assert "€1,250.00" in html and "€250.00" in html and "Brasserie du Port" in html

        # The bank payment: oldest first proposed, every cent of it.
        url = f"/backoffice/finance/cash/payments/{payment.id}"
        page = await bo.get(url)
        assert page.status_code == 200
        proposed = _form(page.text)
        assert proposed[f"amount_{f1.id}"] == "1000.00" and proposed[f"amount_{f2.id}"] == "250.00"
        assert proposed[f"amount_{f3.id}"] == "" and proposed[f"amount_{f4.id}"] == ""

        # Checked to the cent: more than an invoice's open amount, more than the money, or an
        # amount that is not one: nothing applied, the values kept, each problem named.
        for amounts, message in (
            ({f1.id: "1000.01", f2.id: "0"}, "F-1: only €1,000.00 open"),
            ({f1.id: "1000.00", f2.id: "250.01"}, "is more than the €1,250.00 left"),
            ({f1.id: "1,000", f2.id: ""}, "an amount in EUR like 120 or 120.50"),
            ({f1.id: "", f2.id: ""}, "enter an amount for at least one invoice"),
        ):
            form = {"_csrf_token": token, **{f"amount_{k}": v for k, v in amounts.items()}}
            refused = await bo.post(url, data=form)
            assert refused.status_code == 422, refused.text[:300]
            assert message in refused.text and "Nothing was applied" in refused.text
            for item_id, value in amounts.items():
                assert _form(refused.text)[f"amount_{item_id}"] == value
        assert await Allocation.count() == 0

        # Two invoices, the second one only partly, as the customer's remittance said.
        applied = await bo.post(
            url,
            data={"_csrf_token": token, f"amount_{f1.id}": "1000.00", f"amount_{f2.id}": "250.00"},
        )
        assert applied.status_code == 303 and applied.headers["location"] == url
        assert (await _open(f1), await _open(f2)) == (0, 15000)
        after = await bo.get(url)
        assert "applied to 2 invoices" in after.text and "Fully applied" in after.text

        # The credit note to a third invoice.
        note_url = f"/backoffice/finance/cash/credit-notes/{note.id}"
        proposed = _form((await bo.get(note_url)).text)
        assert proposed[f"amount_{f2.id}"] == "150.00"  # oldest first: what is left of F-2
        applied = await bo.post(
            note_url,
            data={"_csrf_token": token, f"amount_{f2.id}": "", f"amount_{f3.id}": "250.00"},
        )
        assert applied.status_code == 303
        assert (await _open(f3), await _open(note)) == (5000, 0)
        listing = (await bo.get("/backoffice/finance/cash")).text
        assert "Nothing to apply" in listing

        # Taking back: the reason is required, then the invoice re-opens and the credit note
        # gets its amount back; applied again afterwards.
        carrier = await Payment.objects().get(Payment.credit_note == note.id)
        allocation = await Allocation.objects().get(Allocation.payment == carrier.id)
        reverse = f"/backoffice/finance/cash/allocations/{allocation.id}/reverse"
        await bo.post(reverse, data={"_csrf_token": token, "reason": " ", "back": note_url})
        assert await _open(f3) == 5000
        done = await bo.post(
            reverse, data={"_csrf_token": token, "reason": "Wrong invoice", "back": note_url}
        )
        assert done.status_code == 303 and done.headers["location"] == note_url
        assert (await _open(f3), await _open(note)) == (30000, 25000)
        await bo.post(note_url, data={"_csrf_token": token, f"amount_{f3.id}": "250.00"})
        assert (await _open(f3), await _open(note)) == (5000, 0)

    # Every step in the customer's timeline, in words.
    titles = [e.title for e in (await customer_timeline(customer.id)).events]
    assert "Payment BANK-1 applied: €1,000.00".replace("BANK-1", payment.ref) in titles
    assert f"Payment {payment.ref} applied: €250.00" in titles
    assert "Credit note AV-1 applied to F-3: €250.00" in titles
    assert "Credit note AV-1 given back €250.00: Wrong invoice" in titles
    assert "Payment €250.00 taken back: Wrong invoice" in titles
    assert (await verify()).ok

    # The same statement everywhere: the ledger's, the back office's, the portal's, the API's.
    st = await build_statement(customer.id, TODAY)
    eur = st.totals["EUR"]
    assert [(i.number, i.open.amount) for i in st.invoices] == [
        ("F-2", Decimal("150.00")),
        ("F-3", Decimal("50.00")),
        ("F-4", Decimal("120.00")),
    ]
    assert not st.credit_notes and not st.unapplied_payments
    assert (eur.overdue.amount, eur.not_due.amount, eur.open.amount) == (
        Decimal("200.00"),
        Decimal("120.00"),
        Decimal("320.00"),
    )
    _, clear = await create_key(company, "ERP")
    async with app_client(app) as api:
        body = (
            await api.get(
                f"/api/v1/customers/{customer.ref}/statement",
                headers={"Authorization": f"Bearer {clear}"},
            )
        ).json()
    assert [(i["number"], i["open"]["amount"]) for i in body["invoices"]] == [
        ("F-2", "150.00"),
        ("F-3", "50.00"),
        ("F-4", "120.00"),
    ]
    assert body["credit_notes"] == [] and body["unapplied_payments"] == []
    assert (
        body["totals"]["EUR"]["open"] == "320.00" and body["totals"]["EUR"]["overdue"] == "200.00"
    )
    link = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        days=30,
        issued_by="test",
    )
    async with app_client(app) as portal:
        assert (await portal.get(f"/p/{link.token}")).status_code == 303
        html = (await portal.get("/p/statement")).text
        # The credit note's PDF says so and asks for nothing; an invoice's says how to pay.
        note_pdf = _pdf_text((await portal.get(f"/p/invoices/{note.id}/pdf")).content)
        invoice_pdf = _pdf_text((await portal.get(f"/p/invoices/{f3.id}/pdf")).content)
    assert "Credit note AV-1" in note_pdf and "Nothing to pay" in note_pdf
    assert "How to pay" not in note_pdf and "IBAN" not in note_pdf
    assert "Due date" not in note_pdf and "€250.00" in note_pdf
    assert "Invoice F-3" in invoice_pdf and "How to pay" in invoice_pdf and "IBAN" in invoice_pdf
    shown = re.findall(r'class="item-number">\s*<span class="strong">([^<]+)<', html)
    assert shown == ["F-2", "F-3", "F-4"]
    for figure in ("€150.00", "€50.00", "€120.00", "€200.00", "€320.00"):
        assert figure in html, figure
    assert "AV-1" not in html and payment.ref not in html
    async with app_client(app) as bo:
        await sign_in(bo, "fin@seller.example")
        account = (await bo.get(f"/backoffice/customers/{customer.id}")).text
    for figure in ("€150.00", "€50.00", "€120.00", "€320.00"):
        assert figure in account, figure

    # The accounting export: one row per payment received (the bank transfer, a payment sent
    # through the API; not the credit note), its allocations on their own sheet; both sum.
    async with app_client(app) as api:
        sent = await api.post(
            "/api/v1/payments",
            json={
                "ref": "API-77",
                "customer_ref": customer.ref,
                "received_on": str(TODAY),
                "amount": "75.00",
            },
            headers={"Authorization": f"Bearer {clear}"},
        )
        assert sent.status_code == 201, sent.text
        # The ERP corrects the credit note's total: what it already gave stays given.
        resent = await api.put(
            "/api/v1/items/AV-1",
            json={
                "customer_ref": customer.ref,
                "kind": "credit_note",
                "issue_date": str(note.issue_date),
                "due_date": str(note.due_date),
                "currency": "EUR",
                "total": "300.00",
            },
            headers={"Authorization": f"Bearer {clear}"},
        )
        assert resent.status_code == 200, resent.text
        assert await _open(note) == 5000
    async with app_client(app) as bo:
        await sign_in(bo, "fin@seller.example")
        book = await bo.get(
            "/backoffice/finance/export",
            params={"format": "xlsx", "date_from": str(TODAY), "date_to": str(TODAY)},
        )
        assert book.status_code == 200
        allocations_csv = await bo.get(
            "/backoffice/finance/export",
            params={"sheet": "allocations", "date_from": str(TODAY), "date_to": str(TODAY)},
        )
    workbook = load_workbook(io.BytesIO(book.content))
    assert workbook.sheetnames == ["Payments", "Allocations"]
    payments = [
        dict(zip(rows[0], row, strict=True))
        for rows in [list(workbook["Payments"].iter_rows(values_only=True))]
        for row in rows[1:]
    ]
    assert [(p["Payment"], p["Method"]) for p in payments] == [
        (payment.ref, "transfer"),
        ("API-77", "transfer"),
    ]
    received = sum(
        (p.amount_minor for p in await Payment.objects() if p.method not in ("credit_note",)),
        0,
    )
    assert sum(Decimal(str(p["Amount"])) for p in payments) == Decimal(received) / 100
    assert sum(Decimal(str(p["Amount"])) for p in payments) == Decimal("1325.00")
    assert payments[0]["Bank line"].startswith("BANK-") and payments[0]["Unapplied"] == 0
    assert payments[1]["Unapplied"] == 75
    allocated = list(workbook["Allocations"].iter_rows(values_only=True))
    assert [(r[0], r[3], Decimal(str(r[5]))) for r in allocated[1:]] == [
        (payment.ref, "F-1", Decimal("1000.00")),
        (payment.ref, "F-2", Decimal("250.00")),
    ]
    assert sum(Decimal(str(p["Applied"])) for p in payments) == Decimal("1250.00")
    text = allocations_csv.content.decode("utf-8-sig")
    assert allocations_csv.headers["content-disposition"].find("allocations-") > 0
    assert text.splitlines()[0].startswith("Payment,Received,Customer reference,Invoice")
    assert len(text.splitlines()) == 3 and "F-1" in text and "1000.00" in text


async def test_small_remainders_are_written_off_and_not_chased(db, databases, settings):
    company = await make_company(code="TOL", writeoff_tolerance_minor=1000, dunning_min_minor=0)
    await install_defaults(company.id)
    payer = await make_customer(company, name="Payer", payer_profile="negligent")
    other = await make_customer(company, name="Other", payer_profile="negligent")
    for c in (payer, other):
        await make_contact(c)
    short = await make_item(payer, "2408.98", due=TODAY - timedelta(days=30), number="S-1")
    untouched = await make_item(other, "8.00", due=TODAY - timedelta(days=30), number="S-2")
    paid = await make_payment(payer, "2400.00")
    await allocate(paid.id, short.id, Money(Decimal("2400.00"), "EUR"), FINANCE)
    from receivables.ledger import cash_application as cash

    # The run chases the unpaid 8.00, not the 8.98 left after a payment.
    await run_dunning(TODAY, settings_for())
    chased = {r["customer"] for r in await DunningAction.select(DunningAction.customer)}
    assert chased == {other.id}
    found = await cash.small_remainders()
    # Only a remainder after a payment: an 8.00 invoice nobody paid is still asked for.
    assert [(r.number, r.open.amount) for r in found] == [("S-1", Decimal("8.98"))]
    import pytest

    from receivables.errors import InvalidInput

    with pytest.raises(InvalidInput, match="reason"):
        await cash.write_off(short.id, "  ", FINANCE)
    with pytest.raises(InvalidInput, match="write-off tolerance"):
        await cash.write_off(untouched.id, "small", FINANCE)
    # The account page proposes it; finance writes it off from there in one click.
    await make_staff(Role.finance.value, email="fin2@seller.example")
    app = create_app(settings, engine=await databases.get(db))
    async with app_client(app) as bo:
        token = await sign_in(bo, "fin2@seller.example")
        page = (await bo.get(f"/backoffice/customers/{payer.id}")).text
        assert "Remainder <strong>€8.98</strong> on" in page and "Write off €8.98" in page
        done = await bo.post(
            f"/backoffice/finance/cash/write-off/{short.id}",
            data={
                "_csrf_token": token,
                "reason": "Bank charges",
                "back": f"/backoffice/customers/{payer.id}",
            },
        )
        assert done.headers["location"] == f"/backoffice/customers/{payer.id}"
        assert "Remainder written off" in (await bo.get(done.headers["location"])).text
    closed = await Item.objects().get(Item.id == short.id)
    assert (closed.open_minor, closed.status) == (0, "written_off")
    assert await cash.small_remainders() == []
    titles = [e.title for e in (await customer_timeline(payer.id)).events]
    assert "Remainder €8.98 written off: Bank charges" in titles
    # The write-off is not money received: not unapplied, not in the payments list.
    assert await cash.unapplied_money() == []
    # Undone with a reason: open again, under the tolerance again.
    write_off = await Payment.objects().get(Payment.method == "write_off")
    allocation = await Allocation.objects().get(Allocation.payment == write_off.id)
    await cash.take_back(allocation.id, "Customer will pay it", FINANCE)
    reopened = await Item.objects().get(Item.id == short.id)
    assert (reopened.open_minor, reopened.status) == (898, "open")
    assert [r.number for r in await cash.small_remainders()] == ["S-1"]
    assert (await verify()).ok


async def test_the_payments_list_is_newest_received_first_across_pages(db, monkeypatch):
    from receivables.ledger import payment_list

    company = await make_company(code="PAYL")
    buyer = await make_customer(company)
    days = {"P1": 1, "P2": 5, "P3": 0, "P4": 1}
    for ref, ago in days.items():  # recorded in this order, received on other days
        await make_payment(buyer, "10.00", ref=ref, received_on=TODAY - timedelta(days=ago))
    await make_payment(buyer, "1.00", ref="Write-off X", method="write_off")
    monkeypatch.setattr(payment_list, "PAGE", 2)
    first, older = await payment_list.list_payments()
    assert [p.ref for p in first] == ["P3", "P4"]
    second, last = await payment_list.list_payments(before=older)
    assert [p.ref for p in second] == ["P1", "P2"] and last is None


async def test_a_bank_overpayment_raises_the_same_exception_as_a_card_one(db):
    company, customer, _, (f1, *_), _ = await _world()
    csv = f"Date;Libellé;Montant;Devise;Id\n{TODAY:%d/%m/%Y};VIR F-1;1030,00;EUR;TX-OVER\n"
    await import_statement(
        company_id=company.id, filename="o.csv", content=csv.encode(), currency="EUR", actor=FINANCE
    )
    line = await BankLine.objects().first()
    payment_id = await confirm_line(line.id, actor=FINANCE, item_ids=[f1.id])
    assert await _open(f1) == 0
    flagged = await FinanceException.objects().get(FinanceException.customer == customer.id)
    assert (flagged.kind, flagged.amount_minor, flagged.key) == (
        "overpayment",
        3000,
        f"overpayment:BANK-{line.id}",
    )
    assert "Cash application" in flagged.detail and "refund" in flagged.action
    money = await cash_application.unapplied_money(customer_id=customer.id)
    assert [(m.id, m.left.amount) for m in money if m.kind == "payment"] == [
        (payment_id, Decimal("30.00"))
    ]
