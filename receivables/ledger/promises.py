"""Promises to pay, tracked both ways: kept when the invoice is paid by the promised date
plus the grace (`PROMISE_GRACE_DAYS`), broken when that day passes with it still open.

A promise is opened wherever an invoice becomes 'promised' (a validated portal answer, a
call, the back office); the daily run settles them for its batch of accounts and writes
`promise.kept` / `promise.broken` in the same transaction. A broken promise sets the
invoice back to 'open': it asks for payment again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from receivables import history
from receivables.history import Actor
from receivables.ledger.statement import promise_broken
from receivables.ledger.tables import Item, ItemStatus, PromiseToPay


async def open_promise(
    *,
    company_id: int,
    customer_id: int,
    item_id: int,
    promised_for: date,
    made_on: date,
    source: str,
) -> int:
    """Record a new promise on an invoice (a running one on it is withdrawn: replaced)."""
    await PromiseToPay.update(
        {
            PromiseToPay.status: PromiseToPay.Status.withdrawn.value,
            PromiseToPay.closed_on: made_on,
        }
    ).where(
        (PromiseToPay.item == item_id) & (PromiseToPay.status == PromiseToPay.Status.running.value)
    )
    rows = await PromiseToPay.insert(
        PromiseToPay(
            company=company_id,
            customer=customer_id,
            item=item_id,
            promised_for=promised_for,
            made_on=made_on,
            source=source[:20],
        )
    ).returning(PromiseToPay.id)
    return int(rows[0]["id"])


@dataclass
class Settled:
    kept: list[dict[str, Any]] = field(default_factory=list)
    broken: list[dict[str, Any]] = field(default_factory=list)
    """Each: company, customer, item, number, promised_for."""


def _ids(values: list[int]) -> str:
    return ",".join(str(int(v)) for v in values) or "NULL"


async def settle_promises(customer_ids: list[int], on: date, actor: Actor) -> Settled:
    """Kept and broken promises of these accounts on `on` (caller holds the transaction)."""
    result = Settled()
    if not customer_ids:
        return result
    running = await PromiseToPay.raw(
        "SELECT p.id, p.company, p.customer, p.item, p.promised_for, i.number, i.status, "  # noqa: S608
        "i.open_minor, i.promise_date FROM promise_to_pay p JOIN item i ON i.id = p.item "
        f"WHERE p.customer IN ({_ids(customer_ids)}) AND p.status = 'running'"
    )
    # Invoices promised without a tracked promise (imported, or older data) break too.
    untracked = await Item.raw(
        "SELECT id AS item, company, customer, number, status, open_minor, promise_date, "  # noqa: S608
        "promise_date AS promised_for FROM item "
        f"WHERE customer IN ({_ids(customer_ids)}) AND status = 'promised' "
        "AND NOT EXISTS (SELECT 1 FROM promise_to_pay p WHERE p.item = item.id "
        "AND p.status = 'running')"
    )
    closing: dict[str, list[int]] = {"kept": [], "broken": [], "withdrawn": []}
    broken_items: list[int] = []
    for row in [*running, *untracked]:
        for key in ("promised_for", "promise_date"):
            if isinstance(row[key], str):
                row[key] = date.fromisoformat(row[key])
        tracked = "id" in row
        entry = {
            "company": row["company"],
            "customer": row["customer"],
            "item": row["item"],
            "number": row["number"],
            "promised_for": row["promised_for"],
        }
        if row["open_minor"] <= 0 or row["status"] == ItemStatus.paid.value:
            if tracked:
                closing["kept"].append(row["id"])
                result.kept.append(entry)
        elif (
            row["status"] != ItemStatus.promised.value or row["promise_date"] != row["promised_for"]
        ):
            if tracked:
                closing["withdrawn"].append(row["id"])  # disputed, cancelled, or re-promised
        elif promise_broken(row["status"], row["promise_date"], on):
            if tracked:
                closing["broken"].append(row["id"])
            broken_items.append(row["item"])
            result.broken.append(entry)
    for status, ids in closing.items():
        if ids:
            sql = "UPDATE promise_to_pay SET status = {}, closed_on = {} WHERE id IN (%s)"
            await PromiseToPay.raw(sql % _ids(ids), status, on)
    if broken_items:
        await Item.raw(
            "UPDATE item SET status = 'open', promise_date = NULL "  # noqa: S608
            f"WHERE id IN ({_ids(broken_items)}) AND status = 'promised'"
        )
    for kind, entries in (("promise.kept", result.kept), ("promise.broken", result.broken)):
        for e in sorted(entries, key=lambda e: e["item"]):
            await history.record(
                company_id=e["company"],
                actor=actor,
                kind=kind,
                customer_id=e["customer"],
                item_id=e["item"],
                details={"item": e["number"], "promise_date": e["promised_for"], "on": on},
            )
    return result


async def promise_counts(customer_id: int) -> dict[str, int]:
    """The account's promises by status (running, kept, broken, withdrawn)."""
    rows = await PromiseToPay.select(PromiseToPay.status).where(
        PromiseToPay.customer == customer_id
    )
    counts = Counter(r["status"] for r in rows)
    return {s.value: counts.get(s.value, 0) for s in PromiseToPay.Status}
