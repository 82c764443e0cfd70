"""The daily run: for each account, the step of its escalation that is due, made once.

Customers are taken in batches, each batch in one transaction: promises settled (kept or
broken), escalations ended where nothing is overdue net of holds, the next step made
(actions unique per customer, step and escalation, inserted with ON CONFLICT DO NOTHING),
automatic emails written to the outbox with their action. On Postgres each batch's
customers are claimed with `history.claim_accounts` (their history locks taken before any
row, skipping accounts another worker of the run claimed), so several workers share a run; on
SQLite the write lock serialises them. A second run on the same date, or one after a
crash, finds every action in place and creates nothing. The rules themselves are pure
functions in `receivables.dunning.cycle`.

Before that, open tasks whose items were all paid meanwhile are cancelled, and unsent
automatic emails whose items changed are cancelled and built again with the new figures.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from receivables import history
from receivables.clock import local_now, today_in
from receivables.db import atomic, current_engine
from receivables.dunning import hashtags
from receivables.dunning.cycle import (
    AccountState,
    Make,
    PlannedStep,
    Reached,
    Wait,
    cycle_key,
    decide,
)
from receivables.dunning.defaults import install_defaults
from receivables.dunning.messages import load_facts
from receivables.dunning.notices import notify_broken_promises
from receivables.dunning.sending import (
    Texts,
    cancel_action,
    item_change,
    item_snapshot,
    litigation_customers,
    mark_done,
    queue_action_emails,
    snapshot_of,
    stale_reason,
)
from receivables.dunning.tables import (
    OPEN_ACTION_STATUSES,
    ActionStatus,
    Channel,
    DunningAction,
    DunningActionMessage,
    DunningRun,
    DunningStep,
    Level,
    MessageTemplate,
    Mode,
    Scenario,
)
from receivables.history import Actor
from receivables.ledger.cash_application import within_tolerance
from receivables.ledger.penalties import PenaltyTerms
from receivables.ledger.promises import settle_promises
from receivables.ledger.statement import hold_of
from receivables.ledger.tables import Company, Customer, Item
from receivables.mail.tables import OutboxStatus
from receivables.settings import Settings

log = logging.getLogger("relance.dunning")
BATCH = 200
OPEN_INVOICE = "kind = 'invoice' AND open_minor > 0 AND status <> 'cancelled'"
"""Matches the partial index item_open_invoice_holds."""

Progress = Callable[[int, int], None]
DEFAULT_INTERVAL = 7
HELD_PREFIX = "On hold: "


@dataclass
class RunReport:
    on: date
    customers: int = 0
    created: int = 0
    queued: int = 0
    cancelled: int = 0
    broken_promises: int = 0
    kept_promises: int = 0
    escalations_ended: int = 0
    waiting: int = 0
    held: int = 0
    failed: int = 0

    def add(self, other: RunReport) -> RunReport:
        for name in (
            "customers",
            "created",
            "queued",
            "cancelled",
            "broken_promises",
            "kept_promises",
            "escalations_ended",
            "waiting",
            "held",
            "failed",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def line(self) -> str:
        return (
            f"{self.created} actions created, {self.queued} emails queued, "
            f"{self.cancelled} cancelled"
        )


class _Plan:
    """Scenarios, steps and templates of every company, loaded once per run."""

    def __init__(self) -> None:
        self.steps: dict[int, list[PlannedStep]] = defaultdict(list)
        self.default: dict[tuple[int, str], int] = {}
        self.texts: dict[tuple[int, str], dict[str, Texts]] = defaultdict(dict)
        self.template_problems: dict[tuple[int, str], str] = {}
        self.interval: dict[int, int] = {}
        self.companies: dict[int, dict[str, Any]] = {}

    async def load(self) -> None:
        for company in await Company.select(
            Company.id,
            Company.currency,
            Company.timezone,
            Company.dunning_min_minor,
            Company.formal_notice_days,
            Company.writeoff_tolerance_minor,
        ):
            self.companies[company["id"]] = company
        for row in await Scenario.select(
            Scenario.id, Scenario.company, Scenario.payer_profile, Scenario.min_interval_days
        ):
            self.interval[row["id"]] = row["min_interval_days"]
            if row["payer_profile"]:
                self.default[(row["company"], row["payer_profile"])] = row["id"]
        for s in await DunningStep.select().order_by(DunningStep.offset_days):
            self.steps[s["scenario"]].append(PlannedStep.from_row(s))
        for t in await MessageTemplate.select():
            key = (t["company"], t["code"])
            self.texts[key][t["language"]] = Texts(t["language"], t["subject"], t["body"])
            problems = hashtags.check(t["subject"], "subject", t["channel"]) + hashtags.check(
                t["body"], "body", t["channel"]
            )
            if problems:
                self.template_problems[key] = f"template {t['code']} ({t['language']}): " + str(
                    problems[0]
                )

    def scenario_for(self, customer: dict[str, Any]) -> int | None:
        return customer["scenario"] or self.default.get(
            (customer["company"], customer["payer_profile"])
        )


CUSTOMER_COLUMNS = (
    "id, company, payer_profile, scenario, blocked, escalation, escalation_step, "
    "escalation_step_on, escalation_started_on, last_reminder_on"
)


def _customer_dates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        for key in ("escalation_step_on", "escalation_started_on", "last_reminder_on"):
            r[key] = as_date(r[key])
    return rows


async def customer_rows(customer_ids: list[int]) -> list[dict[str, Any]]:
    """Customers as the run reads them (for pages that show what the run would do)."""
    sql = f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE id IN ({id_list(customer_ids)})"  # noqa: S608
    return _customer_dates(await Customer.raw(sql))


async def account_state_of(
    customer: dict[str, Any], steps: list[PlannedStep], on: date
) -> AccountState:
    """One account's state on `on`, read now (the account page's escalation panel)."""
    ids = [customer["id"]]
    company = (
        await Company.select(
            Company.id,
            Company.currency,
            Company.timezone,
            Company.dunning_min_minor,
            Company.formal_notice_days,
            Company.writeoff_tolerance_minor,
        )
        .where(Company.id == customer["company"])
        .first()
    )
    assert company is not None
    interval = DEFAULT_INTERVAL
    if steps:
        row = (
            await Scenario.select(Scenario.min_interval_days)
            .where(Scenario.id == steps[0].scenario_id)
            .first()
        )
        interval = row["min_interval_days"] if row else DEFAULT_INTERVAL
    items = (await _open_invoices(ids)).get(customer["id"], [])
    actions = (await _live_actions(ids)).get(customer["id"], [])
    return account_state(customer, items, actions, steps, company, interval, on)


async def _claim_customers(
    after: int, limit: int, company_id: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """The next accounts after `after` that no other worker of the run has, claimed with their
    history locks taken before any row (receivables.history), read again under them; and
    the last account looked at (None: no account left)."""
    # Customers with open invoices, and those whose escalation is running (it ends on the
    # first run that finds nothing overdue net of holds, even when nothing is left open).
    # The bound is repeated inside EXISTS: without it Postgres merges with the item index
    # from its start on every batch (quadratic over a run; seen at 100k customers).
    company = f"AND company = {int(company_id)} " if company_id is not None else ""
    sql = (
        f"SELECT {CUSTOMER_COLUMNS} FROM customer "  # noqa: S608
        f"WHERE id > {{}} {company}AND (escalation_started_on IS NOT NULL OR EXISTS ("
        "SELECT 1 FROM item WHERE item.customer = customer.id "
        f"AND item.customer > {{}} AND {OPEN_INVOICE})) ORDER BY id LIMIT {int(limit)}"
    )
    candidates = await Customer.raw(sql, after, after)
    if not candidates:
        return [], None
    mine = await history.claim_accounts([c["id"] for c in candidates])
    rows = await Customer.raw(
        f"SELECT {CUSTOMER_COLUMNS} FROM customer WHERE id IN ({id_list(mine)}) ORDER BY id"  # noqa: S608
    )
    return _customer_dates(rows), candidates[-1]["id"]


def id_list(ids: list[int]) -> str:
    """Integer ids as an SQL list: one literal instead of one bound parameter per id, which
    costs Piccolo more than the query itself at 200 ids a batch."""
    return ",".join(str(int(i)) for i in ids) or "NULL"


def as_date(value: Any) -> Any:
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


async def _open_invoices(customer_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = await Item.raw(
        "SELECT id, customer, company, number, due_date, currency, open_minor, "  # noqa: S608
        "total_minor, status, "
        f"promise_date, pending_answer FROM item WHERE customer IN ({id_list(customer_ids)}) "
        f"AND {OPEN_INVOICE}"
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        r["due_date"], r["promise_date"] = as_date(r["due_date"]), as_date(r["promise_date"])
        out[r["customer"]].append(r)
    return out


async def _live_actions(customer_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = await DunningAction.raw(
        "SELECT id, company, customer, step, step_name, level, channel, cycle_start, "  # noqa: S608
        "offset_days, due_on, status, escalation, cycle_key, done_on, letter_sent_on, "
        "letter_deadline FROM dunning_action "
        f"WHERE customer IN ({id_list(customer_ids)}) AND cycle_key IS NOT NULL"
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        for key in ("cycle_start", "due_on", "done_on", "letter_sent_on", "letter_deadline"):
            r[key] = as_date(r[key])
        out[r["customer"]].append(r)
    return out


def _reached(
    customer: dict[str, Any],
    actions: list[dict[str, Any]],
    steps: list[PlannedStep],
) -> Reached | None:
    """The firmest step of the account's current escalation: its actions, or a collector's
    setting by hand, whichever is firmer."""
    best: Reached | None = None
    for a in actions:
        if a["escalation"] != customer["escalation"] or a["offset_days"] < 0:
            continue
        position = next((s.position for s in steps if s.id == a["step"]), 0)
        waiting = a["status"] in OPEN_ACTION_STATUSES
        made_on = a["due_on"] if waiting else (a["done_on"] or a["due_on"])
        candidate = Reached(
            order=(a["offset_days"], position),
            offset_days=a["offset_days"],
            level=a["level"],
            name=a["step_name"],
            on=max(made_on, a["due_on"]),
            waiting=waiting,
        )
        if (
            best is None
            or candidate.order > best.order
            or (candidate.order == best.order and candidate.waiting)
        ):
            best = candidate
    manual = customer["escalation_step"]
    step = next((s for s in steps if s.id == manual), None) if manual else None
    if step is not None and (best is None or step.order > best.order):
        best = Reached(
            order=step.order,
            offset_days=step.offset_days,
            level=step.level,
            name=step.name,
            on=customer["escalation_step_on"] or customer["escalation_started_on"],
            waiting=False,
        )
    return best


def _notice_deadline_passed(
    customer: dict[str, Any], actions: list[dict[str, Any]], on: date, notice_days: int
) -> bool:
    for a in actions:
        if (
            a["escalation"] == customer["escalation"]
            and a["channel"] == Channel.letter.value
            and a["level"] == Level.level_3.value
            and a["letter_sent_on"] is not None
        ):
            deadline = a["letter_deadline"] or a["letter_sent_on"] + timedelta(days=notice_days)
            if deadline < on:
                return True
    return False


def account_state(
    customer: dict[str, Any],
    items: list[dict[str, Any]],
    actions: list[dict[str, Any]],
    steps: list[PlannedStep],
    company: dict[str, Any],
    min_interval_days: int,
    on: date,
) -> AccountState:
    """The account as the escalation rules see it on `on` (holds as the statement has them;
    a remainder within the write-off tolerance is finance's to write off, not chased)."""
    tolerance = int(company.get("writeoff_tolerance_minor") or 0)
    items = [
        i
        for i in items
        if i["currency"] != company["currency"]
        or not within_tolerance(i["open_minor"], i.get("total_minor", 0), tolerance)
    ]
    to_pay = [
        i
        for i in items
        if i["due_date"] < on
        and not hold_of(i["status"], i["promise_date"], i["pending_answer"], on)
    ]
    coming = [
        i
        for i in items
        if i["due_date"] >= on
        and not hold_of(i["status"], i["promise_date"], i["pending_answer"], on)
    ]
    home = sum(i["open_minor"] for i in to_pay if i["currency"] == company["currency"])
    foreign = any(i["currency"] != company["currency"] for i in to_pay)
    return AccountState(
        on=on,
        to_pay_anchor=min((i["due_date"] for i in to_pay), default=None),
        coming_anchor=min((i["due_date"] for i in coming), default=None),
        under_minimum=bool(to_pay) and not foreign and home < company["dunning_min_minor"],
        reached=_reached(customer, actions, steps),
        last_reminder_on=customer["last_reminder_on"],
        min_interval_days=min_interval_days,
        notice_deadline_passed=_notice_deadline_passed(
            customer, actions, on, company["formal_notice_days"]
        ),
        pre_made=frozenset((a["step"], a["cycle_start"]) for a in actions if a["offset_days"] < 0),
    )


async def _end_escalation(
    customer: dict[str, Any],
    actions: list[dict[str, Any]],
    on: date,
    actor: Actor,
    report: RunReport,
) -> None:
    """Nothing overdue net of holds: the escalation is over; the next starts from the first step."""
    number = customer["escalation"]
    await Customer.update(
        {
            Customer.escalation: number + 1,
            Customer.escalation_step: None,
            Customer.escalation_step_on: None,
            Customer.escalation_started_on: None,
        }
    ).where(Customer.id == customer["id"])
    reason = "the account is no longer overdue net of holds"
    for a in actions:
        if a["escalation"] == number and a["status"] in OPEN_ACTION_STATUSES:
            if await cancel_action(a, reason, items_changed=False, actor=actor):
                report.cancelled += 1
    await history.record(
        company_id=customer["company"],
        actor=actor,
        kind="dunning.escalation_ended",
        customer_id=customer["id"],
        details={"escalation": number, "on": on, "reason": reason},
    )
    customer["escalation"] = number + 1
    customer["escalation_step"] = customer["escalation_step_on"] = None
    customer["escalation_started_on"] = None
    report.escalations_ended += 1


async def _process_batch(
    customers: list[dict[str, Any]],
    on: date,
    plan: _Plan,
    settings: Settings,
    report: RunReport,
    rates: dict[int, PenaltyTerms],
) -> None:
    actor = Actor.system("dunning run")
    ids = [c["id"] for c in customers]
    settled = await settle_promises(ids, on, actor)
    report.broken_promises += len(settled.broken)
    report.kept_promises += len(settled.kept)
    await notify_broken_promises(settled.broken, settings, actor)
    items = await _open_invoices(ids)
    live = await _live_actions(ids)
    in_litigation = await litigation_customers(ids)
    for customer in customers:
        if customer["id"] in in_litigation:
            continue
        scenario_id = plan.scenario_for(customer)
        steps = plan.steps.get(scenario_id, []) if scenario_id is not None else []
        company = plan.companies[customer["company"]]
        actions = live.get(customer["id"], [])

        interval = plan.interval.get(scenario_id or 0, DEFAULT_INTERVAL)

        def state_now(customer=customer, steps=steps, company=company, interval=interval):
            own = customer["id"]
            return account_state(
                customer, items.get(own, []), live.get(own, []), steps, company, interval, on
            )

        state = state_now()
        ends = state.to_pay_anchor is None and customer["escalation_started_on"] is not None
        if not ends:
            # Most accounts have nothing due today or wait: decided without a statement.
            try:
                decision = decide(steps, state)
            except Exception:
                report.failed += 1
                log.exception("dunning run: customer %s failed; retried next run", customer["id"])
                continue
            if isinstance(decision, Wait):
                report.waiting += 1
            if not isinstance(decision, Make):
                continue
        # One customer's failure (a bad address, a broken document) must not cost the
        # others their reminders: its work is rolled back alone and retried next run.
        transaction = current_engine().current_transaction.get()
        assert transaction is not None, "each batch runs in its transaction"
        savepoint = await transaction.savepoint()
        before = (report.created, report.queued, report.cancelled, report.held)
        try:
            if ends:
                await _end_escalation(customer, actions, on, actor, report)
                decision = decide(steps, state_now())
            if isinstance(decision, Wait):
                report.waiting += 1
            elif isinstance(decision, Make):
                driving = [
                    i
                    for i in items.get(customer["id"], [])
                    if not hold_of(i["status"], i["promise_date"], i["pending_answer"], on)
                ]
                await _create(customer, decision, driving, on, plan, settings, report, rates, actor)
        except Exception:
            await savepoint.rollback_to()
            report.created, report.queued, report.cancelled, report.held = before
            report.failed += 1
            log.exception("dunning run: customer %s failed; retried next run", customer["id"])
            continue
        await savepoint.release()


async def _create(
    customer: dict[str, Any],
    decision: Make,
    driving: list[dict[str, Any]],
    on: date,
    plan: _Plan,
    settings: Settings,
    report: RunReport,
    rates: dict[int, PenaltyTerms],
    actor: Actor,
) -> int | None:
    step = decision.step
    litigation = step.level == Level.litigation.value
    # Litigation is a person's decision: the run offers it as a task, never acts on it.
    mode = Mode.manual.value if litigation else step.mode
    sends = step.channel == Channel.email.value and mode != Mode.manual.value
    held = ""
    if litigation:
        held = (
            "Confirm to hand the account over to litigation (the formal notice's deadline passed)."
        )
    elif sends and customer["blocked"]:
        held = "Account blocked: automatic mail stopped."
    texts = plan.texts.get((customer["company"], step.template_code), {})
    if sends and not held:
        if not texts:
            held = f"No template '{step.template_code}' to write it with."
        elif problem := plan.template_problems.get((customer["company"], step.template_code)):
            held = f"Not sent: {problem}."
    facts = None
    if sends and not held and mode == Mode.automatic.value:
        facts = await load_facts(customer["id"], on, rates)
        if not facts.reminder_contacts:
            held = "No contact receives reminders."
    if held or not sends:
        status = ActionStatus.due
    elif mode == Mode.confirm.value:
        status = ActionStatus.to_confirm
    else:
        status = ActionStatus.done
    escalation = 0 if decision.pre_dunning else customer["escalation"]
    inserted = (
        await DunningAction.insert(
            DunningAction(
                company=customer["company"],
                customer=customer["id"],
                scenario=step.scenario_id,
                step=step.id,
                step_name=step.name,
                level=step.level,
                channel=step.channel,
                mode=mode,
                offset_days=step.offset_days,
                template_code=step.template_code,
                attach_statement=step.attach_statement,
                attach_invoices=step.attach_invoices,
                cycle_start=decision.anchor,
                escalation=escalation,
                cycle_key=cycle_key(
                    customer["id"],
                    step.id,
                    escalation=escalation,
                    anchor=decision.anchor if decision.pre_dunning else None,
                ),
                due_on=on,
                status=ActionStatus.due.value if status == ActionStatus.done else status.value,
                items=item_snapshot(sorted(driving, key=lambda i: (i["due_date"], i["id"]))),
                held_reason=held,
            )
        )
        .on_conflict(target=DunningAction.cycle_key, action="DO NOTHING")
        .returning(DunningAction.id)
    )
    if not inserted:
        return None  # made by another worker, or by a run before a crash
    action_id = inserted[0]["id"]
    report.created += 1
    report.held += bool(held)
    if not decision.pre_dunning and customer["escalation_started_on"] is None:
        await Customer.update({Customer.escalation_started_on: on}).where(
            Customer.id == customer["id"]
        )
        customer["escalation_started_on"] = on
    await history.record(
        company_id=customer["company"],
        actor=actor,
        kind="dunning.action_created",
        customer_id=customer["id"],
        details={
            "action": action_id,
            "step": step.name,
            "level": step.level,
            "channel": step.channel,
            "mode": mode,
            "escalation": escalation,
            "cycle_start": decision.anchor,
            "due_on": on,
            "status": status.value,
            **({"held": held} if held else {}),
        },
    )
    if status != ActionStatus.done or facts is None:
        return action_id
    action = await DunningAction.objects().get(DunningAction.id == action_id)
    assert action is not None
    queued = await queue_action_emails(
        action, facts, contacts=facts.reminder_contacts, texts=texts, actor=actor, settings=settings
    )
    await mark_done(action_id, actor, f"{len(queued)} email(s) queued", on)
    report.queued += len(queued)
    return action_id


# ------------------------------------------------------------------ cancellations


async def _cancel_stale(
    on: date, report: RunReport, company_id: int | None = None, batch: int = 500
) -> None:
    """Open tasks whose items are all settled or on hold; unsent automatic emails gone stale
    (of one company, or of all)."""
    actor = Actor.system("dunning run")
    last = 0
    while True:
        async with atomic():
            found = (
                await DunningAction.select(DunningAction.id, DunningAction.customer)
                .where(
                    DunningAction.status.is_in(list(OPEN_ACTION_STATUSES))
                    & (DunningAction.id > last)
                    & (
                        (DunningAction.company == company_id)
                        if company_id is not None
                        else DunningAction.id.is_not_null()
                    )
                )
                .order_by(DunningAction.id)
                .limit(batch)
            )
            if not found:
                break
            last = found[-1]["id"]
            # Their accounts first, then the rows, read again under the locks.
            await history.lock_accounts({r["customer"] for r in found})
            rows = (
                await DunningAction.select()
                .where(
                    DunningAction.id.is_in([r["id"] for r in found])
                    & DunningAction.status.is_in(list(OPEN_ACTION_STATUSES))
                )
                .order_by(DunningAction.id)
            )
            snapshots = {r["id"]: snapshot_of(r) for r in rows}
            ids = {s["id"] for snap in snapshots.values() for s in snap}
            current = (
                {
                    r["id"]: r
                    for r in await Item.select(
                        Item.id,
                        Item.open_minor,
                        Item.status,
                        Item.promise_date,
                        Item.pending_answer,
                    ).where(Item.id.is_in(list(ids)))
                }
                if ids
                else {}
            )
            for row in rows:
                snap = snapshots[row["id"]]
                changes = [item_change(s, current.get(s["id"]), on) for s in snap]
                settled = [c for c in changes if c and c.endswith(("paid", "cancelled"))]
                asking = [c for c in changes if c is None or c.endswith("partly paid")]
                if snap and len(settled) == len(snap):
                    reason = "nothing left to collect: " + "; ".join(settled)
                    if await cancel_action(row, reason, items_changed=True, actor=actor):
                        report.cancelled += 1
                    continue
                # Every invoice it is about is on hold: it stays on the agenda, saying why.
                held = (
                    HELD_PREFIX + "; ".join(c for c in changes if c and c not in settled)
                    if snap and not asking
                    else ""
                )
                if held != row["held_reason"] and (
                    held or row["held_reason"].startswith(HELD_PREFIX)
                ):
                    await DunningAction.update({DunningAction.held_reason: held[:2000]}).where(
                        DunningAction.id == row["id"]
                    )
    # Automatic emails written but not yet sent (the worker checks again when sending).
    async with atomic():
        pending = await DunningActionMessage.raw(
            "SELECT DISTINCT m.action, a.customer FROM dunning_action_message m "  # noqa: S608 (an int)
            "JOIN outbox_message o ON o.id = m.message "
            "JOIN dunning_action a ON a.id = m.action "
            "WHERE o.status = {} AND a.mode = {} AND a.status = {}"
            + ("" if company_id is None else f" AND a.company = {int(company_id)}"),
            OutboxStatus.queued.value,
            Mode.automatic.value,
            ActionStatus.done.value,
        )
        await history.lock_accounts({r["customer"] for r in pending})
        for row in pending:
            action = await DunningAction.select().where(DunningAction.id == row["action"]).first()
            if action is None:
                continue
            stale = await stale_reason(action, on)
            if stale and await cancel_action(action, stale[0], items_changed=stale[1], actor=actor):
                report.cancelled += 1


# ------------------------------------------------------------------ the run


async def count_customers(company_id: int | None = None) -> int:
    company = f" AND company = {int(company_id)}" if company_id is not None else ""
    rows = await Item.raw(
        f"SELECT COUNT(DISTINCT customer) AS n FROM item WHERE {OPEN_INVOICE}{company}"  # noqa: S608
    )
    return int(rows[0]["n"])


async def run_dunning(
    on: date,
    settings: Settings,
    *,
    progress: Progress | None = None,
    batch: int = BATCH,
    triggered_by: str = "cli",
    company_id: int | None = None,
) -> RunReport:
    """The run for `on` (every company, or one); idempotent, resumable, shareable between
    workers on Postgres."""
    companies = Company.select(Company.id)
    if company_id is not None:
        companies = companies.where(Company.id == company_id)
    for company in await companies:
        await install_defaults(company["id"])
    plan = _Plan()
    await plan.load()
    report = RunReport(on=on)
    total = await count_customers(company_id)
    run = DunningRun(run_on=on, company=company_id, triggered_by=triggered_by[:100])
    await run.save()
    rates: dict[int, PenaltyTerms] = {}
    # Stale work first: a reminder cancelled because its items changed is rebuilt below.
    await _cancel_stale(on, report, company_id)
    last = 0
    done = 0
    if progress:
        progress(0, total)
    while True:
        async with atomic():
            customers, seen = await _claim_customers(last, batch, company_id)
            if seen is None:
                break
            last = seen
            if customers:
                await _process_batch(customers, on, plan, settings, report, rates)
        done += len(customers)
        report.customers = done
        if progress:
            progress(min(done, total), total)
    await DunningRun.update(
        {
            DunningRun.finished_at: datetime.now(UTC),
            DunningRun.created: report.created,
            DunningRun.queued: report.queued,
            DunningRun.cancelled: report.cancelled,
        }
    ).where(DunningRun.id == run.id)
    log.info("dunning run %s: %s", on, report.line())
    return report


async def run_today(
    settings: Settings, *, progress: Progress | None = None, triggered_by: str = "cli"
) -> RunReport:
    """Each company's run on its own today (its time zone), reported as one."""
    total: RunReport | None = None
    for company in await Company.select(Company.id, Company.timezone).order_by(Company.id):
        report = await run_dunning(
            today_in(company["timezone"]),
            settings,
            progress=progress,
            triggered_by=triggered_by,
            company_id=company["id"],
        )
        total = report if total is None else total.add(report)
    return total or RunReport(on=today_in(None))


async def finished(on: date, company_id: int) -> bool:
    """Whether the company's run for `on` finished (a run for every company counts too)."""
    return await DunningRun.exists().where(
        (DunningRun.run_on == on)
        & DunningRun.finished_at.is_not_null()
        & ((DunningRun.company == company_id) | DunningRun.company.is_null())
    )


def due_now(company: dict[str, Any]) -> date | None:
    """The company's date when its scheduled run may start now (its hour has come, on a
    business day if so configured), else None."""
    local = local_now(company["timezone"])
    if company["dunning_business_days"] and local.weekday() >= 5:
        return None
    if local.hour < (company["dunning_hour"] or 0):
        return None
    return local.date()
