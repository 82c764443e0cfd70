"""Payer profile suggestions: the profile a customer's payment behaviour over the last six
months calls for, beside the one assigned, with the figures that say why.

The rules are the named constants below and `profile_for` / `suggestion_for`, nothing else
(docs/DUNNING.md, "Payer profile suggestions", states them in words). Figures are computed
live, set-based, for the customers asked for only (a page of the customer list, one account):
three queries whatever the number of customers, each reading an index on the customer.
"""
# ruff: noqa: S608 - the statements are assembled from constant fragments and placeholders

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from receivables import history
from receivables.db import atomic, is_postgres
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.history import Actor, HistoryEvent
from receivables.ledger.tables import Customer, ItemKind, PayerProfile, PromiseToPay

WINDOW_MONTHS = 6
"""The behaviour looked at: payments received, promises broken and invoices disputed from
the same day six calendar months ago up to today."""

ON_TIME_MAX_DAYS = 5
"""Up to this many days late on average (amount-weighted, rounded): paying on time."""

BAD_PAYER_MIN_DAYS = 30
"""From this many days late on average (amount-weighted, rounded): a bad payer."""

BAD_PAYER_MIN_BROKEN = 2
"""Or from this many promises broken: a bad payer (one broken promise: at least negligent)."""

DISPUTE_PRONE_MIN_DISPUTES = 2
"""From this many invoices disputed: dispute-prone, whatever the lateness (its scenario sends
the invoice copies and the evidence that lateness of this kind waits for)."""

KEPT_AS_ASSIGNED: dict[str, frozenset[str]] = {
    # A court procedure is not a habit: nothing the figures show moves an insolvent account.
    PayerProfile.insolvent.value: frozenset(p.value for p in PayerProfile),
    # The direct debit is why the customer pays on time.
    PayerProfile.automatic.value: frozenset({PayerProfile.good_payer.value}),
    # The approval circuit is why the customer pays a little late; its scenario is made for it.
    PayerProfile.administrative.value: frozenset({PayerProfile.negligent.value}),
}
"""Assigned profiles that record a cause the figures cannot see, and the behaviours that
cause explains: for those, no suggestion is made."""

DISPUTED_IN_DETAILS = (
    ("item.status_changed", '%"to":"disputed"%'),
    ("feedback.validated", '%"status_after":"disputed"%'),
)
"""History events that put an invoice in dispute (a collector, a call, a validated answer),
matched on their canonical JSON (`history.canonical_json`: sorted keys, no spaces)."""


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (the month's last day when shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def profile_label(profile: str) -> str:
    return profile.replace("_", " ").capitalize()


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@dataclass(frozen=True)
class PaymentBehaviour:
    """What a customer did over the window, as the rules read it."""

    customer_id: int
    since: date
    invoices_paid: int = 0
    """Invoices that received money in the window (allocations not reversed)."""
    days_late: int | None = None
    """Average days between due date and payment, weighted by the amounts applied, rounded
    half up; a payment before the due date counts 0. None: nothing paid in the window."""
    currency: str = ""
    """The currency of `days_late`: with several, the latest-paying one's."""
    several_currencies: bool = False
    broken_promises: int = 0
    disputes: int = 0
    """Invoices put in dispute in the window."""

    @property
    def enough_history(self) -> bool:
        return self.days_late is not None

    @property
    def reason(self) -> str:
        """One line, with the figures the rules used."""
        window = f"over {WINDOW_MONTHS} months"
        if self.days_late is None:
            parts = [f"no invoice paid {window}: not enough history"]
        else:
            weighted = "amount-weighted" + (
                f", {self.currency} invoices" if self.several_currencies else ""
            )
            parts = [
                f"{_plural(self.invoices_paid, 'invoice', 'invoices')} paid on average "
                f"{_plural(self.days_late, 'day', 'days')} late ({weighted}) {window}"
            ]
        if self.broken_promises:
            parts.append(_plural(self.broken_promises, "promise broken", "promises broken"))
        if self.disputes:
            parts.append(_plural(self.disputes, "invoice disputed", "invoices disputed"))
        return ", ".join(parts)

    def figures(self) -> dict[str, Any]:
        """For the history: what the suggestion was made from."""
        return {
            "since": self.since,
            "invoices_paid": self.invoices_paid,
            "days_late": self.days_late,
            "currency": self.currency,
            "broken_promises": self.broken_promises,
            "disputes": self.disputes,
        }


def profile_for(b: PaymentBehaviour) -> str | None:
    """The profile the behaviour calls for: the first rule that holds, in this order.
    None without a paid invoice in the window."""
    if b.days_late is None:
        return None
    if b.disputes >= DISPUTE_PRONE_MIN_DISPUTES:
        return PayerProfile.dispute_prone.value
    if b.days_late >= BAD_PAYER_MIN_DAYS or b.broken_promises >= BAD_PAYER_MIN_BROKEN:
        return PayerProfile.bad_payer.value
    if b.days_late > ON_TIME_MAX_DAYS or b.broken_promises >= 1:
        return PayerProfile.negligent.value
    return PayerProfile.good_payer.value


def suggestion_for(assigned: str, b: PaymentBehaviour) -> str | None:
    """The profile to suggest instead of `assigned`; None when it stands (same profile, not
    enough history, or a cause the figures cannot see: KEPT_AS_ASSIGNED)."""
    profile = profile_for(b)
    if profile is None or profile == assigned:
        return None
    if profile in KEPT_AS_ASSIGNED.get(assigned, frozenset()):
        return None
    return profile


@dataclass(frozen=True)
class ProfileSuggestion:
    """One account: its profile, its behaviour and what that suggests."""

    customer_id: int
    assigned: str
    behaviour: PaymentBehaviour
    suggested: str | None

    @property
    def reason(self) -> str:
        return self.behaviour.reason

    @property
    def suggested_label(self) -> str:
        return profile_label(self.suggested or "")


def _marks(values: list[Any]) -> str:
    return ", ".join("{}" for _ in values)


def _days_between(later: str, earlier: str) -> str:
    if is_postgres():
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


async def _lateness(ids: list[int], since: date, today: date) -> dict[int, list[dict[str, Any]]]:
    """Per customer and currency: invoices paid, amount applied and amount x days late."""
    late = _days_between("p.received_on", "i.due_date")
    rows = await Customer.raw(
        "SELECT p.customer AS customer_id, i.currency AS currency, "
        "COUNT(DISTINCT i.id) AS invoices, SUM(a.amount_minor) AS paid_minor, "
        f"SUM(a.amount_minor * CASE WHEN p.received_on > i.due_date THEN {late} ELSE 0 END) "
        "AS weighted "
        "FROM payment p JOIN allocation a ON a.payment = p.id AND a.reversed_at IS NULL "
        "JOIN item i ON i.id = a.item "
        f"WHERE p.customer IN ({_marks(ids)}) AND p.received_on >= {{}} "
        "AND p.received_on <= {} AND i.kind = {} "
        "GROUP BY p.customer, i.currency",
        *ids,
        since,
        today,
        ItemKind.invoice.value,
    )
    by_customer: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_customer[int(r["customer_id"])].append(r)
    return by_customer


async def _broken_promises(ids: list[int], since: date) -> dict[int, int]:
    rows = await PromiseToPay.select(PromiseToPay.customer).where(
        PromiseToPay.customer.is_in(ids)
        & (PromiseToPay.status == PromiseToPay.Status.broken.value)
        & (PromiseToPay.closed_on >= since)
    )
    counts: dict[int, int] = defaultdict(int)
    for r in rows:
        counts[int(r["customer"])] += 1
    return counts


async def _disputes(ids: list[int], since: date) -> dict[int, int]:
    """Invoices put in dispute since that day (00:00 UTC), counted once each."""
    start = datetime.combine(since, time(), tzinfo=UTC)
    (kind_a, like_a), (kind_b, like_b) = DISPUTED_IN_DETAILS
    kinds = ((HistoryEvent.kind == kind_a) & HistoryEvent.details.like(like_a)) | (
        (HistoryEvent.kind == kind_b) & HistoryEvent.details.like(like_b)
    )
    rows = await HistoryEvent.select(HistoryEvent.customer, HistoryEvent.item).where(
        HistoryEvent.customer.is_in(ids) & (HistoryEvent.occurred_at >= start) & kinds
    )
    items: dict[int, set[int]] = defaultdict(set)
    for r in rows:
        if r["item"] is not None:
            items[int(r["customer"])].add(int(r["item"]))
    return {c: len(s) for c, s in items.items()}


def _average(rows: list[dict[str, Any]]) -> tuple[int | None, str]:
    """The rounded amount-weighted days late, and its currency (the latest-paying one)."""
    best: tuple[int, int, str] | None = None  # (days, paid minor, currency)
    for r in rows:
        paid = int(r["paid_minor"] or 0)
        if paid <= 0:
            continue
        days = int(
            (Decimal(int(r["weighted"] or 0)) / Decimal(paid)).quantize(
                Decimal(1), rounding=ROUND_HALF_UP
            )
        )
        candidate = (days, paid, str(r["currency"]))
        if best is None or candidate > best:
            best = candidate
    return (best[0], best[2]) if best else (None, "")


async def payment_behaviours(customer_ids: list[int], today: date) -> dict[int, PaymentBehaviour]:
    """The behaviour of each of these customers over the window ending `today`."""
    ids = sorted({int(c) for c in customer_ids})
    if not ids:
        return {}
    since = months_before(today, WINDOW_MONTHS)
    lateness = await _lateness(ids, since, today)
    broken = await _broken_promises(ids, since)
    disputes = await _disputes(ids, since)
    result = {}
    for c in ids:
        rows = lateness.get(c, [])
        days_late, currency = _average(rows)
        result[c] = PaymentBehaviour(
            customer_id=c,
            since=since,
            invoices_paid=sum(int(r["invoices"]) for r in rows),
            days_late=days_late,
            currency=currency,
            several_currencies=len(rows) > 1,
            broken_promises=broken.get(c, 0),
            disputes=disputes.get(c, 0),
        )
    return result


async def profile_suggestions(customer_ids: list[int], today: date) -> dict[int, ProfileSuggestion]:
    """Each customer's profile, behaviour and suggestion (None when the profile stands)."""
    ids = sorted({int(c) for c in customer_ids})
    if not ids:
        return {}
    assigned = {
        int(r["id"]): r["payer_profile"]
        for r in await Customer.select(Customer.id, Customer.payer_profile).where(
            Customer.id.is_in(ids)
        )
    }
    behaviours = await payment_behaviours(list(assigned), today)
    return {
        c: ProfileSuggestion(c, profile, behaviours[c], suggestion_for(profile, behaviours[c]))
        for c, profile in assigned.items()
    }


async def accept_suggestion(
    customer_id: int, profile: str, actor: Actor, today: date
) -> ProfileSuggestion:
    """Give the account the profile suggested for it, with the figures in the history.

    `profile` is the suggestion the collector saw: when the figures now suggest another one
    (or none), nothing changes (Conflict)."""
    if profile not in {p.value for p in PayerProfile}:
        raise InvalidInput.one("profile", "choose one of the seven profiles")
    async with atomic():
        # Chain before rows (docs/HISTORY.md): the account's lock, then its reads and writes.
        await history.lock_accounts([customer_id])
        customer = await Customer.objects().get(Customer.id == customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id}")
        suggestion = (await profile_suggestions([customer_id], today))[customer_id]
        if suggestion.suggested != profile:
            now = (
                f"the figures now suggest {suggestion.suggested_label.lower()}"
                if suggestion.suggested
                else f"{profile_label(customer.payer_profile).lower()} now stands"
            )
            raise Conflict(
                f"The suggestion changed since the page was shown ({now}); nothing was changed."
            )
        await Customer.update({Customer.payer_profile: profile}).where(Customer.id == customer_id)
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="account.assigned",
            customer_id=customer_id,
            details={
                "payer_profile": {"from": customer.payer_profile, "to": profile},
                "via": "suggestion",
                "reason": suggestion.reason,
                # The timeline shows a comment under the event's title.
                "comment": f"Suggested by the payment behaviour: {suggestion.reason}.",
                "figures": suggestion.behaviour.figures(),
            },
        )
    return suggestion
