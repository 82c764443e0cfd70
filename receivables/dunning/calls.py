"""A collector's contact with an account, from the agenda or the account page: calls, notes
and statement emails, each kept in the history.

A call has an outcome (reached, no answer, voicemail, wrong number), maybe a date to call
back, and may record on the spot a promise to pay (date and invoices) or a dispute (reason
and invoices). Logged on an agenda action, it also claims that action as done (a guarded
UPDATE: a double click or two collectors cannot do it twice). A statement email is a
message template filled in for chosen contacts, each with a portal link of their own,
without any agenda action. Bad input raises InvalidInput naming the field; nothing is
half-written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

from receivables import history
from receivables.db import atomic
from receivables.dunning import hashtags
from receivables.dunning.messages import (
    AccountFacts,
    ComposedEmail,
    compose_email,
    hashtag_values,
    load_facts,
    sendable,
)
from receivables.dunning.sending import Texts, pick, queue_account_emails, template_texts
from receivables.dunning.tables import ActionStatus, Channel, DunningAction, MessageTemplate
from receivables.errors import FieldProblem, InvalidInput, NotFound
from receivables.history import Actor, HistoryEvent
from receivables.ledger.account_changes import StatusInput, apply_item_status, check_status
from receivables.ledger.tables import Contact, Customer, Item, ItemStatus
from receivables.settings import Settings

MAX_NOTES = 2000
MAX_NOTE = 5000
STATEMENT_KIND = "statement"
"""Outbox kind of the statement emails a collector sends from the account page."""


class CallOutcome(str, Enum):
    reached = "reached"
    no_answer = "no_answer"
    voicemail = "voicemail"
    wrong_number = "wrong_number"


class Record(str, Enum):
    """What a call records on the chosen invoices, on the spot."""

    promise = "promise"
    dispute = "dispute"


@dataclass(frozen=True)
class CallInput:
    outcome: str
    notes: str = ""
    record: str = ""
    """'', 'promise' or 'dispute': a status to set on the chosen items, on the spot."""
    item_ids: tuple[int, ...] = ()
    promise_date: date | None = None
    dispute_reason: str = ""
    callback_on: date | None = None
    """When to call again (after today): recorded and shown, nothing is scheduled."""


def _status_of(call: CallInput) -> StatusInput | None:
    if call.record == Record.promise.value:
        status = ItemStatus.promised.value
    elif call.record == Record.dispute.value:
        status = ItemStatus.disputed.value
    else:
        return None
    return StatusInput(
        status=status,
        promise_date=call.promise_date,
        dispute_reason=call.dispute_reason,
        comment=call.notes.strip(),
    )


def check_call(call: CallInput, today: date) -> list[FieldProblem]:
    """Every problem of the call form at once, each naming its field."""
    problems: list[FieldProblem] = []
    if call.outcome not in {o.value for o in CallOutcome}:
        problems.append(FieldProblem("outcome", "reached, no answer, voicemail or wrong number"))
    if len(call.notes) > MAX_NOTES:
        problems.append(FieldProblem("notes", f"{MAX_NOTES} characters at most"))
    if call.callback_on is not None and call.callback_on <= today:
        problems.append(FieldProblem("callback_on", "a date after today"))
    if call.record:
        if call.record not in {r.value for r in Record}:
            problems.append(FieldProblem("record", "a promise or a dispute"))
        else:
            if call.outcome != CallOutcome.reached.value:
                problems.append(
                    FieldProblem("record", "a promise or a dispute needs the customer reached")
                )
            if not call.item_ids:
                problems.append(FieldProblem("items", "choose the invoices concerned"))
            status = _status_of(call)
            assert status is not None
            # The comment is the call's notes, already measured as "notes".
            problems += [p for p in check_status(status, today) if p.field != "comment"]
    return problems


async def _customer(customer_id: int) -> Customer:
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    return customer


def _call_words(call: CallInput) -> str:
    label = call.outcome.replace("_", " ")
    notes = call.notes.strip()
    return f"call: {label}" + (f" — {notes}" if notes else "")


async def log_customer_call(
    customer_id: int,
    call: CallInput,
    actor: Actor,
    today: date,
    *,
    action_id: int | None = None,
) -> DunningAction | None:
    """Log a call on the account (and on an agenda action, claimed as done); returns the
    action when there is one."""
    problems = check_call(call, today)
    if problems:
        raise InvalidInput(problems)
    customer = await _customer(customer_id)
    status = _status_of(call)
    async with atomic():
        await history.lock_accounts([customer.id], company_id=customer.company)
        items: list[Item] = []
        if status is not None:
            items = await Item.objects().where(
                Item.id.is_in(list(call.item_ids)) & (Item.customer == customer_id)
            )
            if len(items) != len(set(call.item_ids)):
                raise InvalidInput.one("items", "choose among this customer's invoices")
            for item in items:
                if item.status in (ItemStatus.paid.value, ItemStatus.cancelled.value):
                    raise InvalidInput.one("items", f"{item.number} is {item.status}")
        action: DunningAction | None = None
        about: dict[str, object] = {}
        if action_id is not None:
            # agenda imports this module: its guarded claim is looked up when needed.
            from receivables.dunning.agenda import _claim

            action = await _claim(
                action_id, ActionStatus.done, actor, on=today, outcome=_call_words(call)
            )
            if action.customer != customer_id:
                raise NotFound(f"action {action_id} of customer {customer_id}")
            about = {"action": action.id, "step": action.step_name, "level": action.level}
        recorded: dict[str, object] = {}
        if items:
            recorded = {"recorded": call.record, "items": [i.number for i in items]}
            if call.record == Record.promise.value:
                recorded["promise_date"] = call.promise_date
            else:
                recorded["dispute_reason"] = call.dispute_reason
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="call.logged",
            customer_id=customer_id,
            details={
                **about,
                "outcome": call.outcome.replace("_", " "),
                "text": call.notes.strip(),
                **recorded,
                **({"callback_on": call.callback_on} if call.callback_on else {}),
            },
        )
        for item in items:
            assert status is not None  # items are only chosen to record a status
            await apply_item_status(
                item,
                status,
                actor,
                kind="item.status_changed",
                extra={"via": "call", **({"action": action.id} if action else {})},
            )
    return action


@dataclass(frozen=True)
class LastCall:
    """The account's latest call, for the account page."""

    at: datetime
    by: str
    outcome: str
    callback_on: date | None


async def last_call(customer_id: int) -> LastCall | None:
    row = (
        await HistoryEvent.select(
            HistoryEvent.occurred_at, HistoryEvent.actor_label, HistoryEvent.details
        )
        .where((HistoryEvent.customer == customer_id) & (HistoryEvent.kind == "call.logged"))
        .order_by(HistoryEvent.id, ascending=False)
        .first()
    )
    if row is None:
        return None
    try:
        details = json.loads(row["details"] or "{}")
    except ValueError:
        details = {}
    raw = details.get("callback_on") if isinstance(details, dict) else None
    try:
        callback_on = date.fromisoformat(str(raw)) if raw else None
    except ValueError:
        callback_on = None
    occurred = row["occurred_at"]
    if isinstance(occurred, str):
        occurred = datetime.fromisoformat(occurred)
    return LastCall(
        at=occurred,
        by=row["actor_label"],
        outcome=str(details.get("outcome", "")) if isinstance(details, dict) else "",
        callback_on=callback_on,
    )


# ------------------------------------------------------------------ notes


async def add_note(customer_id: int, text: str, actor: Actor) -> int:
    """A collector's note on the account, kept in the history (`note.added`)."""
    text = text.strip()
    if not text:
        raise InvalidInput.one("note", "write the note first")
    if len(text) > MAX_NOTE:
        raise InvalidInput.one("note", f"{MAX_NOTE} characters at most")
    customer = await _customer(customer_id)
    return await history.record(
        company_id=customer.company,
        actor=actor,
        kind="note.added",
        customer_id=customer_id,
        details={"text": text},
    )


# ------------------------------------------------------------------ statement emails


@dataclass(frozen=True)
class EmailTemplateChoice:
    code: str
    name: str
    languages: tuple[str, ...]


async def email_templates(company_id: int) -> list[EmailTemplateChoice]:
    """The company's email templates, one per code, for the account page's select."""
    rows = (
        await MessageTemplate.select(
            MessageTemplate.code, MessageTemplate.name, MessageTemplate.language
        )
        .where(
            (MessageTemplate.company == company_id)
            & (MessageTemplate.channel == Channel.email.value)
        )
        .order_by(MessageTemplate.code)
        .order_by(MessageTemplate.language)
    )
    found: dict[str, tuple[str, list[str]]] = {}
    for r in rows:
        name, languages = found.setdefault(r["code"], (r["name"] or r["code"], []))
        languages.append(r["language"])
    return [EmailTemplateChoice(code, name, tuple(langs)) for code, (name, langs) in found.items()]


async def _email_texts(company_id: int, template_code: str) -> dict[str, Texts]:
    """The template's words by language (InvalidInput 'template' when it is not an email)."""
    if not template_code:
        raise InvalidInput.one("template", "choose a template")
    channel = (
        await MessageTemplate.select(MessageTemplate.channel)
        .where((MessageTemplate.company == company_id) & (MessageTemplate.code == template_code))
        .first()
    )
    if channel is None or channel["channel"] != Channel.email.value:
        raise InvalidInput.one("template", "choose one of this company's email templates")
    texts = await template_texts(company_id, template_code)
    problems = []
    for t in texts.values():
        problems += hashtags.check(t.subject, "template", Channel.email.value)
        problems += hashtags.check(t.body, "template", Channel.email.value)
    if problems:
        # Saving refuses these; one that got in anyway is never sent as typed.
        raise InvalidInput(
            [FieldProblem("template", f"fix the template first: {p.message}") for p in problems]
        )
    return texts


def _chosen_contacts(facts: AccountFacts, contact_ids: tuple[int, ...]) -> list[Contact]:
    if not contact_ids:
        raise InvalidInput.one("recipients", "choose at least one contact")
    chosen = [c for c in facts.contacts if c.id in contact_ids]
    if len(chosen) != len(set(contact_ids)):
        raise InvalidInput.one("recipients", "choose among this customer's contacts")
    bad = [c.email for c in chosen if not sendable(c.email)]
    if bad:
        raise InvalidInput.one(
            "recipients", f"{', '.join(bad)} cannot receive mail (fix the address)"
        )
    return chosen


async def preview_statement_email(
    customer_id: int, template_code: str, contact_ids: tuple[int, ...], base_url: str, today: date
) -> ComposedEmail:
    """The email as the first chosen contact would read it; no portal link is issued."""
    facts = await load_facts(customer_id, today)
    texts = await _email_texts(facts.company.id, template_code)
    contact = next((c for c in facts.contacts if c.id in contact_ids), facts.addressee)
    chosen = pick(texts, facts.language_for(contact))
    assert chosen is not None  # the template exists, so it has words in some language
    values = hashtag_values(
        facts, language=chosen.language, contact=contact, portal_url=None, base_url=base_url
    )
    return compose_email(chosen.subject, chosen.body, values, facts.company, chosen.language)


async def send_statement_email(
    customer_id: int,
    template_code: str,
    contact_ids: tuple[int, ...],
    actor: Actor,
    settings: Settings,
    today: date,
) -> list[int]:
    """Queue the template filled in for each chosen contact, each with its own portal link;
    returns the outbox ids (their `email.queued` events carry the template, so the history
    tells what was sent and why)."""
    await _customer(customer_id)
    facts = await load_facts(customer_id, today)
    problems: list[FieldProblem] = []
    texts: dict[str, Texts] = {}
    chosen: list[Contact] = []
    try:
        texts = await _email_texts(facts.company.id, template_code)
    except InvalidInput as exc:
        problems += exc.problems
    try:
        chosen = _chosen_contacts(facts, contact_ids)
    except InvalidInput as exc:
        problems += exc.problems
    if problems:
        raise InvalidInput(problems)
    async with atomic():
        await history.lock_accounts([customer_id], company_id=facts.company.id)
        queued = await queue_account_emails(
            facts,
            contacts=chosen,
            texts=texts,
            actor=actor,
            settings=settings,
            kind=STATEMENT_KIND,
            message_ref=f"statement:{template_code}",
            details={"template": template_code, "from": "account page"},
        )
    ids = [message_id for message_id, _ in queued]
    return ids
