"""Allocations never overdraw and open amounts never drift (property-based, both engines)."""

import asyncio
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receivables.db import current_engine
from receivables.errors import AllocationRefused
from receivables.history import Actor
from receivables.ledger.allocations import allocate, reverse
from receivables.ledger.tables import Allocation, Item, ItemStatus, Payment
from receivables.money import Money
from tests.conftest import _empty_all_tables
from tests.factories import make_company, make_customer, make_item, make_payment

SYSTEM = Actor.system()


def eur(text: str) -> Money:
    return Money(Decimal(text), "EUR")


async def test_allocation_refuses_overdraw_and_currency_mix(db):
    company = await make_company()
    customer = await make_customer(company)
    item = await make_item(customer, "100.00")
    payment = await make_payment(customer, "150.00")
    usd_payment = await make_payment(customer, "10.00", currency="USD")
    await allocate(payment.id, item.id, eur("60.00"), SYSTEM)
    with pytest.raises(AllocationRefused, match="open"):
        await allocate(payment.id, item.id, eur("40.01"), SYSTEM)
    with pytest.raises(AllocationRefused, match="currencies differ"):
        await allocate(usd_payment.id, item.id, Money(Decimal("10.00"), "USD"), SYSTEM)
    await allocate(payment.id, item.id, eur("40.00"), SYSTEM)
    row = await Item.select(Item.open_minor, Item.status).where(Item.id == item.id).first()
    assert row == {"open_minor": 0, "status": ItemStatus.paid.value}
    other = await make_item(customer, "100.00")
    with pytest.raises(AllocationRefused, match="left to apply"):
        await allocate(payment.id, other.id, eur("50.01"), SYSTEM)


async def test_two_concurrent_allocations_cannot_both_take_the_last_euro(db):
    company = await make_company()
    customer = await make_customer(company)
    item = await make_item(customer, "100.00")
    p1 = await make_payment(customer, "100.00")
    p2 = await make_payment(customer, "100.00")
    results = await asyncio.gather(
        allocate(p1.id, item.id, eur("100.00"), SYSTEM),
        allocate(p2.id, item.id, eur("100.00"), SYSTEM),
        return_exceptions=True,
    )
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, AllocationRefused) for r in results) == 1
    assert (await Item.select(Item.open_minor).where(Item.id == item.id).first())["open_minor"] == 0


steps = st.lists(
    st.tuples(
        st.sampled_from(["allocate", "reverse"]),
        st.integers(0, 2),
        st.integers(0, 1),
        st.integers(1, 9000),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=steps)
async def test_open_amounts_never_drift(db, sequence):
    await _empty_all_tables(current_engine())
    company = await make_company()
    customer = await make_customer(company)
    items = [await make_item(customer, amt) for amt in ("50.00", "75.25", "10.01")]
    payments = [await make_payment(customer, amt) for amt in ("60.00", "90.00")]
    for op, i, p, cents in sequence:
        if op == "allocate":
            try:
                await allocate(payments[p].id, items[i].id, Money.from_minor(cents, "EUR"), SYSTEM)
            except AllocationRefused:
                pass
        else:
            active = await Allocation.select(Allocation.id).where(
                (Allocation.item == items[i].id) & Allocation.reversed_at.is_null()
            )
            if active:
                await reverse(active[0]["id"], SYSTEM, "test")

    for it in items:
        row = await Item.select(Item.total_minor, Item.open_minor).where(Item.id == it.id).first()
        allocated = sum(
            a["amount_minor"]
            for a in await Allocation.select(Allocation.amount_minor).where(
                (Allocation.item == it.id) & Allocation.reversed_at.is_null()
            )
        )
        assert row["open_minor"] == row["total_minor"] - allocated
        assert 0 <= row["open_minor"] <= row["total_minor"]
    for pay in payments:
        row = (
            await Payment.select(Payment.amount_minor, Payment.unapplied_minor)
            .where(Payment.id == pay.id)
            .first()
        )
        allocated = sum(
            a["amount_minor"]
            for a in await Allocation.select(Allocation.amount_minor).where(
                (Allocation.payment == pay.id) & Allocation.reversed_at.is_null()
            )
        )
        assert row["unapplied_minor"] == row["amount_minor"] - allocated
        assert row["unapplied_minor"] >= 0
