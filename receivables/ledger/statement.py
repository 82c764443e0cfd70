"""The statement of account: the single source for the portal, emails, PDFs, exports, back office.

For one customer on one date: open invoices split overdue / not due with days late,
aging buckets, open credit notes, unapplied payments and totals per currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from receivables.errors import NotFound
from receivables.ledger.tables import Company, Customer, Item, ItemKind, ItemStatus, Payment
from receivables.money import Money

BUCKETS = ("not_due", "1-30", "31-60", "61-90", "90+")


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

    @property
    def currency(self) -> str:
        return self.open.currency

    @property
    def overdue(self) -> bool:
        return self.kind == ItemKind.invoice.value and self.days_late > 0

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
    """Every figure of the statement in one currency. `open` is what the customer owes net."""

    currency: str
    overdue: Money
    not_due: Money
    credit_notes: Money
    unapplied_payments: Money
    buckets: dict[str, Money]

    @property
    def invoices_open(self) -> Money:
        return self.overdue + self.not_due

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
        return [i for i in self.invoices if i.overdue]

    @property
    def not_due(self) -> list[OpenItem]:
        return [i for i in self.invoices if not i.overdue]

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
        )
        t = totals.setdefault(cur, _totals_for(cur))
        if line.kind == ItemKind.credit_note.value:
            statement.credit_notes.append(line)
            t.credit_notes += line.open
            continue
        statement.invoices.append(line)
        if line.overdue:
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
