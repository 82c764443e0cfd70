"""The daily run: for each customer with open items, the step that is due, made once.

Customers are taken in batches, each batch in one transaction: broken promises are marked,
actions created (unique per customer, step and cycle, inserted with ON CONFLICT DO NOTHING),
automatic emails written to the outbox with their action. On Postgres each batch's
customers are claimed with FOR UPDATE SKIP LOCKED, so several workers share a run; on
SQLite the write lock serialises them. A second run on the same date, or one after a
crash, finds every action in place and creates nothing.

Before that, open tasks and unsent automatic emails whose items were paid, disputed or
promised meanwhile are cancelled (and built again, with the new figures, when something
is still owed); a new step cancels the customer's older tasks still open (superseded).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from receivables import history
from receivables.db import atomic, current_engine, is_postgres
from receivables.dunning import hashtags
from receivables.dunning.cycle import (
    Made,
    PlannedStep,
    cycle_key,
    drives,
    next_step,
    promise_broken,
)
from receivables.dunning.defaults import install_defaults
from receivables.dunning.messages import load_facts
from receivables.dunning.reference_rates import RateTable
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
from receivables.ledger.tables import Company, Customer, Item, ItemStatus
from receivables.mail.tables import OutboxStatus
from receivables.settings import Settings

log = logging.getLogger("relance.dunning")
BATCH = 200
OPEN_INVOICE = "kind = 'invoice' AND open_minor > 0 AND status <> 'cancelled'"
"""Matches the partial index item_open_invoice."""

Progress = Callable[[int, int], None]


@dataclass
class RunReport:
    on: date
    customers: int = 0
    created: int = 0
    queued: int = 0
    cancelled: int = 0
    broken_promises: int = 0
    held: int = 0
    failed: int = 0

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

    async def load(self) -> None:
        for row in await Scenario.select(Scenario.id, Scenario.company, Scenario.payer_profile):
            if row["payer_profile"]:
                self.default[(row["company"], row["payer_profile"])] = row["id"]
        for s in await DunningStep.select().order_by(DunningStep.offset_days):
            self.steps[s["scenario"]].append(
                PlannedStep(
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
            )
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


async def _claim_customers(after: int, limit: int) -> list[dict[str, Any]]:
    # The bound is repeated inside EXISTS: without it Postgres merges with the item index
    # from its start on every batch (quadratic over a run; seen at 100k customers).
    sql = (
        "SELECT id, company, payer_profile, scenario, blocked FROM customer "  # noqa: S608
        "WHERE id > {} AND EXISTS (SELECT 1 FROM item WHERE item.customer = customer.id "
        f"AND item.customer > {{}} AND {OPEN_INVOICE}) ORDER BY id LIMIT {int(limit)}"
    )
    if is_postgres():
        sql += " FOR UPDATE SKIP LOCKED"
    return await Customer.raw(sql, after, after)


def id_list(ids: list[int]) -> str:
    """Integer ids as an SQL list: one literal instead of one bound parameter per id, which
    costs Piccolo more than the query itself at 200 ids a batch."""
    return ",".join(str(int(i)) for i in ids) or "NULL"


def as_date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


async def _open_invoices(customer_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = await Item.raw(
        "SELECT id, customer, company, number, due_date, currency, open_minor, status, "  # noqa: S608
        f"promise_date FROM item WHERE customer IN ({id_list(customer_ids)}) AND {OPEN_INVOICE}"
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        r["due_date"], r["promise_date"] = as_date(r["due_date"]), as_date(r["promise_date"])
        out[r["customer"]].append(r)
    return out


async def _mark_broken_promises(
    items: dict[int, list[dict[str, Any]]], on: date, actor: Actor
) -> int:
    broken = {
        i["id"]: i
        for rows in items.values()
        for i in rows
        if promise_broken(i["status"], i["promise_date"], on)
    }
    if not broken:
        return 0
    done = await Item.raw(
        "UPDATE item SET status = 'open', promise_date = NULL "  # noqa: S608
        f"WHERE id IN ({id_list(list(broken))}) AND status = 'promised' AND promise_date < {{}} "
        "RETURNING id",
        on,
    )
    for row in sorted(done, key=lambda r: r["id"]):
        item = broken[row["id"]]
        await history.record(
            company_id=item["company"],
            actor=actor,
            kind="promise.broken",
            customer_id=item["customer"],
            item_id=item["id"],
            details={"item": item["number"], "promise_date": item["promise_date"], "on": on},
        )
        item["status"], item["promise_date"] = ItemStatus.open.value, None
    return len(done)


async def _live_actions(customer_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = await DunningAction.raw(
        "SELECT id, company, customer, step, step_name, level, cycle_start, offset_days, "  # noqa: S608
        f"due_on, status FROM dunning_action WHERE customer IN ({id_list(customer_ids)}) "
        "AND cycle_key IS NOT NULL"
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        r["cycle_start"], r["due_on"] = as_date(r["cycle_start"]), as_date(r["due_on"])
        out[r["customer"]].append(r)
    return out


async def _process_batch(
    customers: list[dict[str, Any]],
    on: date,
    plan: _Plan,
    settings: Settings,
    report: RunReport,
    rates: dict[int, RateTable | None],
) -> None:
    actor = Actor.system("dunning run")
    ids = [c["id"] for c in customers]
    items = await _open_invoices(ids)
    report.broken_promises += await _mark_broken_promises(items, on, actor)
    live = await _live_actions(ids)
    in_litigation = await litigation_customers(ids)
    for customer in customers:
        driving = [
            i for i in items.get(customer["id"], []) if drives(i["status"], i["promise_date"], on)
        ]
        if not driving or customer["id"] in in_litigation:
            continue
        scenario_id = plan.scenario_for(customer)
        if scenario_id is None:
            continue
        anchor = min(i["due_date"] for i in driving)
        actions = live.get(customer["id"], [])
        made = [
            Made(a["step"], a["offset_days"], a["due_on"])
            for a in actions
            if a["cycle_start"] == anchor
        ]
        found = next_step(plan.steps.get(scenario_id, []), anchor, on, made)
        if found is None:
            continue
        step, due_on = found
        # One customer's failure (a bad address, a broken document) must not cost the
        # others their reminders: its work is rolled back alone and retried next run.
        transaction = current_engine().current_transaction.get()
        assert transaction is not None, "each batch runs in its transaction"
        savepoint = await transaction.savepoint()
        before = (report.created, report.queued, report.cancelled, report.held)
        try:
            created = await _create(
                customer, step, anchor, due_on, driving, on, plan, settings, report, rates, actor
            )
            # Earlier tasks still open for this customer give way to the firmer step.
            for old in actions if created is not None else []:
                if old["status"] in OPEN_ACTION_STATUSES and await cancel_action(
                    old, f"superseded by {step.name}", items_changed=False, actor=actor
                ):
                    report.cancelled += 1
        except Exception:
            await savepoint.rollback_to()
            report.created, report.queued, report.cancelled, report.held = before
            report.failed += 1
            log.exception("dunning run: customer %s failed; retried next run", customer["id"])
            continue
        await savepoint.release()


async def _create(
    customer: dict[str, Any],
    step: PlannedStep,
    anchor: date,
    due_on: date,
    driving: list[dict[str, Any]],
    on: date,
    plan: _Plan,
    settings: Settings,
    report: RunReport,
    rates: dict[int, RateTable | None],
    actor: Actor,
) -> int | None:
    sends = step.channel == Channel.email.value and step.mode != Mode.manual.value
    held = ""
    if sends and customer["blocked"]:
        held = "Account blocked: automatic mail stopped."
    elif sends and step.level == Level.litigation.value:
        held = "Litigation: amicable collection has ended."
    texts = plan.texts.get((customer["company"], step.template_code), {})
    if sends and not held:
        if not texts:
            held = f"No template '{step.template_code}' to write it with."
        elif problem := plan.template_problems.get((customer["company"], step.template_code)):
            held = f"Not sent: {problem}."
    facts = None
    if sends and not held and step.mode == Mode.automatic.value:
        facts = await load_facts(customer["id"], on, rates)
        if not facts.reminder_contacts:
            held = "No contact receives reminders."
    if held or not sends:
        status = ActionStatus.due
    elif step.mode == Mode.confirm.value:
        status = ActionStatus.to_confirm
    else:
        status = ActionStatus.done
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
                mode=step.mode,
                offset_days=step.offset_days,
                template_code=step.template_code,
                attach_statement=step.attach_statement,
                attach_invoices=step.attach_invoices,
                cycle_start=anchor,
                cycle_key=cycle_key(customer["id"], step.id, anchor),
                due_on=due_on,
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
            "mode": step.mode,
            "cycle_start": anchor,
            "due_on": due_on,
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
    await mark_done(action_id, actor, f"{len(queued)} email(s) queued")
    report.queued += len(queued)
    return action_id


# ------------------------------------------------------------------ cancellations


async def _cancel_stale(on: date, report: RunReport, batch: int = 500) -> None:
    """Open tasks whose items are all settled or on hold; unsent automatic emails gone stale."""
    actor = Actor.system("dunning run")
    last = 0
    while True:
        async with atomic():
            await history.lock_chain()
            rows = (
                await DunningAction.select()
                .where(
                    DunningAction.status.is_in(list(OPEN_ACTION_STATUSES))
                    & (DunningAction.id > last)
                )
                .order_by(DunningAction.id)
                .limit(batch)
            )
            if not rows:
                break
            last = rows[-1]["id"]
            snapshots = {r["id"]: snapshot_of(r) for r in rows}
            ids = {s["id"] for snap in snapshots.values() for s in snap}
            current = (
                {
                    r["id"]: r
                    for r in await Item.select(
                        Item.id, Item.open_minor, Item.status, Item.promise_date
                    ).where(Item.id.is_in(list(ids)))
                }
                if ids
                else {}
            )
            for row in rows:
                snap = snapshots[row["id"]]
                changes = [item_change(s, current.get(s["id"]), on) for s in snap]
                still = [
                    s
                    for s, c in zip(snap, changes, strict=True)
                    if c is None or c.endswith("partly paid")
                ]
                if snap and not still:
                    reason = "nothing left to collect: " + "; ".join(c for c in changes if c)
                    if await cancel_action(row, reason, items_changed=True, actor=actor):
                        report.cancelled += 1
    # Automatic emails written but not yet sent (the worker checks again when sending).
    async with atomic():
        await history.lock_chain()
        pending = await DunningActionMessage.raw(
            "SELECT DISTINCT m.action FROM dunning_action_message m "
            "JOIN outbox_message o ON o.id = m.message "
            "JOIN dunning_action a ON a.id = m.action "
            "WHERE o.status = {} AND a.mode = {} AND a.status = {}",
            OutboxStatus.queued.value,
            Mode.automatic.value,
            ActionStatus.done.value,
        )
        for row in pending:
            action = await DunningAction.select().where(DunningAction.id == row["action"]).first()
            if action is None:
                continue
            found = await stale_reason(action, on)
            if found and await cancel_action(action, found[0], items_changed=found[1], actor=actor):
                report.cancelled += 1


# ------------------------------------------------------------------ the run


async def count_customers() -> int:
    rows = await Item.raw(
        f"SELECT COUNT(DISTINCT customer) AS n FROM item WHERE {OPEN_INVOICE}"  # noqa: S608
    )
    return int(rows[0]["n"])


async def run_dunning(
    on: date,
    settings: Settings,
    *,
    progress: Progress | None = None,
    batch: int = BATCH,
    triggered_by: str = "cli",
) -> RunReport:
    """The run for `on`; idempotent, resumable, shareable between workers on Postgres."""
    for company in await Company.select(Company.id):
        await install_defaults(company["id"])
    plan = _Plan()
    await plan.load()
    report = RunReport(on=on)
    total = await count_customers()
    run = DunningRun(run_on=on, triggered_by=triggered_by[:100])
    await run.save()
    rates: dict[int, RateTable | None] = {}
    # Stale work first: a reminder cancelled because its items changed is rebuilt below.
    await _cancel_stale(on, report)
    last = 0
    done = 0
    if progress:
        progress(0, total)
    while True:
        async with atomic():
            customers = await _claim_customers(last, batch)
            if not customers:
                break
            # Claimed rows are this worker's alone (SKIP LOCKED); the chain lock comes next,
            # before any row another transaction could hold.
            await history.lock_chain()
            last = customers[-1]["id"]
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


async def finished_today(on: date) -> bool:
    return await DunningRun.exists().where(
        (DunningRun.run_on == on) & DunningRun.finished_at.is_not_null()
    )


async def scheduled_run(settings: Settings) -> RunReport | None:
    """The worker's job: today's run, once a day (a run that did not finish is redone)."""
    today = date.today()
    if await finished_today(today):
        return None
    return await run_dunning(today, settings, triggered_by="worker")
