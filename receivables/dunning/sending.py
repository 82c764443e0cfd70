"""Dunning emails: written to the outbox with their action, checked again when sent.

One message per recipient (each carries its own portal link), threaded to the customer's
previous reminder. Automatic ones are checked by the sender just before they leave: if
an item they ask to pay has been paid, disputed, promised or changed, or the account was
blocked or went to litigation, the message and its action are cancelled with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import formataddr
from typing import Any

from receivables import history
from receivables.access.portal_links import issue_link
from receivables.clock import customer_today
from receivables.db import atomic
from receivables.dunning import DUNNING_KIND
from receivables.dunning.messages import AccountFacts, compose_email, hashtag_values
from receivables.dunning.tables import (
    ActionStatus,
    DunningAction,
    DunningActionMessage,
    Level,
    MessageTemplate,
    Mode,
)
from receivables.history import Actor
from receivables.ledger.statement import hold_of
from receivables.ledger.tables import Contact, Customer, Item, ItemStatus
from receivables.mail.outbox import Recipient, queue_email
from receivables.mail.tables import OutboxMessage, OutboxStatus
from receivables.settings import Settings


@dataclass(frozen=True)
class Texts:
    """Subject and body templates (text and #hashtags) in one language."""

    language: str
    subject: str
    body: str


async def template_texts(company_id: int, code: str) -> dict[str, Texts]:
    rows = await MessageTemplate.select(
        MessageTemplate.language, MessageTemplate.subject, MessageTemplate.body
    ).where((MessageTemplate.company == company_id) & (MessageTemplate.code == code))
    return {r["language"]: Texts(r["language"], r["subject"], r["body"]) for r in rows}


def pick(texts: dict[str, Texts], language: str) -> Texts | None:
    return texts.get(language) or texts.get("en") or next(iter(texts.values()), None)


def item_snapshot(items: list[Any]) -> str:
    """What an action is about, as it was (statement lines or item rows)."""
    out = []
    for i in items:
        get = i.get if isinstance(i, dict) else lambda k, i=i: getattr(i, k)
        out.append(
            {
                "id": get("id"),
                "number": get("number"),
                "due": str(get("due_date")),
                "open_minor": get("open_minor"),
                "currency": get("currency"),
                "status": get("status"),
            }
        )
    return json.dumps(out, separators=(",", ":"))


def snapshot_of(action: DunningAction | dict) -> list[dict[str, Any]]:
    raw = action["items"] if isinstance(action, dict) else action.items
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def sender(facts: AccountFacts, settings: Settings) -> tuple[str, str]:
    """(From, Reply-To): the company's address, replies to the collector when there is one."""
    company = facts.company
    mail_from = formataddr((company.name, company.email or settings.smtp_from))
    reply_to = facts.collector.email if facts.collector else company.email
    return mail_from, reply_to


async def queue_account_emails(
    facts: AccountFacts,
    *,
    contacts: list[Contact],
    texts: dict[str, Texts],
    actor: Actor,
    settings: Settings,
    kind: str,
    message_ref: str,
    details: dict[str, Any],
) -> list[tuple[int, Contact]]:
    """One email per contact from the template's words in the contact's language, each
    with its own signed link (the portal's doors follow every message's words, whether or
    not the template also writes #PortalLink); caller holds the transaction."""
    mail_from, reply_to = sender(facts, settings)
    queued = []
    for contact in contacts:
        chosen = pick(texts, facts.language_for(contact))
        if chosen is None:
            raise ValueError("no template text")
        issued = await issue_link(
            customer=facts.customer,
            contact=contact,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
            days=settings.portal_link_days,
            issued_by=actor.label,
            message_ref=message_ref,
        )
        values = hashtag_values(
            facts,
            language=chosen.language,
            contact=contact,
            portal_url=issued.url,
            base_url=settings.base_url,
        )
        email = compose_email(chosen.subject, chosen.body, values, facts.company, chosen.language)
        message = await queue_email(
            company_id=facts.company.id,
            customer_id=facts.customer.id,
            kind=kind,
            mail_from=mail_from,
            to=[Recipient(contact.email, contact.name)],
            subject=email.subject,
            text_body=email.text,
            html_body=email.html,
            reply_to=reply_to,
            actor=actor,
            thread=True,
            details={**details, "language": chosen.language, "portal_link": issued.link.id},
            portal_token=issued.token,
            secret_key=settings.secret_key,
        )
        queued.append((message.id, contact))
    return queued


async def queue_action_emails(
    action: DunningAction,
    facts: AccountFacts,
    *,
    contacts: list[Contact],
    texts: dict[str, Texts],
    actor: Actor,
    settings: Settings,
) -> list[int]:
    """Write one email per contact for the action (caller holds the transaction)."""
    queued = await queue_account_emails(
        facts,
        contacts=contacts,
        texts=texts,
        actor=actor,
        settings=settings,
        kind=DUNNING_KIND,
        message_ref=f"dunning-action:{action.id}",
        details={"action": action.id, "step": action.step_name, "level": action.level},
    )
    for message_id, contact in queued:
        await DunningActionMessage(action=action.id, message=message_id, contact=contact.id).save()
    if queued:
        # Spacing is counted from here: the account's last dunning email, on the company's date.
        await Customer.update({Customer.last_reminder_on: facts.on}).where(
            Customer.id == facts.customer.id
        )
    return [message_id for message_id, _ in queued]


async def mark_done(action_id: int, actor: Actor, outcome: str, on: date) -> None:
    await DunningAction.update(
        {
            DunningAction.status: ActionStatus.done.value,
            DunningAction.done_at: datetime.now(UTC),
            DunningAction.done_on: on,
            DunningAction.done_by: actor.label,
            DunningAction.outcome: outcome,
        }
    ).where(DunningAction.id == action_id)


# ------------------------------------------------------------------ still wanted?


async def litigation_customers(customer_ids: list[int]) -> set[int]:
    """Customers whose amicable collection has ended: a collector confirmed the hand-over to
    litigation (a litigation task merely offered changes nothing)."""
    if not customer_ids:
        return set()
    ids = ",".join(str(int(i)) for i in customer_ids)
    rows = await DunningAction.raw(
        f"SELECT DISTINCT customer FROM dunning_action WHERE customer IN ({ids}) "  # noqa: S608
        "AND level = {} AND status = 'done'",
        Level.litigation.value,
    )
    return {r["customer"] for r in rows}


def item_change(snapshot: dict[str, Any], now: dict[str, Any] | None, on) -> str | None:
    """Why an item no longer asks for what the message asks (None: unchanged)."""
    number = snapshot.get("number", "")
    if now is None or now["status"] == ItemStatus.cancelled.value:
        return f"{number} cancelled"
    if now["open_minor"] <= 0 or now["status"] == ItemStatus.paid.value:
        return f"{number} paid"
    if now["status"] == ItemStatus.disputed.value:
        return f"{number} disputed"
    if now["status"] in (ItemStatus.paid_pending.value, ItemStatus.payment_in_progress.value):
        return f"{number} payment reported"
    if now.get("pending_answer"):
        return f"{number} on hold: the customer's answer ({now['pending_answer']}) is pending"
    if hold_of(now["status"], now["promise_date"], now.get("pending_answer", ""), on):
        return f"{number} promised for {now['promise_date']}"
    if now["open_minor"] != snapshot.get("open_minor"):
        return f"{number} partly paid"
    return None


async def stale_reason(action: dict[str, Any], on) -> tuple[str, bool] | None:
    """(reason, items changed) when the action's message should no longer go out."""
    customer = (
        await Customer.select(Customer.blocked, Customer.blocked_reason)
        .where(Customer.id == action["customer"])
        .first()
    )
    if customer and customer["blocked"]:
        return f"account blocked: {customer['blocked_reason']}".rstrip(": "), False
    if action["customer"] in await litigation_customers([action["customer"]]):
        return "the account is in litigation", False
    snapshot = snapshot_of(action)
    ids = [s["id"] for s in snapshot]
    current = (
        {
            r["id"]: r
            for r in await Item.select(
                Item.id, Item.open_minor, Item.status, Item.promise_date, Item.pending_answer
            ).where(Item.id.is_in(ids))
        }
        if ids
        else {}
    )
    changes = [c for s in snapshot if (c := item_change(s, current.get(s["id"]), on))]
    if changes:
        return "; ".join(changes), True
    return None


async def _recount_last_reminder(customer_id: int) -> None:
    """A reminder cancelled before it left does not count for spacing: the last one is the
    latest action whose email is queued, being sent or sent."""
    rows = await DunningAction.raw(
        "SELECT MAX(a.done_on) AS last FROM dunning_action a "
        "JOIN dunning_action_message m ON m.action = a.id "
        "JOIN outbox_message o ON o.id = m.message "
        "WHERE a.customer = {} AND o.status NOT IN ('cancelled', 'failed')",
        customer_id,
    )
    last = rows[0]["last"] if rows else None
    await Customer.update(
        {
            Customer.last_reminder_on: date.fromisoformat(last[:10])
            if isinstance(last, str)
            else last
        }
    ).where(Customer.id == customer_id)


async def cancel_action(
    action: dict[str, Any], reason: str, *, items_changed: bool, actor: Actor
) -> bool:
    """Cancel an action and its unsent emails; with `items_changed` the run may rebuild it."""
    values: dict[Any, Any] = {
        DunningAction.status: ActionStatus.cancelled.value,
        DunningAction.outcome: reason[:2000],
        DunningAction.done_at: datetime.now(UTC),
        DunningAction.done_by: actor.label,
    }
    if items_changed:
        values[DunningAction.cycle_key] = None
    done = (
        await DunningAction.update(values)
        .where(
            (DunningAction.id == action["id"])
            & (DunningAction.status != ActionStatus.cancelled.value)
            & (DunningAction.status != ActionStatus.skipped.value)
        )
        .returning(DunningAction.id)
    )
    if not done:
        return False
    links = await DunningActionMessage.select(DunningActionMessage.message).where(
        DunningActionMessage.action == action["id"]
    )
    message_ids = [r["message"] for r in links]
    unsent = (
        await OutboxMessage.update(
            {
                OutboxMessage.status: OutboxStatus.cancelled.value,
                OutboxMessage.last_error: reason[:2000],
            }
        )
        .where(
            OutboxMessage.id.is_in(message_ids)
            & (OutboxMessage.status == OutboxStatus.queued.value)
        )
        .returning(OutboxMessage.id, OutboxMessage.message_id)
        if message_ids
        else []
    )
    if unsent:
        await _recount_last_reminder(action["customer"])
    for row in unsent:
        await history.record(
            company_id=action["company"],
            actor=actor,
            kind="email.cancelled",
            customer_id=action["customer"],
            details={"outbox": row["id"], "message_id": row["message_id"], "reason": reason},
        )
    await history.record(
        company_id=action["company"],
        actor=actor,
        kind="dunning.action_cancelled",
        customer_id=action["customer"],
        details={
            "action": action["id"],
            "step": action["step_name"],
            "level": action["level"],
            "reason": reason,
            "emails_cancelled": len(unsent),
        },
    )
    return True


async def cancel_reason(row: dict[str, Any]) -> str | None:
    """The outbox's question before sending a dunning email: still wanted?"""
    link = (
        await DunningActionMessage.select(DunningActionMessage.action)
        .where(DunningActionMessage.message == row["id"])
        .first()
    )
    if link is None:
        return None
    async with atomic():
        action = await DunningAction.select().where(DunningAction.id == link["action"]).first()
        if action is None:
            return None
        if action["status"] == ActionStatus.cancelled.value:
            return f"action cancelled: {action['outcome']}"
        if action["mode"] != Mode.automatic.value:
            return None  # a collector chose to send it
        found = await stale_reason(action, await customer_today(action["customer"]))
        if found is None:
            return None
        reason, changed = found
        await cancel_action(action, reason, items_changed=changed, actor=Actor.system("mail"))
        return reason
