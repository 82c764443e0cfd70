"""What Stripe says about a payment, applied to the ledger.

Every function here runs inside the caller's transaction (the webhook's), works from the
object just re-read from Stripe rather than from the event that announced it, and is
idempotent: applying the same state twice, or an older state after a newer one, changes
nothing. The payment's account is locked first (`history.lock_accounts`: chain before
rows), then the online payment's row (Postgres), so two events about one payment, or an event
and an allocation from elsewhere on the same account, apply one after the other.

- processing: the selected invoices show "payment in progress";
- succeeded: a ledger payment for the gross amount, credit notes offset, then the money
  allocated to the invoices oldest first; any excess stays unapplied and is flagged;
- failed or canceled: the invoices get their status back;
- refunds and lost disputes: the money that left is taken back from the payment,
  reversing allocations newest first, so those invoices re-open.

Allocations go through `receivables.ledger.allocations` (allocate, reverse) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from receivables import history
from receivables.db import atomic, is_postgres
from receivables.history import Actor
from receivables.ledger.allocations import allocate, reverse
from receivables.ledger.tables import (
    Allocation,
    Company,
    Customer,
    Item,
    ItemKind,
    ItemStatus,
    Payment,
)
from receivables.money import Money, MoneyError, check_currency, format_minor
from receivables.payments.amounts import minor_from_stripe
from receivables.payments.flags import Kind, flag
from receivables.payments.gateway import object_id
from receivables.payments.tables import OnlinePayment, OnlinePaymentItem, StripeDispute

STRIPE = Actor.system("stripe")
Status = OnlinePayment.Status
ACTIVE = (Status.started.value, Status.requires_action.value, Status.processing.value)
FINAL = (Status.succeeded.value, Status.failed.value, Status.canceled.value)
_NOT_PAYABLE = (
    ItemStatus.paid.value,
    ItemStatus.cancelled.value,
    ItemStatus.payment_in_progress.value,
)


def stripe_time(seconds: int | None) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC) if seconds else datetime.now(UTC)


async def _lock(op_id: int) -> OnlinePayment:
    query = OnlinePayment.objects().where(OnlinePayment.id == op_id)
    if is_postgres():
        query = query.lock_rows("UPDATE")
    rows = await query
    return rows[0]


async def _save(op: OnlinePayment, **values: Any) -> None:
    for name, value in values.items():
        setattr(op, name, value)
    await OnlinePayment.update(
        {getattr(OnlinePayment, name): value for name, value in values.items()}
    ).where(OnlinePayment.id == op.id)


@dataclass
class Line:
    """A selected item, read fresh."""

    row: OnlinePaymentItem
    item: Item


async def _lines(op: OnlinePayment) -> list[Line]:
    rows = await OnlinePaymentItem.objects().where(OnlinePaymentItem.online_payment == op.id)
    if not rows:
        return []
    items = {i.id: i for i in await Item.objects().where(Item.id.is_in([r.item for r in rows]))}
    lines = [Line(r, items[r.item]) for r in rows]
    lines.sort(key=lambda line: (line.item.due_date, line.item.id))  # oldest first
    return lines


def _invoices(lines: list[Line]) -> list[Line]:
    return [line for line in lines if line.item.kind == ItemKind.invoice.value]


def _numbers(lines: list[Line]) -> list[str]:
    return [line.item.number for line in lines]


# ------------------------------------------------------------------ payment intents


async def find_online_payment(intent: dict[str, Any]) -> OnlinePayment | None:
    """Ours by intent id, else by the key we put in its metadata (then linked)."""
    op = await OnlinePayment.objects().get(OnlinePayment.intent_id == intent["id"])
    if op is not None:
        return op
    key = str((intent.get("metadata") or {}).get("relance_payment") or "")
    if not key:
        return None
    op = await OnlinePayment.objects().get(OnlinePayment.key == key)
    if op is not None and (op.intent_id is None or op.intent_id.startswith("pending:")):
        await _save(op, intent_id=intent["id"])
    return op


async def _outside_payment(intent: dict[str, Any]) -> OnlinePayment | None:
    """A PaymentIntent made outside the portal that names one of our companies."""
    meta = intent.get("metadata") or {}
    code = str(meta.get("relance_company") or "")
    company = await Company.objects().get(Company.code == code) if code else None
    if company is None:
        return None  # not ours: the Stripe account may serve other systems
    customer = None
    if meta.get("relance_customer"):
        customer = await Customer.objects().get(
            (Customer.company == company.id) & (Customer.ref == str(meta["relance_customer"]))
        )
    currency = check_currency(intent["currency"])
    key = f"ext-{intent['id']}"[:40]
    await OnlinePayment.insert(
        OnlinePayment(
            key=key,
            company=company.id,
            customer=customer.id if customer else None,
            intent_id=intent["id"],
            currency=currency,
            amount_minor=minor_from_stripe(int(intent["amount"]), currency),
        )
    ).on_conflict(target=OnlinePayment.key, action="DO NOTHING")  # two events at once
    return await OnlinePayment.objects().get(OnlinePayment.key == key)


async def _account_of(intent: dict[str, Any]) -> tuple[int, int | None] | None:
    """(company, customer) the intent is about, read without locking anything."""
    columns = (OnlinePayment.company, OnlinePayment.customer)
    row = (
        await OnlinePayment.select(*columns).where(OnlinePayment.intent_id == intent["id"]).first()
    )
    key = str((intent.get("metadata") or {}).get("relance_payment") or "")
    if row is None and key:
        row = await OnlinePayment.select(*columns).where(OnlinePayment.key == key).first()
    if row is not None:
        return row["company"], row["customer"]
    meta = intent.get("metadata") or {}
    code = str(meta.get("relance_company") or "")
    company = await Company.select(Company.id).where(Company.code == code).first() if code else None
    if company is None:
        return None
    customer = None
    if meta.get("relance_customer"):
        customer = (
            await Customer.select(Customer.id)
            .where(
                (Customer.company == company["id"])
                & (Customer.ref == str(meta["relance_customer"]))
            )
            .first()
        )
    return company["id"], customer["id"] if customer else None


async def _lock_account(company_id: int, customer_id: int | None) -> None:
    """Chain before rows: the payment's account (or its company's chain when the payer is
    unknown) is locked before the online payment's row and the ledger's."""
    if customer_id is None:
        await history.lock_accounts(company_wide=[company_id])
    else:
        await history.lock_accounts([customer_id], company_id=company_id)


async def sync_intent(intent: dict[str, Any]) -> OnlinePayment | None:
    """Bring our side of a PaymentIntent to the state Stripe reports now."""
    async with atomic():
        account = await _account_of(intent)
        if account is not None:
            await _lock_account(*account)
        op = await find_online_payment(intent)
        if op is None:
            op = await _outside_payment(intent)
            if op is None:
                return None
        op = await _lock(op.id)
        status = intent.get("status")
        if status == "succeeded":
            await _succeeded(op, intent)
        elif status == "processing":
            await _processing(op)
        elif status == "canceled":
            await _failed(op, "The payment was canceled.", canceled=True)
        elif status == "requires_payment_method" and intent.get("last_payment_error"):
            error = intent["last_payment_error"] or {}
            await _failed(op, str(error.get("message") or "The payment failed."))
        elif status == "requires_action" and op.status == Status.started.value:
            await _save(op, status=Status.requires_action.value)
        return op


async def _processing(op: OnlinePayment) -> None:
    if op.status not in (Status.started.value, Status.requires_action.value):
        return
    marked = []
    for line in _invoices(await _lines(op)):
        item = line.item
        if item.status in _NOT_PAYABLE or item.open_minor <= 0:
            continue
        changed = (
            await Item.update({Item.status: ItemStatus.payment_in_progress.value})
            .where((Item.id == item.id) & (Item.status == item.status))
            .returning(Item.id)
        )
        if changed:
            await OnlinePaymentItem.update({OnlinePaymentItem.prior_status: item.status}).where(
                OnlinePaymentItem.id == line.row.id
            )
            marked.append(item.number)
    await _save(op, status=Status.processing.value)
    await _record(op, "payment.processing", items=marked)


async def _restore_items(op: OnlinePayment) -> list[str]:
    """Items still shown 'payment in progress' by this payment get their status back."""
    restored = []
    for line in await _lines(op):
        prior = line.row.prior_status
        if not prior:
            continue
        back = (
            await Item.update({Item.status: prior})
            .where(
                (Item.id == line.item.id) & (Item.status == ItemStatus.payment_in_progress.value)
            )
            .returning(Item.id)
        )
        await OnlinePaymentItem.update({OnlinePaymentItem.prior_status: ""}).where(
            OnlinePaymentItem.id == line.row.id
        )
        if back:
            restored.append(line.item.number)
    return restored


async def _failed(op: OnlinePayment, message: str, *, canceled: bool = False) -> None:
    if op.status in FINAL:
        return
    was_processing = op.status == Status.processing.value
    reopened = await _restore_items(op)
    await _save(
        op,
        status=Status.canceled.value if canceled else Status.failed.value,
        failure_message=message[:1000],
    )
    await _record(op, "payment.failed", message=message, reopened=reopened)
    if was_processing:
        await flag(
            Kind.failed,
            op.key,
            detail=f"Payment {op.intent_id} failed after it was under way: {message}",
            company_id=op.company,
            customer_id=op.customer,
            online_payment_id=op.id,
            amount_minor=op.amount_minor,
            currency=op.currency,
        )


def _charge_figures(intent: dict[str, Any]) -> dict[str, Any]:
    """Charge id, fee, net and settlement currency from the expanded latest charge."""
    charge = intent.get("latest_charge")
    figures: dict[str, Any] = {"charge_id": object_id(charge)}
    paid_at = intent.get("created")
    if isinstance(charge, dict):
        paid_at = charge.get("created") or paid_at
        txn = charge.get("balance_transaction")
        if isinstance(txn, dict) and txn.get("currency"):
            settlement = check_currency(txn["currency"])
            figures.update(
                balance_transaction_id=str(txn.get("id") or ""),
                settlement_currency=settlement,
                fee_minor=minor_from_stripe(int(txn.get("fee") or 0), settlement),
                net_minor=minor_from_stripe(int(txn["net"]), settlement),
            )
    figures["succeeded_at"] = stripe_time(paid_at)
    return figures


async def _succeeded(op: OnlinePayment, intent: dict[str, Any]) -> None:
    if op.status == Status.succeeded.value:
        return
    currency = check_currency(intent["currency"])
    gross = int(intent.get("amount_received") or intent["amount"])
    received = minor_from_stripe(gross, currency)
    figures = _charge_figures(intent)
    received_on: date = figures["succeeded_at"].date()

    payment_id = None
    if op.customer is not None:
        rows = await Payment.insert(
            Payment(
                company=op.company,
                customer=op.customer,
                ref=str(intent["id"])[:64],
                received_on=received_on,
                method=Payment.Method.card.value,
                currency=currency,
                amount_minor=received,
                unapplied_minor=received,
            )
        ).returning(Payment.id)
        payment_id = int(rows[0]["id"])
    await _save(
        op,
        status=Status.succeeded.value,
        received_minor=received,
        payment=payment_id,
        intent_id=intent["id"],
        **figures,
    )
    await _record(
        op,
        "payment.received",
        payment=intent["id"],
        amount=format_minor(received, currency),
        method="card",
        fee=format_minor(figures["fee_minor"], figures["settlement_currency"])
        if figures.get("fee_minor") is not None
        else "",
    )

    lines = await _lines(op)
    if payment_id is None or not _invoices(lines):
        await _restore_items(op)
        who = "an unknown customer" if op.customer is None else "no invoice we know"
        await flag(
            Kind.unallocated,
            op.key,
            detail=f"Card payment {intent['id']} of {format_minor(received, currency)} "
            f"names {who}.",
            company_id=op.company,
            customer_id=op.customer,
            online_payment_id=op.id,
            amount_minor=received,
            currency=currency,
        )
        return
    if currency != op.currency:
        await _restore_items(op)
        await flag(
            Kind.currency_mismatch,
            op.key,
            detail=f"Paid {format_minor(received, currency)} for invoices in {op.currency} "
            f"({', '.join(_numbers(lines))}).",
            company_id=op.company,
            customer_id=op.customer,
            online_payment_id=op.id,
            amount_minor=received,
            currency=currency,
        )
        return
    await _apply_to_selection(op, payment_id, received, lines)


async def _apply_to_selection(
    op: OnlinePayment, payment_id: int, received: int, lines: list[Line]
) -> None:
    invoices = _invoices(lines)
    for line in invoices:
        short = line.row.amount_minor - line.item.open_minor
        if short > 0:
            await flag(
                Kind.already_paid,
                f"{op.key}:{line.item.id}",
                detail=f"{line.item.number} was selected with "
                f"{format_minor(line.row.amount_minor, op.currency)} open; "
                f"{format_minor(short, op.currency)} of it was settled another way first.",
                company_id=op.company,
                customer_id=op.customer,
                online_payment_id=op.id,
                amount_minor=short,
                currency=op.currency,
            )
    for line in lines:
        if line.item.kind == ItemKind.credit_note.value:
            await _offset_credit_note(op, line, invoices)
    excess = await _spread(payment_id, op.currency, invoices, received)
    if excess > 0:
        await flag(
            Kind.overpayment,
            op.key,
            detail=f"{format_minor(excess, op.currency)} of card payment {op.intent_id} is "
            f"more than the invoices it pays ({', '.join(_numbers(invoices))}); kept as credit.",
            company_id=op.company,
            customer_id=op.customer,
            online_payment_id=op.id,
            amount_minor=excess,
            currency=op.currency,
        )
    await _restore_items(op)


async def _spread(payment_id: int, currency: str, invoices: list[Line], available: int) -> int:
    """Allocate up to `available` to the invoices, oldest first; returns what is left."""
    for line in invoices:
        if available <= 0:
            break
        row = await Item.select(Item.open_minor, Item.currency).where(Item.id == line.item.id)
        if not row or row[0]["currency"] != currency:
            continue
        take = min(int(row[0]["open_minor"]), available)
        if take > 0:
            await allocate(payment_id, line.item.id, Money.from_minor(take, currency), STRIPE)
            available -= take
    return available


async def _offset_credit_note(op: OnlinePayment, line: Line, invoices: list[Line]) -> None:
    """The customer deducted a credit note from the amount paid: it settles invoices too.

    It becomes a non-cash payment (method 'other') of the credit note's open amount, taken
    off the credit note, then allocated like the card money.
    """
    if line.row.offset_payment is not None:
        return
    note = line.item
    amount = min(note.open_minor, line.row.amount_minor)
    if amount <= 0:
        return  # used elsewhere meanwhile: the card money falls short, the newest stays open
    taken = (
        await Item.update({Item.open_minor: Item.open_minor - amount})
        .where((Item.id == note.id) & (Item.open_minor >= amount))
        .returning(Item.open_minor)
    )
    if not taken:
        return
    if taken[0]["open_minor"] == 0:
        await Item.update({Item.status: ItemStatus.paid.value}).where(Item.id == note.id)
    rows = await Payment.insert(
        Payment(
            company=op.company,
            customer=op.customer,
            ref=f"{note.number} offset #{op.id}"[:64],
            received_on=datetime.now(UTC).date(),
            method=Payment.Method.other.value,
            currency=note.currency,
            amount_minor=amount,
            unapplied_minor=amount,
        )
    ).returning(Payment.id)
    offset_id = int(rows[0]["id"])
    await OnlinePaymentItem.update({OnlinePaymentItem.offset_payment: offset_id}).where(
        OnlinePaymentItem.id == line.row.id
    )
    await history.record(
        company_id=op.company,
        actor=STRIPE,
        kind="credit_note.offset",
        customer_id=op.customer,
        item_id=note.id,
        details={
            "credit_note": note.number,
            "amount": format_minor(amount, note.currency),
            "online_payment": op.key,
            "intent": op.intent_id,
        },
    )
    await _spread(offset_id, note.currency, invoices, amount)


# ------------------------------------------------------------------ money that leaves again


async def sync_refunds(op: OnlinePayment, refunds: list[dict[str, Any]]) -> None:
    """Refunds as Stripe lists them now; pending ones count as gone, failed ones come back."""
    total = 0
    for refund in refunds:
        if refund.get("status") in ("succeeded", "pending", "requires_action"):
            total += minor_from_stripe(int(refund["amount"]), refund["currency"])
    async with atomic():
        await _lock_account(op.company, op.customer)
        op = await _lock(op.id)
        await _money_out(op, refunded=total, lost=op.dispute_lost_minor, reason="refund")


async def sync_dispute(
    op: OnlinePayment, dispute: dict[str, Any], *, event_type: str, event_at: datetime
) -> None:
    """A dispute's state as of its latest event; a lost one takes the money back."""
    async with atomic():
        await _lock_account(op.company, op.customer)
        op = await _lock(op.id)
        currency = check_currency(dispute["currency"])
        known = await StripeDispute.objects().get(StripeDispute.dispute_id == dispute["id"])
        amount = minor_from_stripe(int(dispute["amount"]), currency)
        status = str(dispute.get("status") or "")
        reason = str(dispute.get("reason") or "")[:60]
        if known is None:
            await StripeDispute.insert(
                StripeDispute(
                    dispute_id=dispute["id"],
                    online_payment=op.id,
                    currency=currency,
                    amount_minor=amount,
                    status=status,
                    reason=reason,
                    last_event_at=event_at,
                )
            )
        elif known.last_event_at <= event_at:
            await StripeDispute.update(
                {
                    StripeDispute.status: status,
                    StripeDispute.reason: reason,
                    StripeDispute.amount_minor: amount,
                    StripeDispute.last_event_at: event_at,
                }
            ).where(StripeDispute.id == known.id)
        latest = (
            await StripeDispute.objects()
            .where(StripeDispute.online_payment == op.id)
            .order_by(StripeDispute.id)
        )
        await _save(op, dispute_status=latest[-1].status if latest else "")
        if event_type in ("charge.dispute.created", "charge.dispute.funds_withdrawn"):
            await flag(
                Kind.disputed,
                dispute["id"],
                detail=f"Dispute {dispute['id']} ({reason or 'no reason given'}) "
                f"on card payment {op.intent_id} "
                f"for {format_minor(amount, currency)}.",
                company_id=op.company,
                customer_id=op.customer,
                online_payment_id=op.id,
                amount_minor=amount,
                currency=currency,
            )
        lost = sum(d.amount_minor for d in latest if d.status == "lost")
        await _money_out(op, refunded=op.refunded_minor, lost=lost, reason="dispute lost")


async def _money_out(op: OnlinePayment, *, refunded: int, lost: int, reason: str) -> None:
    delta = (refunded + lost) - (op.refunded_minor + op.dispute_lost_minor)
    await _save(op, refunded_minor=refunded, dispute_lost_minor=lost)
    if op.payment is None or delta == 0:
        return
    if delta > 0:
        await _take_back(op, delta, reason)
    else:
        await _give_back(op, -delta, reason)


async def _take_back(op: OnlinePayment, amount: int, reason: str) -> None:
    payment = await Payment.objects().get(Payment.id == op.payment)
    assert payment is not None
    need = amount - min(payment.unapplied_minor, amount)
    reopened: list[str] = []
    if need > 0:
        active = await Allocation.select(
            Allocation.id,
            Allocation.item,
            Allocation.amount_minor,
            Allocation.item.number.as_alias("number"),
            Allocation.item.due_date.as_alias("due_date"),
        ).where((Allocation.payment == payment.id) & Allocation.reversed_at.is_null())
        active.sort(key=lambda a: (a["due_date"], a["item"], a["id"]), reverse=True)
        freed = 0
        for row in active:  # newest first: the oldest invoices stay paid longest
            await reverse(row["id"], STRIPE, f"{reason} on card payment {op.intent_id}")
            freed += int(row["amount_minor"])
            reopened.append(row["number"])
            if freed >= need:
                if freed > need:
                    await allocate(
                        payment.id,
                        row["item"],
                        Money.from_minor(freed - need, payment.currency),
                        STRIPE,
                    )
                break
    cut = (
        await Payment.update(
            {
                Payment.amount_minor: Payment.amount_minor - amount,
                Payment.unapplied_minor: Payment.unapplied_minor - amount,
            }
        )
        .where((Payment.id == payment.id) & (Payment.unapplied_minor >= amount))
        .returning(Payment.id)
    )
    if not cut:
        raise MoneyError(f"cannot take {amount} back from payment {payment.ref}")
    await _record(
        op,
        "payment.refunded" if reason == "refund" else "payment.dispute_lost",
        amount=format_minor(amount, payment.currency),
        reopened=reopened,
    )


async def _give_back(op: OnlinePayment, amount: int, reason: str) -> None:
    """Money counted as gone came back (a refund failed): allocate it again, oldest first."""
    payment = await Payment.objects().get(Payment.id == op.payment)
    assert payment is not None
    await Payment.update(
        {
            Payment.amount_minor: Payment.amount_minor + amount,
            Payment.unapplied_minor: Payment.unapplied_minor + amount,
        }
    ).where(Payment.id == payment.id)
    lines = await _lines(op)
    left = await _spread(payment.id, payment.currency, _invoices(lines), amount)
    await _record(op, "payment.money_back", amount=format_minor(amount, payment.currency))
    await flag(
        Kind.refund_failed,
        f"{op.key}:{op.refunded_minor}",
        detail=f"{format_minor(amount, payment.currency)} of card payment {op.intent_id} "
        f"came back ({reason} failed); {format_minor(left, payment.currency)} left as credit.",
        company_id=op.company,
        customer_id=op.customer,
        online_payment_id=op.id,
        amount_minor=amount,
        currency=payment.currency,
    )


async def _record(op: OnlinePayment, kind: str, **details: Any) -> None:
    await history.record(
        company_id=op.company,
        actor=STRIPE,
        kind=kind,
        customer_id=op.customer,
        details={"online_payment": op.key, "intent": op.intent_id, **details},
    )
