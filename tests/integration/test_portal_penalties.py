"""Late-payment penalties through the ledger, the back office and the portal, on both engines:
each amount for the days it was owed, a claim kept after a late payment in full, a waived
claim, an invoiced penalty on the statement.

Hand computation (France: ECB rate of the half-year + 10 points, EUR 40 per late invoice;
actual/365; cents x bp x days / 3,650,000 = interest in cents, rounded once per invoice).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from receivables.dunning.reference_rates import apply_preset, statement_penalties, terms_for
from receivables.history import Actor, HistoryEvent
from receivables.ledger.allocations import allocate
from receivables.ledger.penalties import invoice_penalties, waive_claim
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import Allocation, Company, Item, ItemKind, Payment
from receivables.ledger.timeline import customer_timeline, describe
from receivables.money import Money
from tests.factories import make_company, make_customer, make_item, make_payment
from tests.integration.test_backoffice import make_staff, sign_in
from tests.integration.test_portal_support import *  # noqa: F403 (fixtures)
from tests.integration.test_portal_support import make_account, open_visit

TODAY = date.today()
SYSTEM = Actor.system("collector")
D = date.fromisoformat


def eur(text: str) -> Money:
    return Money(Decimal(text), "EUR")


async def pay(customer, item, amount: str, on: date) -> None:
    payment = await make_payment(customer, amount, received_on=on)
    await allocate(payment.id, item.id, eur(amount), SYSTEM)


async def test_partial_late_waived_and_invoiced_claims(db):
    company = await make_company()
    await apply_preset(company.id, "france", SYSTEM)
    await Company.update({Company.penalties_invoiced: True}).where(Company.id == company.id)
    customer = await make_customer(company, ref="B1")
    due = D("2025-03-31")
    a = await make_item(customer, "1000.00", due=due, number="A")
    b = await make_item(customer, "1000.00", due=due, number="B")
    c = await make_item(customer, "500.00", due=due, number="C")
    await make_item(customer, "2000.00", due=due, number="D")
    await pay(customer, a, "600.00", D("2025-04-10"))  # part of A, 10 days late
    await pay(customer, b, "1000.00", D("2025-04-20"))  # all of B, 20 days late
    await pay(customer, c, "500.00", D("2025-03-30"))  # C on time: no claim

    on = D("2025-04-30")  # April 2025: ECB 3.15 % on 1 January + 10 = 13.15 %
    found = await statement_penalties(await build_statement(customer.id, on))
    by_number = {x.number: x for x in found.lines}
    assert sorted(by_number) == ["A", "B", "D"]
    # A: 600 for 10 days, 400 for 30: (60000 x 1315 x 10 + 40000 x 1315 x 30) / 3650000
    #    = 648.49 -> 6.48.
    assert (by_number["A"].interest, by_number["A"].base) == (eur("6.48"), eur("400.00"))
    # B, paid late in full: 100000 x 1315 x 20 / 3650000 = 720.55 -> 7.21; nothing overdue.
    assert (by_number["B"].interest, by_number["B"].paid, by_number["B"].days_late) == (
        eur("7.21"),
        True,
        20,
    )
    # D: 200000 x 1315 x 30 / 3650000 = 2161.64 -> 21.62.
    assert by_number["D"].interest == eur("21.62")
    assert found.totals == {"EUR": eur("155.31")}  # 35.31 interest + 3 x 40.00

    terms = await terms_for(await Company.objects().get(Company.id == company.id))
    await waive_claim(customer.id, by_number["D"].item_id, "goodwill", on, terms, SYSTEM)
    found = await statement_penalties(await build_statement(customer.id, on))
    assert [x.number for x in found.waived] == ["D"] and found.waived[0].reason == "goodwill"
    assert found.totals == {"EUR": eur("93.69")}  # 6.48 + 7.21 + 2 x 40.00

    [penalty] = await invoice_penalties(customer.id, on, terms, SYSTEM)
    assert (penalty.kind, penalty.number, penalty.total_minor) == ("penalty", "PEN-B1-1", 9369)
    statement = await build_statement(customer.id, on)
    assert "PEN-B1-1" in [i.number for i in statement.invoices]
    found = await statement_penalties(statement)
    assert found.lines == [] and not found.applies  # all of it is on the statement now

    # Ten days on, A's open 400.00 kept accruing: to 10 May, 600 x 10 days + 400 x 40 days:
    # (60000 x 1315 x 10 + 40000 x 1315 x 40) / 3650000 = 792.60 -> 7.93, of which 6.48 was
    # invoiced: 1.45 more, no second compensation. B is settled; the penalty item, unpaid
    # for 10 days, is overdue on the statement and bears no penalty itself.
    later = await build_statement(customer.id, D("2025-05-10"))
    found = await statement_penalties(later)
    assert [(x.number, x.interest, x.compensation) for x in found.lines] == [
        ("A", eur("1.45"), eur("0.00"))
    ]
    assert [i.number for i in later.overdue if i.kind == "penalty"] == ["PEN-B1-1"]
    kinds = [
        e["kind"]
        for e in await HistoryEvent.select(HistoryEvent.kind).where(
            HistoryEvent.customer == customer.id
        )
    ]
    assert "penalty.waived" in kinds and "penalty.invoiced" in kinds
    told = [describe(e) for e in (await customer_timeline(customer.id, category="payment")).events]
    assert "Penalty claim on D waived (21.62 EUR + 40.00 EUR): goodwill" in told
    assert "Penalties invoiced as PEN-B1-1: 93.69 EUR (late A, B)" in told


async def test_a_credit_note_counts_from_the_day_it_was_applied(db):
    # The credit note is dated 1 March, before the due date, but applied to the invoice on
    # 15 April: its 1000.00 was owed 1..15 April, 15 days at 13.15 %:
    # 100000 x 1315 x 15 / 3650000 = 540.41 -> 5.40, plus EUR 40.
    company = await make_company(timezone="Europe/Paris")
    await apply_preset(company.id, "france", SYSTEM)
    customer = await make_customer(company)
    invoice = await make_item(customer, "1000.00", due=D("2025-03-31"), number="E")
    note = await make_item(customer, "1000.00", due=D("2025-03-01"), kind=ItemKind.credit_note)
    carrier = await make_payment(
        customer,
        "1000.00",
        received_on=D("2025-03-01"),
        method=Payment.Method.credit_note.value,
        credit_note=note.id,
    )
    await allocate(carrier.id, invoice.id, eur("1000.00"), SYSTEM)
    await Allocation.update({Allocation.created_at: datetime(2025, 4, 15, 9, tzinfo=UTC)}).where(
        Allocation.payment == carrier.id
    )
    found = await statement_penalties(await build_statement(customer.id, D("2025-06-30")))
    [line] = found.lines
    assert (line.number, line.days_late, line.interest) == ("E", 15, eur("5.40"))
    assert found.totals == {"EUR": eur("45.40")}


async def test_portal_and_back_office_show_one_figure(pclient, portal_settings):
    account = await make_account(
        portal_settings, policy="france", penalty_margin_bp=1000, compensation_minor=4000
    )
    customer, late, late2 = account.customer, account.items["late"], account.items["late2"]
    # ECB 2.15 % since 1 July 2025 (seeded) + 10 = 12.15 % for every day of these claims.
    # late, 1200.00 due 40 days ago, 600.00 paid 30 days ago: 600 for 10 days, 600 for 40:
    # 60000 x 1215 x (10 + 40) / 3650000 = 998.63 -> 9.99.
    await pay(customer, late, "600.00", TODAY - timedelta(days=30))
    # late2, 300.50 due 5 days ago, paid in full 2 days ago: 30050 x 1215 x 3 / 3650000
    # = 30.01 -> 0.30. Total 9.99 + 0.30 + 2 x 40.00 = 90.29.
    await pay(customer, late2, "300.50", TODAY - timedelta(days=2))
    html = (await open_visit(pclient, account)).text
    assert "Total penalties" in html and "€90.29" in html

    await make_staff("collector", email="col@seller.example")
    token = await sign_in(pclient, "col@seller.example")
    card = await pclient.get(f"/backoffice/customers/{customer.id}/penalties")
    assert card.status_code == 200 and "paid late" in card.text and "€9.99" in card.text
    assert "/penalties/invoice" not in card.text  # the company does not invoice penalties (yet)
    waive = f"/backoffice/customers/{customer.id}/penalties/{late2.id}/waive"
    r = await pclient.post(waive, data={"_csrf_token": token, "reason": " "})
    assert r.status_code == 303
    assert "say why the claim is waived" in (await pclient.get(r.headers["location"])).text
    r = await pclient.post(waive, data={"_csrf_token": token, "reason": "Paid 3 days late"})
    assert r.status_code == 303

    await Company.update({Company.penalties_invoiced: True}).where(Company.id == account.company.id)
    card = await pclient.get(f"/backoffice/customers/{customer.id}/penalties")
    assert "waived" in card.text and "Paid 3 days late" in card.text
    # The button invoices 9.99 + 40.00: late2's claim is waived.
    assert (
        '/penalties/invoice">' in card.text
        and 'Invoice <span class="bo-amount">€49.99' in card.text
    )
    html = (await open_visit(pclient, account)).text
    assert "€49.99" in html and f"Penalties waived: {late2.number}." in html
    r = await pclient.post(
        f"/backoffice/customers/{customer.id}/penalties/invoice", data={"_csrf_token": token}
    )
    assert r.status_code == 303
    penalty = await Item.objects().get((Item.customer == customer.id) & (Item.kind == "penalty"))
    assert penalty.total_minor == 4999
    page = await pclient.get(f"/backoffice/items/{penalty.id}")
    assert f"Penalty invoice {penalty.number}" in page.text
    html = (await open_visit(pclient, account)).text
    assert penalty.number in html and "Total penalties" not in html
