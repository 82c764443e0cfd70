"""The collector's agenda: today's and late actions, and what a collector does with each.

Send an email (the step's template, edited or not, to chosen contacts), confirm automatic
ones in bulk, log a call (recording a promise or a dispute on the spot), skip with a
reason, postpone. Each change claims the action with a guarded UPDATE (a double click or
two collectors cannot do it twice) and writes its history in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from receivables import history
from receivables.access.tables import StaffUser
from receivables.clock import customer_today
from receivables.db import atomic
from receivables.dunning import hashtags
from receivables.dunning.calls import CallInput, log_customer_call
from receivables.dunning.messages import (
    AccountFacts,
    ComposedEmail,
    compose_email,
    hashtag_values,
    load_facts,
    sendable,
)
from receivables.dunning.sending import (
    Texts,
    cancel_action,
    pick,
    queue_action_emails,
    snapshot_of,
    template_texts,
)
from receivables.dunning.tables import (
    OPEN_ACTION_STATUSES,
    ActionStatus,
    Channel,
    DunningAction,
    Level,
    Scenario,
)
from receivables.errors import Conflict, FieldProblem, InvalidInput, NotFound
from receivables.history import Actor
from receivables.i18n import N_
from receivables.ledger.tables import Customer
from receivables.mail.tables import OutboxMessage
from receivables.money import Money
from receivables.portal.feedback import pending_feedback
from receivables.portal.tables import FeedbackKind
from receivables.settings import Settings

MAX_TEXT = 20000
DEFAULT_INTERVAL = 7
MAX_AGENDA = 300
LEVEL_TITLES = {
    Level.litigation.value: N_("Litigation"),
    Level.level_3.value: N_("Level 3 · formal notice"),
    Level.level_2.value: N_("Level 2"),
    Level.level_1.value: N_("Level 1"),
    Level.pre_dunning.value: N_("Pre-dunning"),
}


LATE_GROUP = "late"

_AGENDA_COLUMNS = (
    "a.id, a.customer, a.step_name, a.level, a.channel, a.mode, a.status, a.due_on, "
    "a.held_reason, a.items, c.name AS customer_name, c.ref AS customer_ref, c.blocked, c.collector"
)


_AGENDA_FROM = "dunning_action a JOIN customer c ON c.id = a.customer"


class Who(str, Enum):
    mine = "mine"
    unassigned = "unassigned"
    everyone = "all"


@dataclass
class AgendaEntry:
    id: int
    customer_id: int
    customer_name: str
    customer_ref: str
    blocked: bool
    collector_id: int | None
    step_name: str
    level: str
    channel: str
    mode: str
    status: str
    due_on: date
    days_late: int
    held_reason: str
    amounts: list[Money]
    items: int


@dataclass
class Agenda:
    on: date
    groups: list[tuple[str, str, list[AgendaEntry]]]
    total: int
    truncated: bool
    to_confirm: int

    @property
    def empty(self) -> bool:
        return self.total == 0


def snapshot_amounts(snapshot: list[dict[str, Any]]) -> list[Money]:
    totals: dict[str, int] = defaultdict(int)
    for s in snapshot:
        totals[s.get("currency") or "EUR"] += int(s.get("open_minor") or 0)
    return [Money.from_minor(v, c) for c, v in sorted(totals.items())]


async def agenda(
    on: date, *, who: Who, user_id: int | None = None, collector_id: int | None = None
) -> Agenda:
    """Open actions due on or before `on`, firmest level first, then oldest first."""
    where = ["a.status IN ('due', 'to_confirm')", "a.due_on <= {}"]
    args: list[Any] = [on]
    if collector_id is not None:
        where.append("c.collector = {}")
        args.append(collector_id)
    elif who == Who.mine:
        where.append("c.collector = {}")
        args.append(user_id)
    elif who == Who.unassigned:
        where.append("c.collector IS NULL")
    # Only fixed fragments and {} placeholders are joined; values travel as arguments.
    conditions = " AND ".join(where)
    order = f"ORDER BY a.due_on, c.name, a.id LIMIT {MAX_AGENDA + 1}"
    sql = f"SELECT {_AGENDA_COLUMNS} FROM {_AGENDA_FROM} WHERE {conditions} {order}"  # noqa: S608
    rows = await DunningAction.raw(sql, *args)
    truncated = len(rows) > MAX_AGENDA
    rows = rows[:MAX_AGENDA]
    by_level: dict[str, list[AgendaEntry]] = defaultdict(list)
    to_confirm = 0
    for r in rows:
        due_on = r["due_on"] if isinstance(r["due_on"], date) else date.fromisoformat(r["due_on"])
        snapshot = snapshot_of(r)
        entry = AgendaEntry(
            id=r["id"],
            customer_id=r["customer"],
            customer_name=r["customer_name"],
            customer_ref=r["customer_ref"],
            blocked=bool(r["blocked"]),
            collector_id=r["collector"],
            step_name=r["step_name"],
            level=r["level"],
            channel=r["channel"],
            mode=r["mode"],
            status=r["status"],
            due_on=due_on,
            days_late=max(0, (on - due_on).days),
            held_reason=r["held_reason"],
            amounts=snapshot_amounts(snapshot),
            items=len(snapshot),
        )
        to_confirm += entry.status == ActionStatus.to_confirm.value
        by_level[entry.level].append(entry)
    # Tasks left undone on their day come first, oldest first, whatever their level.
    late = sorted(
        (e for entries in by_level.values() for e in entries if e.days_late > 0),
        key=lambda e: (-e.days_late, e.customer_name, e.id),
    )
    groups = [(LATE_GROUP, N_("Late: not done on their day"), late)] if late else []
    groups += [
        (level, LEVEL_TITLES[level], [e for e in by_level[level] if e.days_late <= 0])
        for level in LEVEL_TITLES
        if any(e.days_late <= 0 for e in by_level[level])
    ]
    return Agenda(on=on, groups=groups, total=len(rows), truncated=truncated, to_confirm=to_confirm)


# ------------------------------------------------------------------ one action


@dataclass
class ActionMessage:
    id: int
    to: str
    subject: str
    status: str
    last_error: str
    sent_at: datetime | None


@dataclass
class ActionView:
    action: DunningAction
    facts: AccountFacts
    texts: dict[str, Texts]
    language: str
    messages: list[ActionMessage] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    """The customer's questions waiting for an answer: they hold nothing, but come up here."""

    @property
    def is_open(self) -> bool:
        return self.action.status in OPEN_ACTION_STATUSES

    @property
    def draft(self) -> Texts | None:
        return pick(self.texts, self.language)


async def get_action(action_id: int) -> DunningAction:
    action = await DunningAction.objects().get(DunningAction.id == action_id)
    if action is None:
        raise NotFound(f"action {action_id}")
    return action


async def action_view(action_id: int, on: date) -> ActionView:
    action = await get_action(action_id)
    facts = await load_facts(action.customer, on)
    texts = (
        await template_texts(action.company, action.template_code) if action.template_code else {}
    )
    rows = await OutboxMessage.raw(
        "SELECT o.id, o.to_addrs, o.subject, o.status, o.last_error, o.sent_at "
        "FROM dunning_action_message m JOIN outbox_message o ON o.id = m.message "
        "WHERE m.action = {} ORDER BY o.id",
        action_id,
    )
    contact = facts.addressee
    return ActionView(
        action=action,
        facts=facts,
        texts=texts,
        language=facts.language_for(contact),
        questions=await pending_feedback(
            customer_id=action.customer, kind=FeedbackKind.question.value
        ),
        messages=[
            ActionMessage(
                r["id"],
                r["to_addrs"].replace("\n", ", "),
                r["subject"],
                r["status"],
                r["last_error"],
                r["sent_at"],
            )
            for r in rows
        ],
    )


@dataclass(frozen=True)
class Draft:
    subject: str
    body: str
    language: str = "en"
    contact_ids: tuple[int, ...] = ()


def check_draft(draft: Draft, *, need_recipients: bool) -> list[FieldProblem]:
    problems = []
    if not draft.subject.strip():
        problems.append(FieldProblem("subject", "required"))
    if not draft.body.strip():
        problems.append(FieldProblem("body", "required"))
    if len(draft.subject) > 500:
        problems.append(FieldProblem("subject", "500 characters at most"))
    if len(draft.body) > MAX_TEXT:
        problems.append(FieldProblem("body", f"{MAX_TEXT} characters at most"))
    problems += hashtags.check(draft.subject, "subject", Channel.email.value)
    problems += hashtags.check(draft.body, "body", Channel.email.value)
    if need_recipients and not draft.contact_ids:
        problems.append(FieldProblem("recipients", "choose at least one contact"))
    return problems


def preview(facts: AccountFacts, draft: Draft, base_url: str) -> ComposedEmail:
    """The email as it will read (the portal link shown as a placeholder: nothing is issued)."""
    problems = check_draft(draft, need_recipients=False)
    if problems:
        raise InvalidInput(problems)
    contact = next((c for c in facts.contacts if c.id in draft.contact_ids), None)
    if contact is None:
        contact = facts.addressee
    values = hashtag_values(
        facts, language=draft.language, contact=contact, portal_url=None, base_url=base_url
    )
    return compose_email(draft.subject, draft.body, values, facts.company, draft.language)


async def _claim(
    action_id: int, to: ActionStatus, actor: Actor, *, on: date | None = None, **values: Any
) -> DunningAction:
    """Move an open action to `to` unless someone else did first (caller holds the transaction).

    `on` is the company's date it is done (the next step is spaced from it); the clock's
    today when not given."""
    if on is None:
        on = await customer_today((await get_action(action_id)).customer)
    updates: dict[Any, Any] = {
        DunningAction.status: to.value,
        DunningAction.done_at: datetime.now(UTC),
        DunningAction.done_on: on,
        DunningAction.done_by: actor.label,
    }
    updates.update({getattr(DunningAction, k): v for k, v in values.items()})
    done = (
        await DunningAction.update(updates)
        .where(
            (DunningAction.id == action_id) & DunningAction.status.is_in(list(OPEN_ACTION_STATUSES))
        )
        .returning(DunningAction.id)
    )
    if not done:
        action = await get_action(action_id)
        raise Conflict(f"this action is already {action.status.replace('_', ' ')}")
    return await get_action(action_id)


def _event(action: DunningAction) -> dict[str, Any]:
    return {"action": action.id, "step": action.step_name, "level": action.level}


async def spacing_problem(customer_id: int, scenario_id: int | None, on: date) -> str:
    """Why another dunning email to this customer would come too soon ('' when it may go)."""
    customer = await Customer.select(Customer.last_reminder_on).where(Customer.id == customer_id)
    last = customer[0]["last_reminder_on"] if customer else None
    if last is None:
        return ""
    row = (
        await Scenario.select(Scenario.min_interval_days).where(Scenario.id == scenario_id).first()
        if scenario_id
        else None
    )
    interval = row["min_interval_days"] if row else DEFAULT_INTERVAL
    if isinstance(last, str):
        last = date.fromisoformat(last[:10])
    if (on - last).days >= interval:
        return ""
    return (
        f"the last reminder to this customer went on {last.isoformat()}; reminders are spaced "
        f"{interval} days apart (tick to send anyway)"
    )


async def send_action(
    action_id: int,
    draft: Draft,
    actor: Actor,
    settings: Settings,
    on: date,
    *,
    override_spacing: bool = False,
) -> list[int]:
    """The collector's email: the draft (template words, maybe edited) to chosen contacts.

    Closer to the previous reminder than the scenario's spacing, it goes only with
    `override_spacing` (the collector's confirmation), which the history records."""
    problems = check_draft(draft, need_recipients=True)
    action = await get_action(action_id)
    if action.status not in OPEN_ACTION_STATUSES:
        raise Conflict(f"this action is already {action.status.replace('_', ' ')}")
    if not override_spacing and (
        spacing := await spacing_problem(action.customer, action.scenario, on)
    ):
        problems.append(FieldProblem("override_spacing", spacing))
    facts = await load_facts(action.customer, on)
    chosen = [c for c in facts.contacts if c.id in draft.contact_ids]
    if draft.contact_ids and len(chosen) != len(set(draft.contact_ids)):
        problems.append(FieldProblem("recipients", "choose among this customer's contacts"))
    for contact in chosen:
        if not sendable(contact.email):
            problems.append(
                FieldProblem("recipients", f"{contact.email} cannot receive mail (fix the address)")
            )
    if problems:
        raise InvalidInput(problems)
    template = pick(await template_texts(action.company, action.template_code), draft.language)
    edited = template is None or (template.subject, template.body) != (draft.subject, draft.body)
    async with atomic():
        await history.lock_accounts([action.customer])
        action = await _claim(action_id, ActionStatus.done, actor, on=on, outcome="email sent")
        ids = await queue_action_emails(
            action,
            facts,
            contacts=chosen,
            texts={draft.language: Texts(draft.language, draft.subject, draft.body)},
            actor=actor,
            settings=settings,
        )
        sent = f"{len(ids)} email{'s' if len(ids) != 1 else ''} sent"
        await DunningAction.update({DunningAction.outcome: sent}).where(
            DunningAction.id == action_id
        )
        await history.record(
            company_id=action.company,
            actor=actor,
            kind="dunning.action_done",
            customer_id=action.customer,
            details={
                **_event(action),
                "channel": "email",
                "emails": ids,
                "edited": edited,
                "to": [c.email for c in chosen],
                **({"spacing_overridden": True} if override_spacing else {}),
            },
        )
    return ids


@dataclass
class Confirmed:
    done: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


async def confirm_actions(
    action_ids: list[int], actor: Actor, settings: Settings, on: date
) -> Confirmed:
    """Send automatic-with-confirmation actions as built from their templates, in bulk."""
    result = Confirmed()
    for action_id in dict.fromkeys(action_ids):
        action = await DunningAction.objects().get(DunningAction.id == action_id)
        if action is None or action.status != ActionStatus.to_confirm.value:
            result.refused[action_id] = "no longer waiting for confirmation"
            continue
        facts = await load_facts(action.customer, on)
        if action.level != Level.pre_dunning.value and not facts.to_pay:
            result.refused[action_id] = (
                f"{facts.customer.name}: nothing to ask for, "
                "every overdue invoice is paid or on hold"
            )
            continue
        if spacing := await spacing_problem(action.customer, action.scenario, on):
            result.refused[action_id] = f"{facts.customer.name}: {spacing.split(' (')[0]}"
            continue
        texts = await template_texts(action.company, action.template_code)
        contacts = facts.reminder_contacts
        if not contacts:
            result.refused[action_id] = f"{facts.customer.name}: no contact receives reminders"
            continue
        if not texts:
            result.refused[action_id] = f"no template '{action.template_code}'"
            continue
        try:
            async with atomic():
                await history.lock_accounts([action.customer])
                action = await _claim(
                    action_id, ActionStatus.done, actor, on=on, outcome="confirmed"
                )
                ids = await queue_action_emails(
                    action, facts, contacts=contacts, texts=texts, actor=actor, settings=settings
                )
                await history.record(
                    company_id=action.company,
                    actor=actor,
                    kind="dunning.action_confirmed",
                    customer_id=action.customer,
                    details={**_event(action), "emails": ids},
                )
        except Conflict as exc:
            result.refused[action_id] = str(exc)
            continue
        result.done.append(action_id)
    return result


async def log_call(action_id: int, call: CallInput, actor: Actor, today: date) -> DunningAction:
    """A call made for an action: logged on its account (see `calls`), the action claimed done."""
    action = await get_action(action_id)
    logged = await log_customer_call(action.customer, call, actor, today, action_id=action_id)
    assert logged is not None
    return logged


async def confirm_litigation(action_id: int, note: str, actor: Actor, on: date) -> DunningAction:
    """A collector hands the account over to litigation: amicable collection ends.

    Only a litigation task offers it (the run makes one only after a posted formal
    notice's deadline passed); the account's other open tasks are closed, and unsent
    automatic reminders are cancelled when the sender checks them."""
    note = note.strip()
    if len(note) > 2000:
        raise InvalidInput.one("note", "2000 characters at most")
    action = await get_action(action_id)
    if action.level != Level.litigation.value:
        raise InvalidInput.one("action", "only a litigation task hands an account over")
    async with atomic():
        await history.lock_accounts([action.customer])
        action = await _claim(
            action_id,
            ActionStatus.done,
            actor,
            on=on,
            outcome="handed over to litigation" + (f": {note}" if note else ""),
        )
        others = await DunningAction.select().where(
            (DunningAction.customer == action.customer)
            & (DunningAction.id != action_id)
            & DunningAction.status.is_in(list(OPEN_ACTION_STATUSES))
        )
        for other in others:
            await cancel_action(
                other, "the account went to litigation", items_changed=False, actor=actor
            )
        await history.record(
            company_id=action.company,
            actor=actor,
            kind="dunning.litigation_confirmed",
            customer_id=action.customer,
            details={**_event(action), "note": note, "on": on},
        )
    return action


async def skip_action(
    action_id: int, reason: str, actor: Actor, on: date | None = None
) -> DunningAction:
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "say why this step is skipped")
    if len(reason) > 500:
        raise InvalidInput.one("reason", "500 characters at most")
    async with atomic():
        await history.lock_accounts([(await get_action(action_id)).customer])
        action = await _claim(action_id, ActionStatus.skipped, actor, on=on, outcome=reason)
        await history.record(
            company_id=action.company,
            actor=actor,
            kind="dunning.action_skipped",
            customer_id=action.customer,
            details={**_event(action), "reason": reason},
        )
    return action


async def postpone_action(
    action_id: int, until: date | None, reason: str, actor: Actor, today: date
) -> DunningAction:
    if until is None:
        raise InvalidInput.one("until", "the date to do it")
    if until <= today:
        raise InvalidInput.one("until", "a date after today")
    async with atomic():
        action = await get_action(action_id)
        await history.lock_accounts([action.customer])
        done = (
            await DunningAction.update({DunningAction.due_on: until})
            .where(
                (DunningAction.id == action_id)
                & DunningAction.status.is_in(list(OPEN_ACTION_STATUSES))
            )
            .returning(DunningAction.id)
        )
        if not done:
            raise Conflict(f"this action is already {action.status.replace('_', ' ')}")
        await history.record(
            company_id=action.company,
            actor=actor,
            kind="dunning.action_postponed",
            customer_id=action.customer,
            details={
                **_event(action),
                "from": action.due_on,
                "to": until,
                "reason": reason.strip(),
            },
        )
    return await get_action(action_id)


async def collectors() -> list[dict[str, Any]]:
    return (
        await StaffUser.select(StaffUser.id, StaffUser.name)
        .where(
            StaffUser.active == True  # noqa: E712
        )
        .order_by(StaffUser.name)
    )


async def customer_name(customer_id: int) -> str:
    row = await Customer.select(Customer.name).where(Customer.id == customer_id).first()
    return row["name"] if row else ""
