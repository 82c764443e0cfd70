"""The account's escalation: its level, what comes next and why it waits; set or reset by hand.

The level reached belongs to the customer's account while it stays overdue (see
`receivables.dunning.cycle`). A collector may reset it (a new escalation starts from the
first step) or set it at a step of the scenario (a new escalation starts there, so the
account may go back to a friendlier step on purpose); both cancel the open tasks of the
old escalation and are written to the history with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from receivables import history
from receivables.db import atomic
from receivables.dunning.cycle import Make, PlannedStep, Wait, decide, next_escalation_step, ordered
from receivables.dunning.sending import cancel_action
from receivables.dunning.tables import OPEN_ACTION_STATUSES, DunningStep, Scenario
from receivables.errors import InvalidInput, NotFound
from receivables.history import Actor
from receivables.ledger.promises import promise_counts
from receivables.ledger.tables import Company, Customer

MAX_REASON = 500


@dataclass
class EscalationView:
    """What the account page shows of the escalation."""

    number: int
    level: str | None
    """Level of the firmest step reached in this escalation (None: not started)."""
    step_name: str | None
    reached_on: date | None
    next_step_name: str | None
    next_on: date | None
    waiting: str
    """Why nothing is made today ('' when the next step is due or nothing is overdue)."""
    steps: list[tuple[int, str, str]] = field(default_factory=list)
    """(step id, name, level) of the account's scenario, in order, for 'set the level'."""
    promises: dict[str, int] = field(default_factory=dict)
    """Counts by status: running, kept, broken, withdrawn."""


async def _customer_row(customer_id: int) -> dict[str, Any]:
    from receivables.dunning.run import customer_rows

    rows = await customer_rows([customer_id])
    if not rows:
        raise NotFound(f"customer {customer_id}")
    return rows[0]


async def scenario_steps(customer: dict[str, Any]) -> list[PlannedStep]:
    """The steps of the customer's scenario (its own, else its payer profile's default)."""
    scenario_id = customer["scenario"]
    if scenario_id is None:
        row = (
            await Scenario.select(Scenario.id)
            .where(
                (Scenario.company == customer["company"])
                & (Scenario.payer_profile == customer["payer_profile"])
            )
            .first()
        )
        scenario_id = row["id"] if row else None
    if scenario_id is None:
        return []
    rows = await DunningStep.select().where(DunningStep.scenario == scenario_id)
    return ordered([PlannedStep.from_row(r) for r in rows])


async def escalation_view(customer_id: int, on: date) -> EscalationView:
    from receivables.dunning.run import account_state_of

    customer = await _customer_row(customer_id)
    steps = await scenario_steps(customer)
    state = await account_state_of(customer, steps, on)
    reached = state.reached
    decision = decide(steps, state)
    next_name: str | None = None
    next_on: date | None = None
    waiting = ""
    if isinstance(decision, Make):
        next_name, next_on = decision.step.name, on
    elif isinstance(decision, Wait):
        next_name, next_on, waiting = decision.step.name, decision.until, decision.reason
    elif state.to_pay_anchor is not None:
        found = next_escalation_step(steps, reached, state.to_pay_anchor)
        if found is not None:
            next_name, next_on = found[0].name, found[1]
    return EscalationView(
        number=customer["escalation"],
        level=reached.level if reached else None,
        step_name=reached.name if reached else None,
        reached_on=reached.on if reached else None,
        next_step_name=next_name,
        next_on=next_on,
        waiting=waiting,
        steps=[(s.id, s.name, s.level) for s in steps if not s.pre_dunning],
        promises=await promise_counts(customer_id),
    )


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "say why the escalation is changed")
    if len(reason) > MAX_REASON:
        raise InvalidInput.one("reason", f"{MAX_REASON} characters at most")
    return reason


async def _restart(
    customer: dict[str, Any],
    *,
    step: PlannedStep | None,
    on: date | None,
    reason: str,
    actor: Actor,
    kind: str,
) -> None:
    """A new escalation for the account (at `step`, or from the first), its old tasks closed."""
    from receivables.dunning.tables import DunningAction

    number = customer["escalation"]
    await Customer.update(
        {
            Customer.escalation: number + 1,
            Customer.escalation_step: step.id if step else None,
            Customer.escalation_step_on: on if step else None,
            Customer.escalation_started_on: on if step else None,
        }
    ).where(Customer.id == customer["id"])
    open_actions = await DunningAction.select().where(
        (DunningAction.customer == customer["id"])
        & (DunningAction.escalation == number)
        & DunningAction.status.is_in(list(OPEN_ACTION_STATUSES))
    )
    for action in open_actions:
        await cancel_action(
            action, f"escalation changed by hand: {reason}", items_changed=False, actor=actor
        )
    await history.record(
        company_id=customer["company"],
        actor=actor,
        kind=kind,
        customer_id=customer["id"],
        details={
            "escalation": number + 1,
            "reason": reason,
            **({"step": step.name, "level": step.level} if step else {}),
            "tasks_cancelled": len(open_actions),
        },
    )


async def reset_escalation(customer_id: int, reason: str, actor: Actor) -> None:
    """Start a new escalation from the first step (InvalidInput 'reason' when empty)."""
    reason = _reason(reason)
    async with atomic():
        await history.lock_accounts([customer_id])
        customer = await _customer_row(customer_id)
        await _restart(
            customer,
            step=None,
            on=None,
            reason=reason,
            actor=actor,
            kind="dunning.escalation_reset",
        )


async def set_escalation_step(
    customer_id: int, step_id: int, reason: str, actor: Actor, on: date
) -> None:
    """Set the account at a step of its scenario (InvalidInput 'step' / 'reason'): a new
    escalation starts as if that step had been made on `on`."""
    reason = _reason(reason)
    async with atomic():
        await history.lock_accounts([customer_id])
        customer = await _customer_row(customer_id)
        steps = await scenario_steps(customer)
        step = next((s for s in steps if s.id == step_id and not s.pre_dunning), None)
        if step is None:
            raise InvalidInput.one("step", "choose a step of this account's scenario")
        await _restart(
            customer, step=step, on=on, reason=reason, actor=actor, kind="dunning.escalation_set"
        )


async def company_of(customer_id: int) -> Company:
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    company = await Company.objects().get(Company.id == customer.company)
    assert company is not None
    return company
