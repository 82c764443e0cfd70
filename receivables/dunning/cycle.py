"""The rules of a dunning cycle, as pure functions: which items drive it, which step is due.

A cycle runs from the due date of the customer's oldest item that still drives dunning
(its anchor); its steps are made one after the other. An item drives dunning while it is
open, or promised with a date that has passed (a broken promise). Disputes, promises still
running and payments under way are on hold: shown to the customer, left out of "please
pay", never the anchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from receivables.dunning.tables import Level
from receivables.ledger.tables import ItemStatus

ON_HOLD = frozenset(
    {
        ItemStatus.disputed.value,
        ItemStatus.paid_pending.value,
        ItemStatus.payment_in_progress.value,
    }
)
LEVEL_ORDER = {level.value: i for i, level in enumerate(Level)}


def drives(status: str, promise_date: date | None, on: date) -> bool:
    """Whether an open invoice in this status asks for payment (and may anchor the cycle)."""
    if status == ItemStatus.open.value:
        return True
    if status == ItemStatus.promised.value:
        return promise_date is None or promise_date < on
    return False


def promise_broken(status: str, promise_date: date | None, on: date) -> bool:
    return status == ItemStatus.promised.value and promise_date is not None and promise_date < on


@dataclass(frozen=True)
class PlannedStep:
    """A scenario step as the run sees it."""

    id: int
    scenario_id: int
    position: int
    name: str
    level: str
    offset_days: int
    channel: str
    mode: str
    template_code: str
    attach_statement: bool
    attach_invoices: bool

    @property
    def order(self) -> tuple[int, int]:
        return (self.offset_days, self.position)


def step_date(anchor: date, offset_days: int) -> date:
    return anchor + timedelta(days=offset_days)


@dataclass(frozen=True)
class Made:
    """An action already made in the current cycle (it holds its place)."""

    step_id: int | None
    offset_days: int
    due_on: date


def next_step(
    steps: Sequence[PlannedStep], anchor: date, on: date, made: Sequence[Made]
) -> tuple[PlannedStep, date] | None:
    """The step to make on `on`, and its date; None when nothing is due.

    Steps follow one another, none skipped: the first is the earliest step whose date has
    come (a step before the due date lapses once it passes), made today; each next one
    is due at its own date, and never sooner after the previous action than the scenario
    spaces them. An account found 90 days late gets the first reminder today, not a
    formal notice; a postponed action pushes the following steps back with it.
    """
    ordered = sorted(steps, key=lambda s: s.order)
    if not made:
        for step in ordered:
            if step.offset_days < 0 and on > anchor:
                continue
            return (step, on) if step_date(anchor, step.offset_days) <= on else None
        return None
    last = max(made, key=lambda m: (m.offset_days, m.due_on))
    positions = {s.id: s.position for s in ordered}
    last_order = (
        last.offset_days,
        positions.get(last.step_id, 1 << 30) if last.step_id is not None else 1 << 30,
    )
    later = [s for s in ordered if s.order > last_order]
    if not later:
        return None
    step = later[0]
    when = max(
        step_date(anchor, step.offset_days),
        last.due_on + timedelta(days=step.offset_days - last.offset_days),
    )
    return (step, when) if when <= on else None


def cycle_key(customer_id: int, step_id: int, anchor: date) -> str:
    return f"{customer_id}:{step_id}:{anchor.isoformat()}"
