"""The collectors' inbox over the portal's pending answers: filters, and what each proposes.

Answers, their validation and rejection belong to `receivables.portal.feedback` (one
implementation: a guarded UPDATE in the history's transaction). This module only reads:
it takes `pending_feedback()` (which applies every filter in SQL) as the source of the list
and shapes each answer with the status it proposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from receivables.clock import company_today
from receivables.ledger.tables import ItemStatus
from receivables.money import Money
from receivables.portal.feedback import pending_feedback
from receivables.portal.tables import Feedback, FeedbackKind, FeedbackStatus

INBOX_LIMIT = 2000

PROPOSED_STATUS = {
    FeedbackKind.paid.value: ItemStatus.paid_pending.value,
    FeedbackKind.promise.value: ItemStatus.promised.value,
    FeedbackKind.dispute.value: ItemStatus.disputed.value,
}
"""The item status a validated answer sets; a question leaves the status as it is."""


@dataclass(frozen=True)
class InboxFilters:
    collector_id: int | None = None
    unassigned: bool = False
    kind: str = ""
    customer_id: int | None = None


@dataclass(frozen=True)
class InboxEntry:
    id: int
    created_at: datetime
    kind: str
    batch: str
    customer_id: int
    customer_name: str
    customer_ref: str
    collector_id: int | None
    collector_name: str
    item_id: int
    item_number: str
    item_status: str
    due_date: date
    open: Money
    contact_name: str
    contact_email: str
    paid_on: date | None
    method: str
    reference: str
    promise_date: date | None
    dispute_reason: str
    text: str
    proof_name: str
    proof_type: str
    has_proof: bool
    today: date

    @property
    def proposed_status(self) -> str:
        return PROPOSED_STATUS.get(self.kind, "")

    @property
    def days_late(self) -> int:
        return max(0, (self.today - self.due_date).days)


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _entry(row: dict[str, Any], collector: tuple[int | None, str], today: date) -> InboxEntry:
    created = row["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return InboxEntry(
        id=row["id"],
        created_at=created,
        kind=row["kind"],
        batch=row["batch"],
        customer_id=row["customer"],
        customer_name=row["customer_name"],
        customer_ref=row["customer_ref"],
        collector_id=collector[0],
        collector_name=collector[1],
        item_id=row["item"],
        item_number=row["item_number"],
        item_status=row["item_status"],
        due_date=_date(row["due_date"]) or today,
        today=today,
        open=row["open"],
        contact_name=row.get("contact_name") or "",
        contact_email=row.get("contact_email") or "",
        paid_on=_date(row["paid_on"]),
        method=row["method"],
        reference=row["reference"],
        promise_date=_date(row["promise_date"]),
        dispute_reason=row["dispute_reason"],
        text=row["text"],
        proof_name=row["proof_name"],
        proof_type=row["proof_type"],
        has_proof=bool(row["proof_path"]),
    )


async def inbox(filters: InboxFilters) -> list[InboxEntry]:
    """Pending answers, oldest first, narrowed by the filters."""
    rows = await pending_feedback(
        customer_id=filters.customer_id,
        kind=filters.kind or None,
        collector_id=filters.collector_id,
        unassigned=filters.unassigned,
        limit=INBOX_LIMIT,
    )
    today = await company_today()
    return [_entry(row, (row["collector_id"], row["collector_name"] or ""), today) for row in rows]


async def pending_for_customer(customer_id: int) -> list[InboxEntry]:
    return await inbox(InboxFilters(customer_id=customer_id))


async def pending_count() -> int:
    """For the navigation badge: every answer waiting for a collector."""
    return await Feedback.count().where(Feedback.status == FeedbackStatus.pending.value)


@dataclass(frozen=True)
class FeedbackRef:
    """Where an answer lives and whether it is still to decide (for links from emails)."""

    id: int
    item_id: int
    customer_id: int
    status: str
    decided_by: str
    decided_at: datetime | None
    proof_path: str
    proof_name: str
    proof_type: str


async def feedback_ref(feedback_id: int) -> FeedbackRef | None:
    row = (
        await Feedback.select(
            Feedback.id,
            Feedback.item,
            Feedback.customer,
            Feedback.status,
            Feedback.decided_by,
            Feedback.decided_at,
            Feedback.proof_path,
            Feedback.proof_name,
            Feedback.proof_type,
        )
        .where(Feedback.id == feedback_id)
        .first()
    )
    if row is None:
        return None
    return FeedbackRef(
        id=row["id"],
        item_id=row["item"],
        customer_id=row["customer"],
        status=row["status"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        proof_path=row["proof_path"],
        proof_name=row["proof_name"],
        proof_type=row["proof_type"],
    )
