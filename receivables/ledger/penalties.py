"""Late-payment penalties owed under the company's policy, on a statement.

Interest is simple and per day, on each overdue invoice's open amount:
open x annual rate x days late / 365, rounded half-up to the currency's minor unit.
A fixed compensation is due per late invoice (the company's amount; under the 'uk'
policy the statutory GBP 40 / 70 / 100 by size of debt for GBP invoices). Disputed
invoices are left out: the debt itself is contested.

Under the 'eu', 'france' and 'uk' policies the annual rate is a reference rate (the ECB's,
the Bank of England's) plus the company's margin. Nothing here knows those dated rates:
a caller that does passes `reference_rate`; without it interest is not computed, only the
compensation, and `Penalties.interest_computed` says so, so pages can label it honestly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from receivables.ledger.statement import Statement
from receivables.ledger.tables import Company, ItemStatus
from receivables.money import Money, round_to_currency, to_minor

DAYS_PER_YEAR = Decimal(365)
UK_SCALE = ((Decimal("1000"), Decimal("40")), (Decimal("10000"), Decimal("70")))
UK_TOP = Decimal("100")

ReferenceRate = Callable[[date], int | None]
"""Basis points of the reference rate applicable on a date, or None when unknown."""


@dataclass(frozen=True)
class PenaltyLine:
    """What one late invoice costs on the statement date."""

    item_id: int
    number: str
    days_late: int
    base: Money
    interest: Money | None
    compensation: Money | None


@dataclass
class Penalties:
    policy: str
    annual_rate_bp: int | None
    """The rate applied; None when interest could not be computed (reference rate unknown)."""
    lines: list[PenaltyLine] = field(default_factory=list)
    interest: dict[str, Money] = field(default_factory=dict)
    compensation: dict[str, Money] = field(default_factory=dict)

    @property
    def interest_computed(self) -> bool:
        return self.annual_rate_bp is not None

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


def _uk_compensation(debt: Money) -> Money:
    for limit, amount in UK_SCALE:
        if debt.amount < limit:
            return Money(amount.quantize(Decimal("0.01")), "GBP")
    return Money(UK_TOP.quantize(Decimal("0.01")), "GBP")


def annual_rate_bp(company: Company, on: date, reference_rate: ReferenceRate | None) -> int | None:
    policy = Company.PenaltyPolicy(company.penalty_policy)
    if policy == Company.PenaltyPolicy.none:
        return None
    if policy == Company.PenaltyPolicy.fixed:
        return int(company.penalty_fixed_rate_bp)
    reference = reference_rate(on) if reference_rate else None
    return None if reference is None else reference + int(company.penalty_margin_bp)


def interest_on(base: Money, rate_bp: int, days: int) -> Money:
    raw = base.amount * Decimal(rate_bp) / Decimal(10000) * Decimal(days) / DAYS_PER_YEAR
    return Money(round_to_currency(raw, base.currency), base.currency)


def _half_year_end(day: date) -> date:
    return date(day.year, 6, 30) if day.month <= 6 else date(day.year, 12, 31)


def accrued_interest(
    company: Company, base: Money, due: date, on: date, reference_rate: ReferenceRate | None
) -> Money | None:
    """Simple interest from the day after `due` to `on`, rounded once; None if a rate is unknown.

    The reference rate changes on 1 January and 1 July: under the EU and French rules each
    half-year of lateness runs at its own rate (`reference_rate` answers for any day of a
    half-year); under the UK rule the rate of the half-year the debt became late applies
    for its whole life.
    """
    policy = Company.PenaltyPolicy(company.penalty_policy)
    days = (on - due).days
    if policy == Company.PenaltyPolicy.fixed:
        return interest_on(base, int(company.penalty_fixed_rate_bp), days)
    if reference_rate is None or days <= 0:
        return None if reference_rate is None else Money.zero(base.currency)
    margin = int(company.penalty_margin_bp)
    first = date.fromordinal(due.toordinal() + 1)
    if policy == Company.PenaltyPolicy.uk:
        reference = reference_rate(first)
        return None if reference is None else interest_on(base, reference + margin, days)
    raw = Decimal(0)
    start = first
    while start <= on:
        end = min(on, _half_year_end(start))
        reference = reference_rate(start)
        if reference is None:
            return None
        span = (end - start).days + 1
        raw += base.amount * Decimal(reference + margin) / Decimal(10000) * span / DAYS_PER_YEAR
        start = date.fromordinal(end.toordinal() + 1)
    return Money(round_to_currency(raw, base.currency), base.currency)


def penalties_for(
    statement: Statement, reference_rate: ReferenceRate | None = None
) -> Penalties | None:
    """The penalties on the statement's overdue invoices; None when the policy is 'none'."""
    company = statement.company
    policy = Company.PenaltyPolicy(company.penalty_policy)
    if policy == Company.PenaltyPolicy.none:
        return None
    rate = annual_rate_bp(company, statement.on, reference_rate)
    fixed_minor = int(company.compensation_minor or 0)
    result = Penalties(policy=policy.value, annual_rate_bp=rate)

    def add(bucket: dict[str, Money], amount: Money) -> None:
        cur = amount.currency
        bucket[cur] = bucket[cur] + amount if cur in bucket else amount

    for item in statement.overdue:
        if item.status == ItemStatus.disputed.value:
            continue
        interest = (
            accrued_interest(company, item.open, item.due_date, statement.on, reference_rate)
            if rate is not None
            else None
        )
        if policy == Company.PenaltyPolicy.uk and item.currency == "GBP":
            compensation: Money | None = _uk_compensation(item.total)
        elif fixed_minor > 0:
            compensation = Money.from_minor(fixed_minor, company.currency)
        else:
            compensation = None
        result.lines.append(
            PenaltyLine(item.id, item.number, item.days_late, item.open, interest, compensation)
        )
        if interest is not None:
            add(result.interest, interest)
        if compensation is not None:
            add(result.compensation, compensation)
    # Minor-unit check: every figure is representable in its currency.
    for amount in result.totals.values():
        to_minor(amount.amount, amount.currency)
    return result
