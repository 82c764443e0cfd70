"""The rules of the account's escalation, as pure functions: which step is due, or why none.

The level reached belongs to the customer's account while it stays overdue net of holds
(`receivables.ledger.statement.hold_of` is the one definition of a hold):

- nothing overdue net of holds: the escalation is over (the next one starts from the first
  step); only pre-dunning steps (negative offsets, before a due date) may be made, once
  per step and due date;
- overdue under the company's minimum: nothing is asked for, the level is kept;
- otherwise the next step after the firmest one reached, one at a time and never an
  earlier one again, at `max(anchor + its offset, previous action's date + the gap between
  the two offsets)` where the anchor is the due date of the oldest invoice to pay *now*
  (so when the oldest is paid the next step comes later, never sooner);
- a step is not made while the previous action waits for a collector (a manual task left
  undone is never superseded), nor an email closer than the scenario's spacing to the
  last one, nor litigation before a posted formal notice's deadline has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from receivables.dunning.tables import Channel, Level

LEVEL_ORDER = {level.value: i for i, level in enumerate(Level)}


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

    @classmethod
    def from_row(cls, s: dict) -> PlannedStep:
        """From a `dunning_step` row."""
        return cls(
            id=s["id"],
            scenario_id=s["scenario"],
            position=s["position"],
            name=s["name"],
            level=s["level"],
            offset_days=s["offset_days"],
            channel=s["channel"],
            mode=s["mode"],
            template_code=s["template_code"],
            attach_statement=s["attach_statement"],
            attach_invoices=s["attach_invoices"],
        )

    @property
    def order(self) -> tuple[int, int]:
        return (self.offset_days, self.position)

    @property
    def pre_dunning(self) -> bool:
        """Before the due date: courtesy, not part of the escalation."""
        return self.offset_days < 0

    @property
    def is_email(self) -> bool:
        return self.channel == Channel.email.value


def ordered(steps: Sequence[PlannedStep]) -> list[PlannedStep]:
    return sorted(steps, key=lambda s: s.order)


def step_date(anchor: date, offset_days: int) -> date:
    return anchor + timedelta(days=offset_days)


@dataclass(frozen=True)
class Reached:
    """The firmest step the account's current escalation has reached."""

    order: tuple[int, int]
    offset_days: int
    level: str
    name: str
    on: date
    """When it was made (done, or its due date while it waits)."""
    waiting: bool
    """Its action still waits for a collector: firmer steps wait behind it."""


@dataclass(frozen=True)
class AccountState:
    """What the run knows of one account on `on`."""

    on: date
    to_pay_anchor: date | None
    """Due date of the oldest overdue invoice not on hold (None: nothing to ask for)."""
    coming_anchor: date | None
    """Due date of the oldest invoice coming due, not on hold (pre-dunning)."""
    under_minimum: bool
    reached: Reached | None
    last_reminder_on: date | None
    min_interval_days: int
    notice_deadline_passed: bool
    """A formal notice of this escalation was posted and its deadline has passed."""
    pre_made: frozenset[tuple[int, date]] = frozenset()
    """(step id, due date) of the pre-dunning steps already made."""


@dataclass(frozen=True)
class Make:
    step: PlannedStep
    anchor: date
    pre_dunning: bool


@dataclass(frozen=True)
class Wait:
    """A step is due but may not be made today, and why."""

    step: PlannedStep
    reason: str
    until: date | None = None


Decision = Make | Wait | None


def spacing_until(state: AccountState) -> date | None:
    """The first day another dunning email may go (None: now)."""
    if state.last_reminder_on is None:
        return None
    first = state.last_reminder_on + timedelta(days=state.min_interval_days)
    return first if first > state.on else None


def next_escalation_step(
    steps: Sequence[PlannedStep], reached: Reached | None, anchor: date
) -> tuple[PlannedStep, date] | None:
    """The step after the firmest reached, and the date it comes due (None: end of scenario)."""
    escalation = [s for s in ordered(steps) if not s.pre_dunning]
    if reached is None:
        return (escalation[0], step_date(anchor, escalation[0].offset_days)) if escalation else None
    later = [s for s in escalation if s.order > reached.order]
    if not later:
        return None
    step = later[0]
    when = max(
        step_date(anchor, step.offset_days),
        reached.on + timedelta(days=max(0, step.offset_days - reached.offset_days)),
    )
    return step, when


def decide(steps: Sequence[PlannedStep], state: AccountState) -> Decision:
    """The step to make today for this account, a reason to wait, or None (nothing due)."""
    on = state.on
    if state.to_pay_anchor is None:
        return _pre_dunning(steps, state)
    found = next_escalation_step(steps, state.reached, state.to_pay_anchor)
    if found is None:
        return None
    step, when = found
    if when > on:
        return None
    if state.under_minimum:
        return Wait(step, "the overdue amount net of holds is under the company's minimum")
    if state.reached is not None and state.reached.waiting:
        return Wait(step, f"waiting for “{state.reached.name}” to be done")
    if step.level == Level.litigation.value and not state.notice_deadline_passed:
        return Wait(
            step, "litigation is offered only once a posted formal notice's deadline passed"
        )
    if step.is_email and (until := spacing_until(state)):
        return Wait(step, f"reminders are spaced: next email from {until.isoformat()}", until)
    return Make(step, state.to_pay_anchor, pre_dunning=False)


def _pre_dunning(steps: Sequence[PlannedStep], state: AccountState) -> Decision:
    anchor = state.coming_anchor
    if anchor is None:
        return None
    on = state.on
    due = [
        s
        for s in ordered(steps)
        if s.pre_dunning and step_date(anchor, s.offset_days) <= on <= anchor
    ]
    if not due:
        return None
    step = due[-1]  # the latest whose date has come; earlier ones lapse
    if (step.id, anchor) in state.pre_made:
        return None
    if step.is_email and (until := spacing_until(state)):
        return Wait(step, f"reminders are spaced: next email from {until.isoformat()}", until)
    return Make(step, anchor, pre_dunning=True)


def cycle_key(customer_id: int, step_id: int, *, escalation: int, anchor: date | None) -> str:
    """Unique per made step: escalation steps once per escalation, pre-dunning once per due date."""
    if anchor is not None:
        return f"{customer_id}:{step_id}:pre:{anchor.isoformat()}"
    return f"{customer_id}:{step_id}:e{escalation}"
