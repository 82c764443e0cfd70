"""Late-payment penalties owed under the company's policy, as the law computes them.

The one definition of the penalty figures: every page, email, letter and PDF shows what
`penalties_for` returns (callers get it through `reference_rates.statement_penalties`).

- Interest is simple, per day, actual/365 (France counts 365 days too): each part of an
  invoice's balance accrues from the day after the due date to the day it stopped being
  owed. A payment ends the accrual of the amount it applied on the payment's date
  (`Payment.received_on`: the day the money reached the seller, whenever it was applied); a
  credit note on the day it was applied to the invoice (the allocation's date: its carrier
  payment is dated by the credit note); what is still open accrues to the statement date.
  Each half-year runs at its own rate (EU, France); under the UK Act the rate of the
  half-year the debt became late applies for its whole life. Rounded half-up to the
  currency's minor unit once per invoice, at the end.
- A fixed compensation is due once per late invoice (the company's amount, in the company's
  currency; under the 'uk' policy the statutory bands by size of debt for GBP invoices).
- An invoice paid late in full keeps its claim (interest to the payment date and the
  compensation) until the claim is invoiced and paid, or waived by a collector.
- Disputed invoices are left out: the debt itself is contested. Penalty items (kind
  'penalty', penalties already invoiced) bear none.
- A waived claim is shown as waived and counts for nothing; a claim invoiced (an item of
  kind 'penalty') counts only for what accrued since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from receivables import history
from receivables.clock import date_of
from receivables.db import atomic
from receivables.errors import Conflict, InvalidInput
from receivables.history import Actor
from receivables.ledger.statement import Statement, build_statement
from receivables.ledger.tables import (
    Allocation,
    Company,
    Item,
    ItemKind,
    ItemStatus,
    Payment,
    PenaltyClaim,
)
from receivables.money import Money

DAYS_PER_YEAR = 365
"""Actual/365: the day count of the Directive's transpositions, France included."""
_DIVISOR_INT = 10000 * DAYS_PER_YEAR  # basis points x days -> a year's fraction

ReferenceRate = Callable[[date], int | None]
"""Basis points of the reference rate the law applies to a day's half-year, or None."""

Band = tuple[Decimal | None, Decimal]
"""(debt under this amount, or None for any, fixed compensation): a statutory scale."""


def half_year_start(day: date) -> date:
    return date(day.year, 1 if day.month <= 6 else 7, 1)


def _next_half_year(start: date) -> date:
    return date(start.year, 7, 1) if start.month == 1 else date(start.year + 1, 1, 1)


@dataclass
class PenaltyTerms:
    """A company's penalty law, resolved once for a call and reused for every item.

    The reference rate of each half-year is looked up once (memoised), so a statement of
    500 invoices late over the same few half-years costs a handful of lookups.
    """

    policy: Company.PenaltyPolicy
    margin_bp: int = 0
    fixed_rate_bp: int = 0
    compensation: Money | None = None
    """Per late invoice, in the company's currency; None when the company asks none."""
    bands: tuple[Band, ...] = ()
    bands_currency: str = ""
    """The statutory scale (UK) replaces `compensation` for invoices in this currency."""
    reference: ReferenceRate | None = None
    rate_per_debt: bool = False
    """The UK rule: the rate of the half-year the debt became late, for its whole life."""
    _halves: dict[date, int | None] = field(default_factory=dict, repr=False)
    _spans: dict[tuple[date, date], int | None] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls,
        company: Company,
        reference: ReferenceRate | None = None,
        *,
        bands: tuple[Band, ...] = (),
        bands_currency: str = "",
        rate_per_debt: bool = False,
    ) -> PenaltyTerms:
        fixed_minor = int(company.compensation_minor or 0)
        return cls(
            policy=Company.PenaltyPolicy(company.penalty_policy),
            margin_bp=int(company.penalty_margin_bp or 0),
            fixed_rate_bp=int(company.penalty_fixed_rate_bp or 0),
            compensation=Money.from_minor(fixed_minor, company.currency) if fixed_minor else None,
            bands=bands,
            bands_currency=bands_currency,
            reference=reference,
            rate_per_debt=rate_per_debt,
        )

    def half_year_rate(self, start: date) -> int | None:
        """The annual rate (bp) of the half-year starting on `start`; None when unknown."""
        if self.policy == Company.PenaltyPolicy.fixed:
            return self.fixed_rate_bp
        if start not in self._halves:
            ref = self.reference(start) if self.reference else None
            self._halves[start] = None if ref is None else ref + self.margin_bp
        return self._halves[start]

    def annual_rate_bp(self, on: date) -> int | None:
        """The rate applicable on `on` (what a page shows as 'the' rate)."""
        return self.half_year_rate(half_year_start(on))

    def compensation_for(self, debt: Money) -> Money | None:
        if self.bands and debt.currency == self.bands_currency:
            for under, amount in self.bands:
                if under is None or debt.amount < under:
                    return Money(amount, debt.currency)
        return self.compensation

    def rate_days(self, first: date, last: date) -> int | None:
        """Sum of annual rate (bp) x days over the days `first`..`last` late; None if a rate
        is unknown. `first` is the first day late, the start of the debt's own clock."""
        if last < first:
            return 0
        key = (first, last)
        if key not in self._spans:
            self._spans[key] = self._rate_days(first, last)
        return self._spans[key]

    def _rate_days(self, first: date, last: date) -> int | None:
        if self.rate_per_debt:
            bp = self.half_year_rate(half_year_start(first))
            return None if bp is None else bp * ((last - first).days + 1)
        total = 0
        start = first
        while start <= last:
            half = half_year_start(start)
            end = min(last, _next_half_year(half) - timedelta(days=1))
            bp = self.half_year_rate(half)
            if bp is None:
                return None
            total += bp * ((end - start).days + 1)
            start = end + timedelta(days=1)
        return total


# ------------------------------------------------------------------ what happened to a claim


@dataclass
class ClaimRecord:
    """The collectors' decisions on one invoice's claim, summed."""

    waived: bool = False
    reason: str = ""
    interest_minor: int = 0
    compensation_minor: int = 0


@dataclass(frozen=True)
class PaidLate:
    """A settled invoice that was paid after its due date (its claim may still be owed)."""

    id: int
    number: str
    due_date: date
    total: Money
    status: str


@dataclass
class ClaimBook:
    """What the ledger knows beyond the statement: dated reductions and decisions."""

    reductions: dict[int, list[tuple[date, int]]] = field(default_factory=dict)
    """Item id -> (date, minor units) of each active allocation after the due date."""
    paid_late: list[PaidLate] = field(default_factory=list)
    claims: dict[int, ClaimRecord] = field(default_factory=dict)


# ------------------------------------------------------------------ the figures


@dataclass(frozen=True)
class PenaltyLine:
    """One late invoice's claim on the statement date."""

    item_id: int
    number: str
    due_date: date
    days_late: int
    """Days from the due date to the last day anything of it was owed."""
    base: Money
    """What is still overdue of it (zero for an invoice paid late)."""
    interest: Money | None
    """Interest not yet invoiced; None when a reference rate is unknown."""
    compensation: Money | None
    waived: bool = False
    reason: str = ""

    @property
    def paid(self) -> bool:
        return self.base.is_zero()


@dataclass
class Penalties:
    policy: str
    annual_rate_bp: int | None
    """The rate applicable on the statement date; None when it could not be computed."""
    lines: list[PenaltyLine] = field(default_factory=list)
    waived: list[PenaltyLine] = field(default_factory=list)
    interest: dict[str, Money] = field(default_factory=dict)
    compensation: dict[str, Money] = field(default_factory=dict)

    @property
    def interest_computed(self) -> bool:
        return self.annual_rate_bp is not None and all(
            line.interest is not None for line in self.lines
        )

    @property
    def applies(self) -> bool:
        return any(not m.is_zero() for m in (*self.interest.values(), *self.compensation.values()))

    @property
    def totals(self) -> dict[str, Money]:
        """Interest plus compensation, per currency."""
        out: dict[str, Money] = {}
        for part in (self.interest, self.compensation):
            for cur, amount in part.items():
                out[cur] = out[cur] + amount if cur in out else amount
        return dict(sorted(out.items()))

    @property
    def currencies(self) -> list[str]:
        return sorted(self.totals)


def interest_on(base: Money, rate_bp: int, days: int) -> Money:
    """Simple interest on one amount at one rate (a check of the formula, used by tests)."""
    return _round(base.minor * rate_bp * days, base.currency)


def _round_minor(minor_bp_days: int) -> int:
    """minor x bp x days -> minor units of interest, rounded half-up (exact integers)."""
    quotient, remainder = divmod(minor_bp_days, _DIVISOR_INT)
    return quotient + (1 if 2 * remainder >= _DIVISOR_INT else 0)


def _round(minor_bp_days: int, currency: str) -> Money:
    return Money.from_minor(_round_minor(minor_bp_days), currency)


def interest_minor_bp_days(
    terms: PenaltyTerms,
    due: date,
    open_minor: int,
    reductions: Iterable[tuple[date, int]],
    on: date,
) -> tuple[int | None, date | None]:
    """Sum over the slices of the balance of minor x bp x days; and the last day late.

    Each reduction's amount accrued from the day after `due` to its date (included); what is
    open, and anything reduced after `on`, to `on`. (None, day) when a rate is unknown;
    (0, None) when nothing was ever late.
    """
    first = due + timedelta(days=1)
    slices: list[tuple[int, date]] = []
    still_open = open_minor
    for day, minor in reductions:
        if day > on:
            still_open += minor
        elif day >= first:
            slices.append((minor, day))
    if still_open > 0 and on >= first:
        slices.append((still_open, on))
    if not slices:
        return 0, None
    total = 0
    spans: dict[date, int | None] = {}
    for minor, last in slices:
        if last not in spans:
            spans[last] = terms.rate_days(first, last)
        rate_days = spans[last]
        if rate_days is None:
            return None, max(d for _, d in slices)
        total += minor * rate_days
    return total, max(d for _, d in slices)


def penalties_for(
    statement: Statement, terms: PenaltyTerms | None, book: ClaimBook | None = None
) -> Penalties | None:
    """The penalties of the statement's customer on its date; None when the policy is 'none'.

    `terms` comes from `reference_rates.terms_for` (None: the company's own terms without
    reference rates, so only a fixed rate computes interest); `book` from `load_claim_book`
    (None: no allocation history, every open invoice as if never paid in part).
    """
    company = statement.company
    policy = Company.PenaltyPolicy(company.penalty_policy)
    if policy == Company.PenaltyPolicy.none:
        return None
    terms = terms or PenaltyTerms.of(company)
    book = book or ClaimBook()
    on = statement.on
    result = Penalties(policy=policy.value, annual_rate_bp=terms.annual_rate_bp(on))

    debts: list[tuple[int, str, date, Money, Money, str]] = [
        (i.id, i.number, i.due_date, i.total, i.open, i.status)
        for i in statement.invoices
        if i.kind == ItemKind.invoice.value and i.days_late > 0
    ]
    debts += [
        (p.id, p.number, p.due_date, p.total, Money.zero(p.total.currency), p.status)
        for p in book.paid_late
    ]
    no_claim = ClaimRecord()
    interest_sums: dict[str, int] = {}
    compensation_sums: dict[str, int] = {}
    for item_id, number, due, total, open_, status in debts:
        if status == ItemStatus.disputed.value:
            continue
        cur = total.currency
        open_minor = open_.minor
        reductions = book.reductions.get(item_id, ())
        weighted, last_late = interest_minor_bp_days(terms, due, open_minor, reductions, on)
        if last_late is None:
            continue  # paid on time after all
        claim = book.claims.get(item_id, no_claim)
        interest: Money | None = None
        interest_minor = 0
        if weighted is not None:
            interest_minor = max(0, _round_minor(weighted) - claim.interest_minor)
            interest = Money.from_minor(interest_minor, cur)
        compensation = terms.compensation_for(total)
        compensation_minor = compensation.minor if compensation is not None else 0
        if compensation is not None and claim.compensation_minor:
            compensation_minor = max(0, compensation_minor - claim.compensation_minor)
            compensation = Money.from_minor(compensation_minor, compensation.currency)
        line = PenaltyLine(
            item_id=item_id,
            number=number,
            due_date=due,
            days_late=(last_late - due).days,
            base=open_,
            interest=interest,
            compensation=compensation,
            waived=claim.waived,
            reason=claim.reason,
        )
        if claim.waived:
            result.waived.append(line)
            continue
        owed = interest_minor or compensation_minor
        if not owed and (not open_minor or claim.interest_minor or claim.compensation_minor):
            continue  # settled by an invoiced penalty: nothing more accrues
        result.lines.append(line)
        if interest is not None:
            interest_sums[cur] = interest_sums.get(cur, 0) + interest_minor
        if compensation is not None:
            c = compensation.currency
            compensation_sums[c] = compensation_sums.get(c, 0) + compensation_minor
    result.interest = {c: Money.from_minor(m, c) for c, m in interest_sums.items()}
    result.compensation = {c: Money.from_minor(m, c) for c, m in compensation_sums.items()}
    result.lines.sort(key=lambda line: (line.due_date, line.number))
    return result


# ------------------------------------------------------------------ loading


async def load_claim_book(statement: Statement) -> ClaimBook:
    """Three queries, whatever the number of invoices: the dated allocations of the
    customer's invoices that were late, its settled invoices paid late with no decision
    closing their claim, and the collectors' decisions."""
    customer_id = statement.customer.id
    on = statement.on
    timezone = statement.company.timezone
    book = ClaimBook()
    rows = (
        await Allocation.select(
            Allocation.item,
            Allocation.amount_minor,
            Allocation.created_at,
            Allocation.payment.received_on,
            Allocation.payment.method,
            Allocation.item.number,
            Allocation.item.due_date,
            Allocation.item.currency,
            Allocation.item.total_minor,
            Allocation.item.open_minor,
            Allocation.item.status,
        )
        .where(
            (Allocation.item.customer == customer_id)
            & (Allocation.item.kind == ItemKind.invoice.value)
            & (Allocation.item.status != ItemStatus.cancelled.value)
            & (Allocation.item.due_date < on)
            & Allocation.reversed_at.is_null()
        )
        .order_by(Allocation.id)
    )
    paid: dict[int, PaidLate] = {}
    for row in rows:
        item_id = row["item"]
        day = row["payment.received_on"]
        if row["payment.method"] == Payment.Method.credit_note.value:
            day = date_of(row["created_at"], timezone) or day
        if day <= row["item.due_date"]:
            continue
        book.reductions.setdefault(item_id, []).append((day, row["amount_minor"]))
        if row["item.open_minor"] == 0 and item_id not in paid:
            cur = row["item.currency"]
            paid[item_id] = PaidLate(
                item_id,
                row["item.number"],
                row["item.due_date"],
                Money.from_minor(row["item.total_minor"], cur),
                row["item.status"],
            )
    decisions = (
        await PenaltyClaim.select(
            PenaltyClaim.item,
            PenaltyClaim.action,
            PenaltyClaim.interest_minor,
            PenaltyClaim.compensation_minor,
            PenaltyClaim.reason,
        )
        .where(PenaltyClaim.customer == customer_id)
        .order_by(PenaltyClaim.id)
    )
    for row in decisions:
        claim = book.claims.setdefault(row["item"], ClaimRecord())
        if row["action"] == PenaltyClaim.Action.waived.value:
            claim.waived, claim.reason = True, row["reason"]
        else:
            claim.interest_minor += row["interest_minor"]
            claim.compensation_minor += row["compensation_minor"]
    book.paid_late = sorted(paid.values(), key=lambda p: (p.due_date, p.id))
    return book


# ------------------------------------------------------------------ collectors' decisions


def _details(line: PenaltyLine) -> dict[str, str]:
    return {
        "invoice": line.number,
        "days_late": str(line.days_late),
        "interest": str(line.interest.amount) if line.interest else "",
        "compensation": str(line.compensation.amount) if line.compensation else "",
        "currency": line.interest.currency if line.interest else "",
    }


async def waive_claim(
    customer_id: int, item_id: int, reason: str, on: date, terms: PenaltyTerms, actor: Actor
) -> PenaltyLine:
    """Waive one invoice's claim (interest and compensation, now and to come), with a reason
    kept in the history. Returns the claim as it stood."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "say why the claim is waived")
    async with atomic():
        await history.lock_accounts([customer_id])
        statement = await build_statement(customer_id, on)
        found = penalties_for(statement, terms, await load_claim_book(statement))
        line = next(
            (x for x in (found.lines if found else []) if x.item_id == item_id),
            None,
        )
        if line is None:
            raise Conflict("this invoice carries no penalty claim to waive")
        company = statement.company
        await PenaltyClaim(
            company=company.id,
            customer=customer_id,
            item=item_id,
            action=PenaltyClaim.Action.waived.value,
            decided_on=on,
            reason=reason,
            decided_by=actor.label,
        ).save()
        await history.record(
            company_id=company.id,
            actor=actor,
            kind="penalty.waived",
            customer_id=customer_id,
            item_id=item_id,
            details={**_details(line), "reason": reason},
        )
    return line


async def _penalty_number(company_id: int, customer_ref: str) -> str:
    stem = f"PEN-{customer_ref}"[:56]
    taken = {
        r["number"]
        for r in await Item.select(Item.number).where(
            (Item.company == company_id) & Item.number.like(f"{stem}-%")
        )
    }
    n = len(taken) + 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


async def invoice_penalties(
    customer_id: int, on: date, terms: PenaltyTerms, actor: Actor
) -> list[Item]:
    """Invoice what the account's claims carry on `on`: one item of kind 'penalty' per
    currency, and per late invoice a record of what it took, so the figures shown from then
    on count only what accrues later. Only for a company that invoices its penalties."""
    async with atomic():
        await history.lock_accounts([customer_id])
        statement = await build_statement(customer_id, on)
        company = statement.company
        if not company.penalties_invoiced:
            raise Conflict(f"{company.name} shows penalties without invoicing them")
        found = penalties_for(statement, terms, await load_claim_book(statement))
        lines = found.lines if found else []
        unknown = [x.number for x in lines if x.interest is None]
        if unknown:
            raise Conflict(
                "the reference rate is unknown for part of the lateness of "
                + ", ".join(unknown)
                + ": add it on the penalties page first"
            )
        per_currency: dict[str, int] = {}
        for line in lines:
            for part in (line.interest, line.compensation):
                if part is not None and part.minor > 0:
                    per_currency[part.currency] = per_currency.get(part.currency, 0) + part.minor
        if not per_currency:
            raise Conflict("nothing to invoice: no penalty is owed on this account")
        items: dict[str, Item] = {}
        for currency, minor in sorted(per_currency.items()):
            item = Item(
                company=company.id,
                customer=customer_id,
                kind=ItemKind.penalty.value,
                number=await _penalty_number(company.id, statement.customer.ref),
                issue_date=on,
                due_date=on,
                currency=currency,
                total_minor=minor,
                open_minor=minor,
                comment="Late-payment penalties on "
                + ", ".join(x.number for x in lines if _in(x, currency)),
            )
            await item.save()
            items[currency] = item
        for line in lines:
            interest = line.interest.minor if line.interest else 0
            comp = line.compensation
            if not interest and (comp is None or comp.is_zero()):
                continue
            cur = line.interest.currency if line.interest else comp.currency  # type: ignore[union-attr]
            await PenaltyClaim(
                company=company.id,
                customer=customer_id,
                item=line.item_id,
                action=PenaltyClaim.Action.invoiced.value,
                decided_on=on,
                interest_minor=interest,
                compensation_minor=comp.minor if comp else 0,
                compensation_currency=comp.currency if comp else "",
                penalty_item=items[cur].id,
                decided_by=actor.label,
            ).save()
        for currency, item in items.items():
            await history.record(
                company_id=company.id,
                actor=actor,
                kind="penalty.invoiced",
                customer_id=customer_id,
                item_id=item.id,
                details={
                    "number": item.number,
                    "amount": str(Money.from_minor(item.total_minor, currency).amount),
                    "currency": currency,
                    "claims": [_details(x) for x in lines if _in(x, currency)],
                },
            )
    return list(items.values())


def _in(line: PenaltyLine, currency: str) -> bool:
    return any(
        part is not None and part.minor > 0 and part.currency == currency
        for part in (line.interest, line.compensation)
    )
