"""The statement of account: the single source for the portal, emails, PDFs, exports, back office.

For one customer on one date: open invoices split overdue / not due with days late,
aging buckets, open credit notes, unapplied payments and totals per currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from receivables.errors import NotFound
from receivables.ledger.tables import Company, Customer, Item, ItemKind, ItemStatus, Payment
from receivables.money import Money

BUCKETS = ("not_due", "1-30", "31-60", "61-90", "90+")
PROMISE_GRACE_DAYS = 3
"""A promise is kept when its invoice is paid by the promised date plus this grace."""
HELD_STATUSES = frozenset(
    {
        ItemStatus.disputed.value,
        ItemStatus.paid_pending.value,
        ItemStatus.payment_in_progress.value,
    }
)


def hold_of(status: str, promise_date: date | None, pending_answer: str, on: date) -> str:
    """Why an open invoice is on hold on `on` ('' when it asks for payment).

    The one definition of a hold, used by the statement, the reminders, the run and the
    lists: a customer's answer waiting for a collector, a dispute, a payment under way, a
    promise still running (its date plus the grace not passed).
    """
    if pending_answer:
        return f"answer_{pending_answer}"
    if status in HELD_STATUSES:
        return status
    if status == ItemStatus.promised.value and (
        promise_date is None or on <= promise_date + timedelta(days=PROMISE_GRACE_DAYS)
    ):
        return ItemStatus.promised.value
    return ""


def not_held_sql(alias: str = "i") -> str:
    """`hold_of` as an SQL condition on an item row (one {} argument: `promise_floor(on)`),
    for the lists that aggregate in the database; a test keeps the two in agreement."""
    a = alias
    held = "', '".join(sorted(HELD_STATUSES))
    return (
        f"({a}.pending_answer = '' AND {a}.status NOT IN ('{held}') "
        f"AND NOT ({a}.status = 'promised' AND ({a}.promise_date IS NULL "
        f"OR {a}.promise_date >= {{}})))"
    )


def promise_floor(on: date) -> date:
    """The argument of `not_held_sql`: promises dated from this day on still hold on `on`."""
    return on - timedelta(days=PROMISE_GRACE_DAYS)


def promise_broken(status: str, promise_date: date | None, on: date) -> bool:
    """A promise whose date plus the grace has passed with the invoice still open."""
    return (
        status == ItemStatus.promised.value
        and promise_date is not None
        and on > promise_date + timedelta(days=PROMISE_GRACE_DAYS)
    )


def bucket_for(days_late: int) -> str:
    if days_late <= 0:
        return "not_due"
    if days_late <= 30:
        return "1-30"
    if days_late <= 60:
        return "31-60"
    if days_late <= 90:
        return "61-90"
    return "90+"


@dataclass(frozen=True)
class OpenItem:
    """An invoice or credit note with something left open on the statement date."""

    id: int
    number: str
    kind: str
    issue_date: date
    due_date: date
    total: Money
    open: Money
    days_late: int
    status: str
    promise_date: date | None
    dispute_reason: str
    comment: str
    po_number: str
    has_pdf: bool
    pending_answer: str = ""
    hold: str = ""
    """Why the invoice is on hold ('' when it asks for payment): see `hold_of`."""

    @property
    def currency(self) -> str:
        return self.open.currency

    @property
    def overdue(self) -> bool:
        """Past its due date (held or not: see `to_pay`); invoiced penalties too."""
        return self.kind != ItemKind.credit_note.value and self.days_late > 0

    @property
    def held(self) -> bool:
        return bool(self.hold)

    @property
    def to_pay(self) -> bool:
        """Overdue and not on hold: what a reminder asks to pay now."""
        return self.overdue and not self.held

    @property
    def bucket(self) -> str:
        return bucket_for(self.days_late)


@dataclass(frozen=True)
class UnappliedPayment:
    id: int
    ref: str
    received_on: date
    method: str
    amount: Money
    unapplied: Money


@dataclass
class CurrencyTotals:
    """Every figure of the statement in one currency. `open` is what the customer owes net.

    `overdue` is the one overdue figure of the product: past due and not on hold. Held
    invoices (whatever their due date) are in `on_hold`, coming-due ones in `not_due`.
    """

    currency: str
    overdue: Money
    not_due: Money
    on_hold: Money
    credit_notes: Money
    unapplied_payments: Money
    buckets: dict[str, Money]

    @property
    def invoices_open(self) -> Money:
        return self.overdue + self.not_due + self.on_hold

    @property
    def credits(self) -> Money:
        return self.credit_notes + self.unapplied_payments

    @property
    def open(self) -> Money:
        return self.invoices_open - self.credits


@dataclass
class Statement:
    company: Company
    customer: Customer
    on: date
    invoices: list[OpenItem] = field(default_factory=list)
    credit_notes: list[OpenItem] = field(default_factory=list)
    unapplied_payments: list[UnappliedPayment] = field(default_factory=list)
    totals: dict[str, CurrencyTotals] = field(default_factory=dict)

    @property
    def overdue(self) -> list[OpenItem]:
        """Past due and not on hold: what is asked for now."""
        return [i for i in self.invoices if i.to_pay]

    @property
    def not_due(self) -> list[OpenItem]:
        return [i for i in self.invoices if not i.overdue and not i.held]

    @property
    def on_hold(self) -> list[OpenItem]:
        return [i for i in self.invoices if i.held]

    @property
    def currencies(self) -> list[str]:
        return sorted(self.totals)

    @property
    def oldest_due_date(self) -> date | None:
        return min((i.due_date for i in self.invoices), default=None)

    @property
    def is_empty(self) -> bool:
        return not (self.invoices or self.credit_notes or self.unapplied_payments)


def _totals_for(currency: str) -> CurrencyTotals:
    zero = Money.zero(currency)
    return CurrencyTotals(
        currency=currency,
        overdue=zero,
        not_due=zero,
        on_hold=zero,
        credit_notes=zero,
        unapplied_payments=zero,
        buckets={b: zero for b in BUCKETS},
    )


async def build_statement(customer_id: int, on: date) -> Statement:
    """The customer's statement on `on`: two queries for the lines, whatever their number."""
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    company = await Company.objects().get(Company.id == customer.company)
    assert company is not None
    statement = Statement(company=company, customer=customer, on=on)

    rows = (
        await Item.select(
            Item.id,
            Item.number,
            Item.kind,
            Item.issue_date,
            Item.due_date,
            Item.currency,
            Item.total_minor,
            Item.open_minor,
            Item.status,
            Item.promise_date,
            Item.dispute_reason,
            Item.comment,
            Item.po_number,
            Item.pdf_path,
            Item.pending_answer,
        )
        .where(
            (Item.customer == customer_id)
            & (Item.open_minor > 0)
            & (Item.status != ItemStatus.cancelled.value)
        )
        .order_by(Item.due_date)
        .order_by(Item.id)
    )
    totals: dict[str, CurrencyTotals] = {}
    for row in rows:
        cur = row["currency"]
        line = OpenItem(
            id=row["id"],
            number=row["number"],
            kind=row["kind"],
            issue_date=row["issue_date"],
            due_date=row["due_date"],
            total=Money.from_minor(row["total_minor"], cur),
            open=Money.from_minor(row["open_minor"], cur),
            days_late=max(0, (on - row["due_date"]).days),
            status=row["status"],
            promise_date=row["promise_date"],
            dispute_reason=row["dispute_reason"],
            comment=row["comment"],
            po_number=row["po_number"],
            has_pdf=bool(row["pdf_path"]),
            pending_answer=row["pending_answer"],
            hold=hold_of(row["status"], row["promise_date"], row["pending_answer"], on)
            if row["kind"] == ItemKind.invoice.value
            else "",
        )
        t = totals.setdefault(cur, _totals_for(cur))
        if line.kind == ItemKind.credit_note.value:
            statement.credit_notes.append(line)
            t.credit_notes += line.open
            continue
        statement.invoices.append(line)
        if line.held:
            t.on_hold += line.open
        elif line.overdue:
            t.overdue += line.open
        else:
            t.not_due += line.open
        t.buckets[line.bucket] += line.open

    payments = (
        await Payment.select(
            Payment.id,
            Payment.ref,
            Payment.received_on,
            Payment.method,
            Payment.currency,
            Payment.amount_minor,
            Payment.unapplied_minor,
        )
        .where((Payment.customer == customer_id) & (Payment.unapplied_minor > 0))
        .order_by(Payment.received_on)
    )
    for row in payments:
        cur = row["currency"]
        p = UnappliedPayment(
            id=row["id"],
            ref=row["ref"],
            received_on=row["received_on"],
            method=row["method"],
            amount=Money.from_minor(row["amount_minor"], cur),
            unapplied=Money.from_minor(row["unapplied_minor"], cur),
        )
        statement.unapplied_payments.append(p)
        t = totals.setdefault(cur, _totals_for(cur))
        t.unapplied_payments += p.unapplied

    # Overdue first (oldest first), then coming due by date.
    statement.invoices.sort(key=lambda i: (not i.overdue, i.due_date, i.id))
    statement.totals = dict(sorted(totals.items()))
    return statement
