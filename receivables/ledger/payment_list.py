"""Payments received, newest first (by the date received, then the latest recorded), for
finance: who paid, how much, how much is unapplied. Credit notes applied and write-offs are
not money received and are not listed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from receivables.ledger.tables import Payment
from receivables.money import Money

PAGE = 50


@dataclass(frozen=True)
class PaymentRow:
    id: int
    ref: str
    received_on: date
    method: str
    customer_id: int
    customer_name: str
    customer_ref: str
    amount: Money
    unapplied: Money


async def list_payments(
    *, unapplied_only: bool = False, before: int | None = None
) -> tuple[list[PaymentRow], int | None]:
    """One page, newest received first (ties: the latest recorded first), keyset on
    (received_on, id); returns the rows and the id of the payment to continue after, if any."""
    where: list[str] = [
        f"p.method NOT IN ('{Payment.Method.credit_note.value}', "
        f"'{Payment.Method.write_off.value}')"
    ]
    args: list[Any] = []
    if unapplied_only:
        where.append("p.unapplied_minor > 0")
    if before is not None:
        # Older than that payment in the list's order: an earlier day, or the same day and
        # recorded before it.
        where.append(
            "(p.received_on < (SELECT received_on FROM payment WHERE id = {}) OR "
            "(p.received_on = (SELECT received_on FROM payment WHERE id = {}) AND p.id < {}))"
        )
        args += [before, before, before]
    rows = await Payment.raw(
        "SELECT p.id, p.ref, p.received_on, p.method, p.currency, p.amount_minor, "  # noqa: S608
        "p.unapplied_minor, c.id AS customer_id, c.name AS customer_name, c.ref AS customer_ref "
        f"FROM payment p JOIN customer c ON c.id = p.customer WHERE {' AND '.join(where)} "
        f"ORDER BY p.received_on DESC, p.id DESC LIMIT {PAGE + 1}",
        *args,
    )
    more = len(rows) > PAGE
    result = []
    for r in rows[:PAGE]:
        received = r["received_on"]
        if isinstance(received, str):
            received = date.fromisoformat(received)
        result.append(
            PaymentRow(
                id=r["id"],
                ref=r["ref"],
                received_on=received,
                method=r["method"],
                customer_id=r["customer_id"],
                customer_name=r["customer_name"],
                customer_ref=r["customer_ref"],
                amount=Money.from_minor(int(r["amount_minor"]), r["currency"]),
                unapplied=Money.from_minor(int(r["unapplied_minor"]), r["currency"]),
            )
        )
    return result, (result[-1].id if more and result else None)
