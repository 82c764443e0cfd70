"""Scenarios as admins shape them: create, copy, rename, add and change steps, assign customers.

Every change validates the whole input first (each bad field named, nothing written), then
writes the change and its history event in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from receivables import history
from receivables.db import atomic
from receivables.dunning.tables import (
    Channel,
    DunningStep,
    Level,
    MessageTemplate,
    Mode,
    Scenario,
)
from receivables.errors import Conflict, FieldProblem, InvalidInput, NotFound
from receivables.history import Actor
from receivables.i18n import N_
from receivables.ledger.tables import Customer, PayerProfile

LEVEL_LABELS = {
    Level.pre_dunning.value: N_("Pre-dunning"),
    Level.level_1.value: N_("Level 1"),
    Level.level_2.value: N_("Level 2"),
    Level.level_3.value: N_("Level 3"),
    Level.litigation.value: N_("Litigation"),
}
CHANNEL_LABELS = {
    Channel.email.value: N_("Email"),
    Channel.letter.value: N_("Letter"),
    Channel.phone.value: N_("Phone call"),
}
MODE_LABELS = {
    Mode.manual.value: N_("Manual (a task on the agenda)"),
    Mode.confirm.value: N_("Automatic, after confirmation"),
    Mode.automatic.value: N_("Automatic"),
}


@dataclass
class ScenarioSummary:
    scenario: Scenario
    steps: list[DunningStep]
    customers: int


@dataclass
class ScenarioDetail:
    scenario: Scenario
    steps: list[DunningStep]
    customers: list[dict[str, Any]] = field(default_factory=list)
    template_codes: list[tuple[str, str, str]] = field(default_factory=list)
    """(code, name, channel) of the company's templates."""


async def _scenario(scenario_id: int) -> Scenario:
    scenario = await Scenario.objects().get(Scenario.id == scenario_id)
    if scenario is None:
        raise NotFound(f"scenario {scenario_id}")
    return scenario


async def _steps(scenario_id: int) -> list[DunningStep]:
    return list(
        await DunningStep.objects()
        .where(DunningStep.scenario == scenario_id)
        .order_by(DunningStep.offset_days)
        .order_by(DunningStep.position)
    )


async def scenario_name(scenario_id: int | None) -> str | None:
    """The name of a customer's own scenario; None when it follows its profile's default."""
    if scenario_id is None:
        return None
    row = await Scenario.select(Scenario.name).where(Scenario.id == scenario_id).first()
    return row["name"] if row else None


async def list_scenarios(company_id: int) -> list[ScenarioSummary]:
    scenarios = await Scenario.objects().where(Scenario.company == company_id).order_by(Scenario.id)
    counts = {
        r["scenario"]: r["n"]
        for r in await Customer.raw(
            "SELECT scenario, COUNT(*) AS n FROM customer WHERE company = {} "
            "AND scenario IS NOT NULL GROUP BY scenario",
            company_id,
        )
    }
    by_profile = {
        r["payer_profile"]: r["n"]
        for r in await Customer.raw(
            "SELECT payer_profile, COUNT(*) AS n FROM customer WHERE company = {} "
            "AND scenario IS NULL GROUP BY payer_profile",
            company_id,
        )
    }
    out = []
    for s in scenarios:
        n = counts.get(s.id, 0) + (by_profile.get(s.payer_profile, 0) if s.payer_profile else 0)
        out.append(ScenarioSummary(s, await _steps(s.id), n))
    return out


async def templates_of(company_id: int) -> list[tuple[str, str, str]]:
    rows = (
        await MessageTemplate.select(
            MessageTemplate.code, MessageTemplate.name, MessageTemplate.channel
        )
        .where(MessageTemplate.company == company_id)
        .order_by(MessageTemplate.code)
    )
    seen: dict[str, tuple[str, str, str]] = {}
    for r in rows:
        seen.setdefault(r["code"], (r["code"], r["name"], r["channel"]))
    return list(seen.values())


async def scenario_detail(scenario_id: int) -> ScenarioDetail:
    scenario = await _scenario(scenario_id)
    customers = (
        await Customer.select(Customer.id, Customer.ref, Customer.name)
        .where(Customer.scenario == scenario_id)
        .order_by(Customer.name)
        .limit(200)
    )
    return ScenarioDetail(
        scenario=scenario,
        steps=await _steps(scenario_id),
        customers=customers,
        template_codes=await templates_of(scenario.company),
    )


def _clean_name(name: str, description: str) -> tuple[str, str, list[FieldProblem]]:
    name = " ".join(name.split())
    problems = []
    if not name:
        problems.append(FieldProblem("name", "required"))
    elif len(name) > 120:
        problems.append(FieldProblem("name", "120 characters at most"))
    if len(description) > 1000:
        problems.append(FieldProblem("description", "1000 characters at most"))
    return name, description.strip(), problems


async def create_scenario(company_id: int, name: str, description: str, actor: Actor) -> Scenario:
    name, description, problems = _clean_name(name, description)
    if problems:
        raise InvalidInput(problems)
    async with atomic():
        scenario = Scenario(company=company_id, name=name, description=description)
        await scenario.save()
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="dunning.scenario_created",
            details={"scenario": scenario.id, "name": name},
        )
    return scenario


async def copy_scenario(scenario_id: int, actor: Actor) -> Scenario:
    """A copy of the scenario and its steps, assigned to nobody, to edit freely."""
    source = await _scenario(scenario_id)
    async with atomic():
        copy = Scenario(
            company=source.company,
            name=f"Copy of {source.name}"[:120],
            description=source.description,
            min_interval_days=source.min_interval_days,
        )
        await copy.save()
        steps = await _steps(scenario_id)
        if steps:
            await DunningStep.insert(
                *[
                    DunningStep(
                        scenario=copy.id,
                        **{
                            k: getattr(s, k)
                            for k in (
                                "position",
                                "name",
                                "level",
                                "offset_days",
                                "channel",
                                "mode",
                                "template_code",
                                "attach_statement",
                                "attach_invoices",
                            )
                        },
                    )
                    for s in steps
                ]
            )
        await history.record(
            company_id=source.company,
            actor=actor,
            kind="dunning.scenario_copied",
            details={"scenario": copy.id, "from": scenario_id, "name": copy.name},
        )
    return copy


MAX_INTERVAL = 90


async def rename_scenario(
    scenario_id: int,
    name: str,
    description: str,
    actor: Actor,
    min_interval_days: str | None = None,
) -> None:
    """Name, description and the spacing between two reminders (whole days, 1 to 90)."""
    name, description, problems = _clean_name(name, description)
    scenario = await _scenario(scenario_id)
    interval = scenario.min_interval_days
    if min_interval_days is not None:
        raw = min_interval_days.strip()
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_INTERVAL:
            problems.append(
                FieldProblem(
                    "min_interval_days", f"a whole number of days from 1 to {MAX_INTERVAL}"
                )
            )
        else:
            interval = int(raw)
    if problems:
        raise InvalidInput(problems)
    async with atomic():
        await Scenario.update(
            {
                Scenario.name: name,
                Scenario.description: description,
                Scenario.min_interval_days: interval,
            }
        ).where(Scenario.id == scenario_id)
        await history.record(
            company_id=scenario.company,
            actor=actor,
            kind="dunning.scenario_renamed",
            details={
                "scenario": scenario_id,
                "from": scenario.name,
                "to": name,
                "min_interval_days": interval,
            },
        )


async def delete_scenario(scenario_id: int, actor: Actor) -> None:
    scenario = await _scenario(scenario_id)
    if scenario.payer_profile:
        raise Conflict("a payer profile's default scenario cannot be deleted; edit it instead")
    async with atomic():
        moved = (
            await Customer.update({Customer.scenario: None})
            .where(Customer.scenario == scenario_id)
            .returning(Customer.id)
        )
        await Scenario.delete().where(Scenario.id == scenario_id)
        await history.record(
            company_id=scenario.company,
            actor=actor,
            kind="dunning.scenario_deleted",
            details={"scenario": scenario_id, "name": scenario.name, "customers": len(moved)},
        )


@dataclass(frozen=True)
class StepInput:
    name: str
    level: str
    offset_days: str
    channel: str
    mode: str
    template_code: str = ""
    attach_statement: bool = False
    attach_invoices: bool = False


async def _check_step(
    company_id: int, data: StepInput
) -> tuple[dict[str, Any], list[FieldProblem]]:
    problems: list[FieldProblem] = []
    name = " ".join(data.name.split())
    if not name:
        problems.append(FieldProblem("name", "required"))
    elif len(name) > 120:
        problems.append(FieldProblem("name", "120 characters at most"))
    if data.level not in LEVEL_LABELS:
        problems.append(FieldProblem("level", "pre-dunning, level 1, 2, 3 or litigation"))
    offset = 0
    try:
        offset = int(data.offset_days.strip())
        if not -365 <= offset <= 730:
            problems.append(FieldProblem("offset_days", "between -365 and 730 days"))
    except ValueError:
        problems.append(
            FieldProblem("offset_days", "a whole number of days (negative: before the due date)")
        )
    if data.channel not in CHANNEL_LABELS:
        problems.append(FieldProblem("channel", "email, letter or phone call"))
    if data.mode not in MODE_LABELS:
        problems.append(FieldProblem("mode", "manual, automatic after confirmation, or automatic"))
    elif data.mode != Mode.manual.value:
        if data.channel != Channel.email.value:
            problems.append(
                FieldProblem(
                    "mode", "only emails are sent automatically; letters and calls are tasks"
                )
            )
        if data.level == Level.litigation.value:
            problems.append(
                FieldProblem("mode", "litigation ends amicable collection: manual only")
            )
    if data.level == Level.pre_dunning.value and offset > 0:
        problems.append(FieldProblem("offset_days", "pre-dunning comes before the due date (≤ 0)"))
    code = data.template_code.strip()
    if data.channel in (Channel.email.value, Channel.letter.value):
        if not code:
            problems.append(FieldProblem("template_code", "choose the words of this step"))
        else:
            template = (
                await MessageTemplate.select(MessageTemplate.channel)
                .where((MessageTemplate.company == company_id) & (MessageTemplate.code == code))
                .first()
            )
            if template is None:
                problems.append(FieldProblem("template_code", f"no template '{code}'"))
            elif template["channel"] != data.channel:
                problems.append(
                    FieldProblem(
                        "template_code", f"'{code}' is written for a {template['channel']}"
                    )
                )
    values = {
        "name": name,
        "level": data.level,
        "offset_days": offset,
        "channel": data.channel,
        "mode": data.mode,
        "template_code": code if data.channel != Channel.phone.value else code,
        "attach_statement": bool(data.attach_statement) and data.channel == Channel.email.value,
        "attach_invoices": bool(data.attach_invoices) and data.channel == Channel.email.value,
    }
    return values, problems


async def save_step(
    scenario_id: int, step_id: int | None, data: StepInput, actor: Actor
) -> DunningStep:
    """Add a step (step_id None) or change one; steps keep their order by offset."""
    scenario = await _scenario(scenario_id)
    values, problems = await _check_step(scenario.company, data)
    if problems:
        raise InvalidInput(problems)
    async with atomic():
        if step_id is None:
            last = (
                await DunningStep.select(DunningStep.position)
                .where(DunningStep.scenario == scenario_id)
                .order_by(DunningStep.position, ascending=False)
                .first()
            )
            step = DunningStep(
                scenario=scenario_id, position=(last["position"] + 1) if last else 0, **values
            )
            await step.save()
            kind, before = "dunning.step_added", None
        else:
            found = await DunningStep.objects().get(
                (DunningStep.id == step_id) & (DunningStep.scenario == scenario_id)
            )
            if found is None:
                raise NotFound(f"step {step_id}")
            step = found
            before = {k: getattr(step, k) for k in values}
            await DunningStep.update({getattr(DunningStep, k): v for k, v in values.items()}).where(
                DunningStep.id == step_id
            )
            for k, v in values.items():
                setattr(step, k, v)
            kind = "dunning.step_changed"
        await history.record(
            company_id=scenario.company,
            actor=actor,
            kind=kind,
            details={
                "scenario": scenario_id,
                "step": step.id,
                **values,
                **({"before": before} if before else {}),
            },
        )
    return step


async def delete_step(scenario_id: int, step_id: int, actor: Actor) -> None:
    scenario = await _scenario(scenario_id)
    async with atomic():
        step = await DunningStep.objects().get(
            (DunningStep.id == step_id) & (DunningStep.scenario == scenario_id)
        )
        if step is None:
            raise NotFound(f"step {step_id}")
        await DunningStep.delete().where(DunningStep.id == step_id)
        await history.record(
            company_id=scenario.company,
            actor=actor,
            kind="dunning.step_deleted",
            details={"scenario": scenario_id, "step": step_id, "name": step.name},
        )


async def assign_customer(
    company_id: int, customer_ref: str, scenario_id: int | None, actor: Actor
) -> Customer:
    """Make a customer follow a scenario (None: back to its payer profile's default)."""
    customer = await Customer.objects().get(
        (Customer.company == company_id) & (Customer.ref == customer_ref.strip())
    )
    if customer is None:
        raise InvalidInput.one("customer_ref", f"no customer with reference '{customer_ref}'")
    if scenario_id is not None:
        scenario = await _scenario(scenario_id)
        if scenario.company != company_id:
            raise NotFound(f"scenario {scenario_id}")
    if customer.scenario == scenario_id:
        return customer
    async with atomic():
        await Customer.update({Customer.scenario: scenario_id}).where(Customer.id == customer.id)
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="account.scenario_set",
            customer_id=customer.id,
            details={"from": customer.scenario, "to": scenario_id},
        )
    customer.scenario = scenario_id
    return customer


def profile_label(profile: str | None) -> str:
    return (profile or "").replace("_", " ").capitalize()


PROFILES = [p.value for p in PayerProfile]
