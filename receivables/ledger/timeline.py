"""A customer's timeline: its history events, newest first, by category, told in words.

Reads the append-only history (nothing here writes). Categories group event kinds by
prefix, so kinds added later by other parts (letters, calls, the portal) land in the
right place without a change here. Emails carry their outbox message, whose exact
content the back office shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from babel.dates import format_date

from receivables.history import HistoryEvent
from receivables.i18n import N_
from receivables.ledger.tables import Item
from receivables.mail.tables import OutboxMessage
from receivables.money import format_money

PAGE = 50


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    prefixes: tuple[str, ...]


CATEGORIES = (
    Category("email", N_("Emails"), ("email.",)),
    Category("letter", N_("Letters"), ("letter.",)),
    Category("call", N_("Calls and notes"), ("call.", "note.")),
    Category(
        "comment",
        N_("Comments and answers"),
        ("comment.", "feedback.submitted", "portal.feedback_submitted"),
    ),
    Category(
        "status",
        N_("Status changes"),
        (
            "item.status",
            "feedback.validated",
            "feedback.rejected",
            "promise.",
            "dispute.",
            "item.",
        ),
    ),
    Category("portal", N_("Portal visits and downloads"), ("portal.",)),
    Category(
        "payment",
        N_("Payments"),
        (
            "allocation.",
            "payment.",
            "refund.",
            "payout.",
            "credit_note.",
            "write_off.",
            "penalty.",
        ),
    ),
    Category("account", N_("Account"), ("account.", "contact.", "portal_link.", "dunning.")),
    Category("erp", N_("ERP updates"), ("import.", "api.")),
)
_BY_KEY = {c.key: c for c in CATEGORIES}
QUIET_KINDS = frozenset({"email.sent", "portal.link_opened", "portal.statement_viewed"})


def category_of(kind: str) -> str:
    for category in CATEGORIES:
        if any(kind == p or kind.startswith(p) for p in category.prefixes):
            return category.key
    return "other"


@dataclass
class TimelineEvent:
    id: int
    occurred_at: datetime
    kind: str
    category: str
    actor_kind: str
    actor_label: str
    item_id: int | None
    item_number: str
    details: dict[str, Any]
    email: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return describe(self)

    @property
    def quiet(self) -> bool:
        """Bookkeeping that a louder event already tells (the email row shows "sent")."""
        return self.kind in QUIET_KINDS


@dataclass
class Timeline:
    events: list[TimelineEvent]
    category: str
    older_than: int | None
    """Id to pass as `before` for the next (older) page; None when this is the last."""


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_STATUS_WORDS = {
    "open": "open",
    "promised": "promise to pay",
    "disputed": "disputed",
    "paid_pending": "paid, pending confirmation",
    "payment_in_progress": "payment in progress",
    "paid": "paid",
    "written_off": "written off",
    "cancelled": "cancelled",
}


def status_words(status: str) -> str:
    return _STATUS_WORDS.get(status, status.replace("_", " "))


def _day(value: Any) -> str:
    try:
        return str(format_date(date.fromisoformat(str(value)[:10]), "medium", locale="en_GB"))
    except ValueError:
        return str(value)


def _amount(details: dict[str, Any]) -> str:
    try:
        return format_money(Decimal(str(details["amount"])), str(details["currency"]))
    except (KeyError, ArithmeticError, ValueError):
        return ""


def _words(value: Any) -> str:
    return str(value or "").replace("_", " ")


def _status_change(d: dict[str, Any], before: str, after: str) -> str:
    text = f"{status_words(str(d.get(before, '')))} → {status_words(str(d.get(after, '')))}"
    if d.get("promise_date"):
        text += f", until {_day(d['promise_date'])}"
    if d.get("dispute_reason"):
        text += f" ({_words(d['dispute_reason'])})"
    return text


def _answer(d: dict[str, Any]) -> str:
    kind = d.get("kind")
    if kind == "paid":
        facts = [f"on {_day(d['paid_on'])}" if d.get("paid_on") else ""]
        facts.append(f"by {_words(d['method'])}" if d.get("method") else "")
        facts.append(f"reference {d['reference']}" if d.get("reference") else "")
        said = ", ".join(f for f in facts if f)
        return "Customer says it is paid" + (f" ({said})" if said else "")
    if kind == "promise":
        return f"Customer promises to pay on {_day(d.get('promise_date'))}"
    if kind == "dispute":
        return f"Customer disputes it: {_words(d.get('dispute_reason'))}"
    if kind == "question":
        return "Customer asks a question"
    return "Customer answered"


def _call(d: dict[str, Any]) -> str:
    """What a call settled (its outcome and words are the lines under it)."""
    parts = []
    items = ", ".join(str(i) for i in d.get("items") or [])
    if d.get("recorded") == "promise":
        parts.append(f"promise to pay on {_day(d.get('promise_date'))} for {items}")
    elif d.get("recorded") == "dispute":
        parts.append(f"dispute ({_words(d.get('dispute_reason'))}) on {items}")
    if d.get("callback_on"):
        parts.append(f"call back on {_day(d['callback_on'])}")
    title = "Call logged" + (f" for “{d['step']}”" if d.get("step") else "")
    return title + (": " + "; ".join(parts) if parts else "")


def describe(event: TimelineEvent) -> str:
    """One sentence for the event (its item is shown beside it); unknown kinds read as their
    name."""
    d = event.details
    kind = event.kind
    if kind == "email.queued":
        to = ", ".join(d.get("to") or [])
        return f"Email “{d.get('subject', '')}” to {to}" if to else "Email written"
    if kind == "email.sent":
        return "Email handed to the mail server"
    if kind == "email.failed":
        return f"Email failed: {d.get('error', '')}".rstrip(": ")
    if kind == "item.status_changed":
        return "Status " + _status_change(d, "from", "to")
    if kind == "call.logged":
        return _call(d)
    if kind == "note.added":
        return "Note"
    if kind == "feedback.validated":
        return "Answer validated: " + _status_change(d, "status_before", "status_after")
    if kind == "feedback.rejected":
        return f"Answer rejected: {d.get('reason', '')}".rstrip(": ")
    if kind in ("portal.feedback_submitted", "feedback.submitted"):
        return _answer(d)
    if kind == "account.blocked":
        return f"Account blocked: {d.get('reason', '')}"
    if kind == "account.unblocked":
        return f"Account unblocked: {d.get('reason', '')}"
    if kind == "account.assigned":
        parts = []
        if "collector" in d:
            parts.append(f"collector → {d.get('collector_name') or 'nobody'}")
        if "payer_profile" in d:
            parts.append(f"payer profile → {_words(d['payer_profile'].get('to'))}")
        return "Account " + ", ".join(parts)
    if kind == "contact.added":
        return f"Contact added: {d.get('name') or ''} <{d.get('email', '')}>"
    if kind == "contact.updated":
        return f"Contact updated: {d.get('email', '')}"
    if kind == "portal_link.issued":
        return f"Portal link issued for {d.get('contact') or 'the account'}"
    if kind == "portal_link.revoked":
        return "Portal link revoked"
    if kind == "allocation.created":
        source = str(d.get("payment", ""))
        if not source.startswith(("Credit note ", "Write-off ")):
            source = f"Payment {source}"
        return f"{source} applied: {_amount(d)}"
    if kind == "credit_note.applied":
        invoices = ", ".join(str(n) for n in d.get("invoices") or [])
        return f"Credit note {d.get('credit_note', '')} applied to {invoices}: {_amount(d)}"
    if kind == "credit_note.restored":
        return f"Credit note {d.get('credit_note', '')} given back {_amount(d)}: " + str(
            d.get("reason", "")
        )
    if kind == "write_off.recorded":
        return f"Remainder {_amount(d)} written off: {d.get('reason', '')}"
    if kind == "write_off.reversed":
        return f"Write-off of {_amount(d)} undone: {d.get('reason', '')}"
    if kind == "penalty.waived":
        figures = " + ".join(
            f"{d[k]} {d.get('currency', '')}".strip()
            for k in ("interest", "compensation")
            if d.get(k)
        )
        claim = f" ({figures})" if figures else ""
        return f"Penalty claim on {d.get('invoice', '')} waived{claim}: {d.get('reason', '')}"
    if kind == "penalty.invoiced":
        claims = ", ".join(str(c.get("invoice", "")) for c in d.get("claims") or [])
        return (
            f"Penalties invoiced as {d.get('number', '')}: {d.get('amount', '')} "
            f"{d.get('currency', '')} (late {claims})"
        )
    if kind == "allocation.reversed":
        return f"Payment {_amount(d)} taken back: {d.get('reason', '')}".rstrip(": ")
    if kind.startswith(("import.", "api.")):
        source = "File import" if kind.startswith("import.") else "ERP API"
        what = kind.split(".", 1)[1]
        counts = ", ".join(f"{d[k]} {k}" for k in ("created", "updated") if d.get(k))
        return f"{source}: {what}" + (f" ({counts})" if counts else "")
    words = _words(kind).replace(".", ": ", 1)
    return f"{words[:1].upper()}{words[1:]}"


def _detail_lines(event: TimelineEvent) -> list[str]:
    """Words the customer or a collector wrote, shown under the title."""
    d = event.details
    lines = []
    for key in ("comment", "message", "text", "question", "outcome"):
        value = d.get(key)
        if isinstance(value, str) and value.strip():
            lines.append(value.strip())
    return lines


def _prefix_condition(category: Category) -> tuple[str, list[str]]:
    parts, args = [], []
    for prefix in category.prefixes:
        if prefix.endswith("."):
            parts.append("kind LIKE {}")
            args.append(prefix + "%")
        else:
            parts.append("(kind = {} OR kind LIKE {})")
            args += [prefix, prefix + "%"]
    return "(" + " OR ".join(parts) + ")", args


async def customer_timeline(
    customer_id: int, *, category: str = "", before: int | None = None, item_id: int | None = None
) -> Timeline:
    """The newest PAGE events of the customer (or of one of its items), before an event id."""
    where = ["customer = {}"]
    args: list[Any] = [customer_id]
    if item_id is not None:
        where.append("item = {}")
        args.append(item_id)
    chosen = _BY_KEY.get(category)
    if chosen is not None:
        cond, cond_args = _prefix_condition(chosen)
        # Kinds claimed by an earlier category stay there (feedback.validated is a status).
        where.append(cond)
        args += cond_args
    if before is not None:
        where.append("id < {}")
        args.append(before)
    rows = await HistoryEvent.raw(
        "SELECT id, occurred_at, kind, actor_kind, actor_label, item, details "  # noqa: S608
        f"FROM history_event WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {PAGE + 1}",
        *args,
    )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    events = []
    for r in rows:
        kind = r["kind"]
        cat = category_of(kind)
        if chosen is not None and cat != chosen.key:
            continue
        occurred = r["occurred_at"]
        if isinstance(occurred, str):
            occurred = datetime.fromisoformat(occurred)
        events.append(
            TimelineEvent(
                id=r["id"],
                occurred_at=occurred,
                kind=kind,
                category=cat,
                actor_kind=r["actor_kind"],
                actor_label=r["actor_label"],
                item_id=r["item"],
                item_number="",
                details=_loads(r["details"]),
            )
        )
    item_ids = {e.item_id for e in events if e.item_id}
    if item_ids:
        numbers = {
            r["id"]: r["number"]
            for r in await Item.select(Item.id, Item.number).where(Item.id.is_in(list(item_ids)))
        }
        for e in events:
            if e.item_id:
                e.item_number = numbers.get(e.item_id, "")
    outbox_ids = {
        int(e.details["outbox"])
        for e in events
        if e.kind == "email.queued" and str(e.details.get("outbox", "")).isdigit()
    }
    if outbox_ids:
        messages = {
            m["id"]: m
            for m in await OutboxMessage.select(
                OutboxMessage.id,
                OutboxMessage.subject,
                OutboxMessage.status,
                OutboxMessage.to_addrs,
                OutboxMessage.last_error,
            ).where(OutboxMessage.id.is_in(list(outbox_ids)))
        }
        for e in events:
            ref = e.details.get("outbox")
            if ref is not None and e.kind == "email.queued":
                e.email = messages.get(int(ref))
    for e in events:
        e.lines = _detail_lines(e)
    return Timeline(
        events=events,
        category=chosen.key if chosen else "",
        older_than=rows[-1]["id"] if more else None,
    )
