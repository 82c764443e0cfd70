"""Exceptions finance acts on: each cause is flagged once, with the action to take."""

from __future__ import annotations

from datetime import UTC, datetime

from receivables import history
from receivables.errors import NotFound
from receivables.history import Actor
from receivables.money import format_minor
from receivables.payments.tables import FinanceException

Kind = FinanceException.Kind

ACTIONS = {
    Kind.overpayment: (
        "Keep the excess as credit for the customer's next invoices (allocate it from the "
        "payment), or refund it in Stripe."
    ),
    Kind.already_paid: (
        "The invoice was settled another way before this payment arrived: agree with the "
        "customer whether to keep the money as credit or refund it."
    ),
    Kind.currency_mismatch: (
        "The money came in another currency than the invoices: nothing was allocated. "
        "Allocate by hand at the booked rate, or refund."
    ),
    Kind.unallocated: (
        "This payment names no invoice Relance knows: find what it pays and allocate it."
    ),
    Kind.failed: (
        "The payment failed after it was under way; the invoices are open again. "
        "Tell the customer and ask for another payment."
    ),
    Kind.disputed: (
        "The customer's bank disputes this card payment: answer the dispute in Stripe with "
        "the invoices and proof of delivery before its deadline."
    ),
    Kind.refund_failed: (
        "A refund failed and the money is back: it was allocated to the invoices still open, "
        "the rest is credit. Tell the customer."
    ),
    Kind.payout_mismatch: (
        "This payout does not equal the sum of its balance transactions: compare it with "
        "Stripe's payout reconciliation report before booking it."
    ),
}


async def flag(
    kind: Kind,
    subject: str,
    *,
    detail: str,
    company_id: int | None = None,
    customer_id: int | None = None,
    online_payment_id: int | None = None,
    payout_id: int | None = None,
    amount_minor: int | None = None,
    currency: str = "",
) -> bool:
    """Open an exception unless this cause already has one; True when it is new."""
    key = f"{kind.value}:{subject}"[:120]
    rows = (
        await FinanceException.insert(
            FinanceException(
                key=key,
                kind=kind.value,
                company=company_id,
                customer=customer_id,
                online_payment=online_payment_id,
                payout=payout_id,
                amount_minor=amount_minor,
                currency=currency,
                detail=detail,
                action=ACTIONS[kind],
            )
        )
        .on_conflict(target=FinanceException.key, action="DO NOTHING")
        .returning(FinanceException.id)
    )
    if not rows:
        return False
    if company_id is not None:
        details: dict = {"exception": rows[0]["id"], "kind": kind.value, "detail": detail}
        if amount_minor is not None and currency:
            details["amount"] = format_minor(amount_minor, currency)
        await history.record(
            company_id=company_id,
            actor=Actor.system("payments"),
            kind="payment.flagged",
            customer_id=customer_id,
            details=details,
        )
    return True


async def resolve(exception_id: int, *, actor: Actor, note: str) -> None:
    """Mark an exception dealt with; it stays listed under 'resolved'."""
    done = (
        await FinanceException.update(
            {
                FinanceException.resolved_at: datetime.now(UTC),
                FinanceException.resolved_by: actor.label[:254],
                FinanceException.resolution: note.strip()[:2000],
            }
        )
        .where((FinanceException.id == exception_id) & FinanceException.resolved_at.is_null())
        .returning(FinanceException.id, FinanceException.company, FinanceException.customer)
    )
    if not done:
        raise NotFound(f"open exception {exception_id}")
    row = done[0]
    if row["company"] is not None:
        await history.record(
            company_id=row["company"],
            actor=actor,
            kind="payment.exception_resolved",
            customer_id=row["customer"],
            details={"exception": exception_id, "note": note.strip()[:2000]},
        )


async def auto_resolve(kind: Kind, subject: str, note: str) -> None:
    """Close an exception whose cause went away (a payout that adds up on a later check)."""
    await FinanceException.update(
        {
            FinanceException.resolved_at: datetime.now(UTC),
            FinanceException.resolved_by: "system",
            FinanceException.resolution: note,
        }
    ).where(
        (FinanceException.key == f"{kind.value}:{subject}"[:120])
        & FinanceException.resolved_at.is_null()
    )
