"""How the account reads for a customer: status labels, filters, sorting, template context.

Shared by the page, its htmx fragments, the PDFs and the spreadsheet, so an item carries
the same words everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.numbers import format_percent

from receivables.i18n import N_, Translator
from receivables.ledger.statement import OpenItem
from receivables.ledger.tables import ItemKind, ItemStatus
from receivables.portal.account import AccountView
from receivables.portal.feedback import PendingAnswer
from receivables.portal.sessions import Visit
from receivables.portal.tables import (
    ANSWER_KINDS,
    DISPUTE_REASONS,
    PAID_METHODS,
    FeedbackKind,
)
from web.filters import day

SHOWS = ("all", "overdue", "due")
PAGE_ROWS = 100
"""Rows rendered at first; the rest come on demand (a phone need not lay out 500 rows)."""
SORTS = {
    "due": lambda i: (i.due_date, i.id),
    "number": lambda i: (i.number, i.id),
    "issue": lambda i: (i.issue_date, i.id),
    "amount": lambda i: (i.total.amount, i.id),
    "open": lambda i: (i.open.amount, i.id),
}
REASONS = DISPUTE_REASONS  # the domain's labels: one list for the page, the mails, the reminders
METHODS = PAID_METHODS
KINDS = ANSWER_KINDS
TYPES = {
    "invoice": N_("Invoice"),
    "credit_note": N_("Credit note"),
    "penalty": N_("Late-payment penalties"),
    "payment": N_("Payment"),
}


@dataclass(frozen=True)
class Row:
    item: OpenItem
    status: str
    badge: str
    note: str
    answerable: bool
    awaiting: bool


@dataclass(frozen=True)
class Listing:
    """What the table shows: a filter, a sort, and the first PAGE_ROWS rows or all of them."""

    show: str
    sort: str
    order: str
    every: bool = False

    @classmethod
    def parse(
        cls, show: str | None, sort: str | None, order: str | None, rows: str | None = None
    ) -> Listing:
        return cls(
            show if show in SHOWS else "all",
            sort if sort in SORTS else "",
            "desc" if order == "desc" else "asc",
            rows == "all",
        )

    def query(self, **changes: str) -> str:
        values = {"show": self.show, "sort": self.sort, "order": self.order, **changes}
        parts = [f"{k}={v}" for k, v in values.items() if v and not (k == "order" and v == "asc")]
        return "?" + "&".join(parts) if parts else ""

    def sort_link(self, key: str) -> str:
        order = "desc" if self.sort == key and self.order == "asc" else "asc"
        return self.query(sort=key, order=order, rows="all" if self.every else "")

    def all_rows_link(self) -> str:
        return self.query(rows="all")

    def aria_sort(self, key: str) -> str:
        if self.sort != key:
            return "none"
        return "descending" if self.order == "desc" else "ascending"


def answer_note(pending: PendingAnswer, _: Translator, locale: str | Locale) -> str:
    if pending.kind == FeedbackKind.promise.value and pending.promise_date:
        return _("Your answer: will pay on %(date)s", date=day(pending.promise_date, locale))
    if pending.kind == FeedbackKind.paid.value and pending.paid_on:
        return _("Your answer: paid on %(date)s", date=day(pending.paid_on, locale))
    if pending.kind == FeedbackKind.dispute.value:
        reason = _(REASONS.get(pending.dispute_reason, "Other"))
        return _("Your answer: disputed (%(reason)s)", reason=reason)
    return _("Your answer: a question")


def item_status(
    item: OpenItem,
    pending: PendingAnswer | None,
    _: Translator,
    locale: str | Locale,
    on: date | None = None,
) -> tuple[str, str, str]:
    """(label, badge kind, note) of an item as the customer reads it."""
    if item.kind == ItemKind.credit_note.value:
        return _("Credit note"), "muted", _("Deducted from what you owe")
    if pending is not None:
        return _("Your answer is awaiting confirmation"), "pending", answer_note(pending, _, locale)
    status = item.status
    if status == ItemStatus.payment_in_progress.value:
        return _("Payment in progress"), "progress", ""
    if status == ItemStatus.paid_pending.value:
        return _("Payment announced"), "paid", _("We will confirm on receipt")
    if status == ItemStatus.promised.value and item.promise_date:
        return _("Promised"), "promise", _("For %(date)s", date=day(item.promise_date, locale))
    if status == ItemStatus.disputed.value:
        reason = REASONS.get(item.dispute_reason, "")
        return _("Disputed"), "dispute", _(reason) if reason else ""
    if item.overdue:
        return _("Overdue"), "overdue", ""
    if on is not None and item.due_date == on:
        return _("Due today"), "open", ""
    if on is not None:
        days = (item.due_date - on).days
        return _("Coming due"), "open", _("In %(n)s days", n=days) if days > 1 else _("Tomorrow")
    return _("Coming due"), "open", ""


def status_text(
    item: OpenItem, pending: PendingAnswer | None, _: Translator, locale: str | Locale, on: date
) -> str:
    label, _badge, note = item_status(item, pending, _, locale, on)
    return f"{label} ({note})" if note else label


def rows_for(
    view: AccountView, listing: Listing, _: Translator, locale: str | Locale
) -> tuple[list[Row], int]:
    """The rows to render (labelled) and how many the filter matches in all."""
    items = [
        item
        for item in view.statement.invoices
        if listing.show == "all" or (listing.show == "overdue") == item.overdue
    ]
    if listing.sort:
        items.sort(key=SORTS[listing.sort], reverse=listing.order == "desc")
    shown = items if listing.every else items[:PAGE_ROWS]
    rows = []
    for item in shown:  # labels only for what is rendered: a 500-item account stays quick
        pending = view.pending.get(item.id)
        label, badge, note = item_status(item, pending, _, locale, view.statement.on)
        rows.append(
            Row(
                item=item,
                status=label,
                badge=badge,
                note=note,
                answerable=item.status not in (ItemStatus.payment_in_progress.value,),
                awaiting=pending is not None,
            )
        )
    return rows, len(items)


def rate_text(basis_points: int, locale: str | Locale) -> str:
    return format_percent(Decimal(basis_points) / Decimal(10000), "#,##0.##%", locale=locale)


def group_iban(iban: str) -> str:
    compact = "".join(iban.split())
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def statement_context(
    view: AccountView, visit: Visit | None, _: Translator, locale: str | Locale, listing: Listing
) -> dict[str, Any]:
    st = view.statement
    overdue = [i for i in st.invoices if i.overdue]
    rows, total = rows_for(view, listing, _, locale)
    return {
        "view": view,
        "statement": st,
        "company": st.company,
        "customer": st.customer,
        "penalties": view.penalties,
        "collector": view.collector,
        "rows": rows,
        "rows_total": total,
        "listing": listing,
        "counts": {
            "all": len(st.invoices),
            "overdue": len(overdue),
            "due": len(st.invoices) - len(overdue),
            "to_pay": len(st.overdue),
            "on_hold": len(st.on_hold),
        },
        "credit_rows": [(c, *item_status(c, None, _, locale)) for c in st.credit_notes],
        "iban": group_iban(st.company.iban),
        "penalty_rate": rate_text(view.penalties.annual_rate_bp, locale)
        if view.penalties and view.penalties.annual_rate_bp is not None
        else "",
        "reasons": REASONS,
        "methods": METHODS,
        "kinds": KINDS,
        "several_currencies": len(st.totals) > 1,
        "visit": visit,
    }
