"""Allocations: applying a payment to items, and reversing that, without ever drifting.

Open amounts are stored beside the totals for fast statements, and moved only here,
with guarded UPDATEs (`... WHERE open_minor >= x`) in the allocation's transaction: two
concurrent allocations cannot both take the last euro, on either engine. Both functions take
the account's history lock before their first row lock (`history.lock_accounts`), so they
queue behind a webhook or a dunning batch on the same account instead of deadlocking with it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from receivables import history
from receivables.db import atomic
from receivables.errors import AllocationRefused, NotFound
from receivables.history import Actor
from receivables.ledger.tables import Allocation, Item, ItemKind, ItemStatus, Payment
from receivables.money import Money, format_minor


async def allocate(payment_id: int, item_id: int, amount: Money, actor: Actor) -> int:
    """Apply `amount` of a payment to an invoice; returns the allocation id."""
    if amount.minor <= 0:
        raise AllocationRefused("an allocation must be a positive amount")
    async with atomic():
        payment = await Payment.objects().get(Payment.id == payment_id)
        item = await Item.objects().get(Item.id == item_id)
        if payment is None:
            raise NotFound(f"payment {payment_id}")
        if item is None:
            raise NotFound(f"item {item_id}")
        if item.kind == ItemKind.credit_note.value:
            raise AllocationRefused(f"{item.number} is a credit note; payments go to invoices")
        if item.customer != payment.customer:
            raise AllocationRefused(f"{item.number} belongs to another customer than the payment")
        if amount.currency != payment.currency or amount.currency != item.currency:
            raise AllocationRefused(
                f"currencies differ: payment {payment.currency}, item {item.currency}, "
                f"allocation {amount.currency}"
            )
        # Chain before rows: the account's lock first, then the guarded UPDATEs below.
        await history.lock_accounts([item.customer], company_id=item.company)
        minor = amount.minor
        taken = (
            await Payment.update({Payment.unapplied_minor: Payment.unapplied_minor - minor})
            .where((Payment.id == payment_id) & (Payment.unapplied_minor >= minor))
            .returning(Payment.id)
        )
        if not taken:
            raise AllocationRefused(
                f"payment {payment.ref} has only "
                f"{format_minor(payment.unapplied_minor, payment.currency)} left to apply"
            )
        reduced = (
            await Item.update({Item.open_minor: Item.open_minor - minor})
            .where((Item.id == item_id) & (Item.open_minor >= minor))
            .returning(Item.open_minor)
        )
        if not reduced:
            raise AllocationRefused(
                f"{item.number} has only {format_minor(item.open_minor, item.currency)} open"
            )
        if reduced[0]["open_minor"] == 0:
            await Item.update({Item.status: ItemStatus.paid.value}).where(Item.id == item_id)
        rows = await Allocation.insert(
            Allocation(payment=payment_id, item=item_id, amount_minor=minor)
        ).returning(Allocation.id)
        allocation_id = int(rows[0]["id"])
        await history.record(
            company_id=item.company,
            actor=actor,
            kind="allocation.created",
            customer_id=item.customer,
            item_id=item_id,
            details={
                "allocation": allocation_id,
                "payment": payment.ref,
                "item": item.number,
                "amount": str(amount.amount),
                "currency": amount.currency,
                "item_open_after": str(
                    Money.from_minor(reduced[0]["open_minor"], item.currency).amount
                ),
            },
        )
        return allocation_id


async def reverse(allocation_id: int, actor: Actor, reason: str) -> None:
    """Undo an allocation (bounced transfer, refund): the item re-opens, the payment frees up."""
    async with atomic():
        account = (
            await Allocation.select(
                Allocation.item.customer.as_alias("customer"),
                Allocation.item.company.as_alias("company"),
            )
            .where(Allocation.id == allocation_id)
            .first()
        )
        if account is None:
            raise NotFound(f"active allocation {allocation_id}")
        await history.lock_accounts([account["customer"]], company_id=account["company"])
        stamped = (
            await Allocation.update({Allocation.reversed_at: datetime.now(UTC)})
            .where((Allocation.id == allocation_id) & Allocation.reversed_at.is_null())
            .returning(Allocation.item, Allocation.payment, Allocation.amount_minor)
        )
        if not stamped:
            raise NotFound(f"active allocation {allocation_id}")
        row = stamped[0]
        minor = row["amount_minor"]
        await Payment.update({Payment.unapplied_minor: Payment.unapplied_minor + minor}).where(
            Payment.id == row["payment"]
        )
        await Item.update({Item.open_minor: Item.open_minor + minor}).where(Item.id == row["item"])
        item = await Item.objects().get(Item.id == row["item"])
        assert item is not None
        if item.status == ItemStatus.paid.value:
            await Item.update({Item.status: ItemStatus.open.value}).where(Item.id == item.id)
        await history.record(
            company_id=item.company,
            actor=actor,
            kind="allocation.reversed",
            customer_id=item.customer,
            item_id=item.id,
            details={
                "allocation": allocation_id,
                "item": item.number,
                "amount": str(Money.from_minor(minor, item.currency).amount),
                "currency": item.currency,
                "reason": reason,
            },
        )
