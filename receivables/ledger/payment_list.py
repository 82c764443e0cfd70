"""Payments received, newest first, for finance: who paid, how much, how much is unapplied."""

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
    """One page (keyset on id); returns the rows and the id to continue before, if any."""
    where: list[str] = []
    args: list[Any] = []
    if unapplied_only:
        where.append("p.unapplied_minor > 0")
    if before is not None:
        where.append("p.id < {}")
        args.append(before)
    rows = await Payment.raw(
        "SELECT p.id, p.ref, p.received_on, p.method, p.currency, p.amount_minor, "
        "p.unapplied_minor, c.id AS customer_id, c.name AS customer_name, c.ref AS customer_ref "
        "FROM payment p JOIN customer c ON c.id = p.customer "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + f"ORDER BY p.id DESC LIMIT {PAGE + 1}",
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
