"""The statement of a hand-built customer, every figure checked, on both engines."""

from datetime import date, timedelta
from decimal import Decimal

from receivables.history import Actor
from receivables.ledger.allocations import allocate
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import ItemKind
from receivables.money import Money
from tests.factories import make_company, make_customer, make_item, make_payment

ON = date(2026, 6, 30)


def d(days_from_on: int) -> date:
    return ON + timedelta(days=days_from_on)


async def test_statement_every_figure(db):
    company = await make_company()
    customer = await make_customer(company)
    not_due = await make_item(customer, "1000.00", due=d(10), number="INV-ND")
    due_today = await make_item(customer, "50.00", due=d(0), number="INV-TODAY")
    await make_item(customer, "200.00", due=d(-1), number="INV-1")
    b30 = await make_item(customer, "300.00", due=d(-30), number="INV-30")
    b31 = await make_item(customer, "310.00", due=d(-31), number="INV-31")
    b61 = await make_item(customer, "610.00", due=d(-61), number="INV-61")
    b91 = await make_item(customer, "910.10", due=d(-91), number="INV-91")
    await make_item(customer, "120.00", due=d(-5), kind=ItemKind.credit_note, number="CN-1")
    paid = await make_item(customer, "75.00", due=d(-40), number="INV-PAID")
    # A partial payment on INV-30 and a full one on INV-PAID; 25.00 stays unapplied.
    payment = await make_payment(customer, "225.00")
    await allocate(payment.id, b30.id, Money(Decimal("125.00"), "EUR"), Actor.system())
    await allocate(payment.id, paid.id, Money(Decimal("75.00"), "EUR"), Actor.system())
    # Another currency keeps its own totals.
    usd = await make_item(customer, "99.99", due=d(-3), currency="USD", number="INV-USD")

    st = await build_statement(customer.id, ON)

    assert [i.number for i in st.invoices] == [
        "INV-91",
        "INV-61",
        "INV-31",
        "INV-30",
        "INV-USD",
        "INV-1",
        "INV-TODAY",
        "INV-ND",
    ]
    by_number = {i.number: i for i in st.invoices}
    assert by_number["INV-91"].days_late == 91 and by_number["INV-91"].bucket == "90+"
    assert by_number["INV-61"].bucket == "61-90"
    assert by_number["INV-31"].bucket == "31-60"
    assert by_number["INV-30"].bucket == "1-30" and by_number["INV-30"].open.amount == Decimal(
        "175.00"
    )
    assert by_number["INV-1"].bucket == "1-30" and by_number["INV-1"].days_late == 1
    assert by_number["INV-TODAY"].overdue is False and by_number["INV-TODAY"].bucket == "not_due"
    assert "INV-PAID" not in by_number
    assert [c.number for c in st.credit_notes] == ["CN-1"]
    assert [p.unapplied.amount for p in st.unapplied_payments] == [Decimal("25.00")]

    eur = st.totals["EUR"]
    assert eur.overdue.amount == Decimal("200.00") + Decimal("175.00") + Decimal(
        "310.00"
    ) + Decimal("610.00") + Decimal("910.10")
    assert eur.not_due.amount == Decimal("1050.00")
    assert eur.credit_notes.amount == Decimal("120.00")
    assert eur.unapplied_payments.amount == Decimal("25.00")
    assert eur.open.amount == eur.overdue.amount + Decimal("1050.00") - Decimal("145.00")
    assert {k: v.amount for k, v in eur.buckets.items()} == {
        "not_due": Decimal("1050.00"),
        "1-30": Decimal("375.00"),
        "31-60": Decimal("310.00"),
        "61-90": Decimal("610.00"),
        "90+": Decimal("910.10"),
    }
    usd_t = st.totals["USD"]
    assert usd_t.overdue == Money(Decimal("99.99"), "USD") and usd_t.open.amount == Decimal("99.99")
    assert st.currencies == ["EUR", "USD"]
    assert st.oldest_due_date == b91.due_date
    assert not_due.id in {i.id for i in st.not_due} and due_today.id in {i.id for i in st.not_due}
    assert b61.id in {i.id for i in st.overdue} and b31.id in {i.id for i in st.overdue}
    assert usd.id in {i.id for i in st.overdue}
