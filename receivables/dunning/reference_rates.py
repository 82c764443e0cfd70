"""Central bank reference rates as dated values, which rate the law applies on a day, and the
penalty presets (EU, France, UK) that set a company's policy.

The law does not use the rate of the day: under Directive 2011/7/EU (and the French Code de
commerce, L441-10) the rate of each half-year is the ECB main refinancing rate in force on
1 January or 1 July; under the UK Late Payment of Commercial Debts (Interest) Act 1998 it is
Bank Rate on 31 December or 30 June, fixed for a debt by the half-year in which it became
late. Admins keep the values up to date in the back office; the seeded ones are real.

`terms_for` turns a company's policy into the `PenaltyTerms` the ledger computes with (rates
resolved once per call, the statutory scale of fixed sums), and `statement_penalties` is the
one function every page, email, letter and PDF takes its penalty figures from.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from receivables import history
from receivables.db import atomic
from receivables.dunning.tables import RateSource, ReferenceRate
from receivables.errors import FieldProblem, InvalidInput, NotFound
from receivables.history import Actor
from receivables.i18n import N_
from receivables.ledger.penalties import (
    Band,
    Penalties,
    PenaltyTerms,
    half_year_start,
    load_claim_book,
    penalties_for,
)
from receivables.ledger.statement import Statement
from receivables.ledger.tables import Company
from receivables.money import to_minor

SEED: dict[RateSource, tuple[tuple[str, int], ...]] = {
    # ECB main refinancing operations, effective dates (ecb.europa.eu, key ECB interest rates).
    RateSource.ecb: (
        ("2022-12-21", 250),
        ("2023-02-08", 300),
        ("2023-03-22", 350),
        ("2023-05-10", 375),
        ("2023-06-21", 400),
        ("2023-08-02", 425),
        ("2023-09-20", 450),
        ("2024-06-12", 425),
        ("2024-09-18", 365),
        ("2024-10-23", 340),
        ("2024-12-18", 315),
        ("2025-02-05", 290),
        ("2025-03-12", 265),
        ("2025-04-23", 240),
        ("2025-06-11", 215),
    ),
    # Bank of England Bank Rate, effective dates (bankofengland.co.uk, Bank Rate history).
    RateSource.boe: (
        ("2022-12-15", 350),
        ("2023-02-02", 400),
        ("2023-03-23", 425),
        ("2023-05-11", 450),
        ("2023-06-22", 500),
        ("2023-08-03", 525),
        ("2024-08-01", 500),
        ("2024-11-07", 475),
        ("2025-02-06", 450),
        ("2025-05-08", 425),
        ("2025-08-07", 400),
        ("2025-12-18", 375),
    ),
}

UK_COMPENSATION_BANDS: tuple[Band, ...] = (
    # Late Payment of Commercial Debts (Interest) Act 1998, s.5A(2) (inserted by SI 2002/1674):
    # GBP 40 for a debt under GBP 1,000; GBP 70 from 1,000 to under 10,000; GBP 100 from 10,000.
    (Decimal("1000"), Decimal("40.00")),
    (Decimal("10000"), Decimal("70.00")),
    (None, Decimal("100.00")),
)
EU_COMPENSATION = Decimal("40.00")
"""Directive 2011/7/EU art. 6(1); France: Code de commerce D441-5 (EUR 40 per invoice)."""
EU_MARGIN_BP = 800
"""Directive 2011/7/EU art. 2(6): the reference rate plus at least eight percentage points."""
FRANCE_MARGIN_BP = 1000
"""Code de commerce L441-10 II: the ECB rate of its latest refinancing operation plus ten
points (the default, when the terms of sale set no other rate at least 3 x the legal rate)."""
UK_MARGIN_BP = 800
"""Late Payment of Commercial Debts (Rate of Interest) (No. 3) Order 2002: reference rate + 8 %."""
SOURCE_NAMES = {
    RateSource.ecb: N_("ECB main refinancing rate"),
    RateSource.boe: N_("Bank of England Bank Rate"),
}


@dataclass(frozen=True)
class RateTable:
    """One source's dated values; callable as penalties' `ReferenceRate` (day -> bp or None)."""

    source: RateSource
    values: tuple[tuple[date, int], ...]
    _dates: tuple[date, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Once per table, not per lookup (it cost 15% of the portal page's CPU).
        object.__setattr__(self, "_dates", tuple(d for d, _ in self.values))

    def in_force(self, day: date) -> int | None:
        """The value in force on `day` (the latest one effective on or before it)."""
        i = bisect.bisect_right(self._dates, day)
        return self.values[i - 1][1] if i else None

    def reference_date(self, day: date) -> date:
        """The day whose rate the law applies to `day`'s half-year."""
        start = half_year_start(day)
        if self.source == RateSource.boe:
            return start - timedelta(days=1)  # 31 December or 30 June
        return start  # 1 January or 1 July

    def applicable(self, day: date) -> int | None:
        return self.in_force(self.reference_date(day))

    def __call__(self, day: date) -> int | None:
        return self.applicable(day)

    @property
    def latest(self) -> tuple[date, int] | None:
        return self.values[-1] if self.values else None


# ------------------------------------------------------------------ presets


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    policy: Company.PenaltyPolicy
    margin_bp: int
    compensation: Decimal
    currency: str
    source: RateSource


PRESETS = {
    "eu": Preset(
        "eu",
        "EU: ECB rate + 8 points, EUR 40",
        Company.PenaltyPolicy.eu,
        EU_MARGIN_BP,
        EU_COMPENSATION,
        "EUR",
        RateSource.ecb,
    ),
    "france": Preset(
        "france",
        "France: ECB rate + 10 points, EUR 40",
        Company.PenaltyPolicy.france,
        FRANCE_MARGIN_BP,
        EU_COMPENSATION,
        "EUR",
        RateSource.ecb,
    ),
    "uk": Preset(
        "uk",
        "UK: Bank Rate + 8 points, GBP 40 / 70 / 100",
        Company.PenaltyPolicy.uk,
        UK_MARGIN_BP,
        Decimal("0"),
        "GBP",
        RateSource.boe,
    ),
}


def source_for(policy: str) -> RateSource | None:
    """The reference rate a policy follows (None: no policy, or a fixed rate)."""
    if policy in (Company.PenaltyPolicy.eu.value, Company.PenaltyPolicy.france.value):
        return RateSource.ecb
    if policy == Company.PenaltyPolicy.uk.value:
        return RateSource.boe
    return None


# ------------------------------------------------------------------ storage


async def ensure_seeded() -> None:
    """Seed a source's real values when it has none at all (a fresh installation)."""
    for source, values in SEED.items():
        if await ReferenceRate.exists().where(ReferenceRate.source == source.value):
            continue
        await ReferenceRate.insert(
            *[
                ReferenceRate(
                    source=source.value,
                    effective_from=date.fromisoformat(day),
                    rate_bp=bp,
                    note="seeded",
                    updated_by="relance",
                )
                for day, bp in values
            ]
        ).on_conflict(action="DO NOTHING")


async def load_table(source: RateSource) -> RateTable:
    await ensure_seeded()
    rows = (
        await ReferenceRate.select(ReferenceRate.effective_from, ReferenceRate.rate_bp)
        .where(ReferenceRate.source == source.value)
        .order_by(ReferenceRate.effective_from)
    )
    return RateTable(source, tuple((r["effective_from"], r["rate_bp"]) for r in rows))


async def rates_for_company(company: Company) -> RateTable | None:
    """The dated values this company's policy follows (None: no reference rate)."""
    source = source_for(company.penalty_policy)
    return await load_table(source) if source else None


def terms_of(company: Company, table: RateTable | None) -> PenaltyTerms:
    """The company's penalty law with `table`'s rates: built once, reused for every item."""
    uk = company.penalty_policy == Company.PenaltyPolicy.uk.value
    return PenaltyTerms.of(
        company,
        table,
        bands=UK_COMPENSATION_BANDS if uk else (),
        bands_currency="GBP" if uk else "",
        rate_per_debt=uk,
    )


async def terms_for(company: Company) -> PenaltyTerms:
    """The company's penalty law, its reference rates loaded once (one query)."""
    return terms_of(company, await rates_for_company(company))


async def statement_penalties(
    statement: Statement, terms: PenaltyTerms | None = None
) -> Penalties | None:
    """The penalty figures of a statement: the one function pages, emails, letters and PDFs
    call. `terms` lets a caller that shows many statements (a dunning run) resolve the
    company's law once; the claim book costs two queries."""
    if statement.company.penalty_policy == Company.PenaltyPolicy.none.value:
        return None
    terms = terms or await terms_for(statement.company)
    return penalties_for(statement, terms, await load_claim_book(statement))


def parse_rate(text: str) -> int:
    """'4.50', '4,5' or '4.5 %' -> 450 basis points."""
    raw = text.strip().rstrip("%").strip().replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput.one("rate", f"'{text}' is not a rate like 4.50") from None
    if not value.is_finite() or not Decimal("-5") <= value <= Decimal("50"):
        raise InvalidInput.one("rate", "a rate between -5 and 50 (per cent a year)")
    bp = value * 100
    if bp != bp.to_integral_value():
        raise InvalidInput.one("rate", "two decimals at most (4.25)")
    return int(bp)


async def set_rate(
    source: str, effective_from: date | None, rate_text: str, actor: Actor, company_id: int
) -> None:
    """Add or correct the value of a source from a date; the change is kept in the history."""
    problems: list[FieldProblem] = []
    if source not in {s.value for s in RateSource}:
        problems.append(FieldProblem("source", "ecb or boe"))
    if effective_from is None:
        problems.append(FieldProblem("effective_from", "the date the rate applies from"))
    try:
        bp = parse_rate(rate_text)
    except InvalidInput as exc:
        problems += exc.problems
    if problems:
        raise InvalidInput(problems)
    async with atomic():
        before = (
            await ReferenceRate.select(ReferenceRate.rate_bp)
            .where(
                (ReferenceRate.source == source) & (ReferenceRate.effective_from == effective_from)
            )
            .first()
        )
        if before:
            await ReferenceRate.update(
                {
                    ReferenceRate.rate_bp: bp,
                    ReferenceRate.updated_by: actor.label,
                    ReferenceRate.note: "",
                }
            ).where(
                (ReferenceRate.source == source) & (ReferenceRate.effective_from == effective_from)
            )
        else:
            await ReferenceRate(
                source=source, effective_from=effective_from, rate_bp=bp, updated_by=actor.label
            ).save()
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="dunning.reference_rate_set",
            details={
                "source": source,
                "effective_from": effective_from,
                "rate_bp": bp,
                "before_bp": before["rate_bp"] if before else None,
            },
        )


async def delete_rate(rate_id: int, actor: Actor, company_id: int) -> None:
    async with atomic():
        row = await ReferenceRate.objects().get(ReferenceRate.id == rate_id)
        if row is None:
            raise NotFound(f"reference rate {rate_id}")
        await ReferenceRate.delete().where(ReferenceRate.id == rate_id)
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="dunning.reference_rate_deleted",
            details={
                "source": row.source,
                "effective_from": row.effective_from,
                "rate_bp": row.rate_bp,
            },
        )


async def apply_preset(company_id: int, key: str, actor: Actor) -> Company:
    """Set the company's penalty policy from a preset (rate, margin, compensation)."""
    preset = PRESETS.get(key)
    if preset is None:
        raise InvalidInput.one("preset", "one of " + ", ".join(PRESETS))
    async with atomic():
        company = await Company.objects().get(Company.id == company_id)
        if company is None:
            raise NotFound(f"company {company_id}")
        # Penalties count compensation in the company's currency (EUR for EU sellers); the
        # UK amounts depend on the debt and are applied by the penalties themselves.
        compensation = to_minor(preset.compensation, company.currency)
        values: dict[Any, Any] = {
            Company.penalty_policy: preset.policy.value,
            Company.penalty_margin_bp: preset.margin_bp,
            Company.compensation_minor: compensation,
        }
        await Company.update(values).where(Company.id == company_id)
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="dunning.penalty_policy_set",
            details={
                "preset": key,
                "policy": preset.policy.value,
                "margin_bp": preset.margin_bp,
                "compensation_minor": compensation,
                "before": {
                    "policy": company.penalty_policy,
                    "margin_bp": company.penalty_margin_bp,
                    "compensation_minor": company.compensation_minor,
                },
            },
        )
        company.penalty_policy = preset.policy.value
        company.penalty_margin_bp = preset.margin_bp
        company.compensation_minor = compensation
    return company


async def set_penalties_invoiced(company_id: int, invoiced: bool, actor: Actor) -> None:
    """Whether collectors may invoice penalties (items of kind 'penalty') or only show them."""
    async with atomic():
        company = await Company.objects().get(Company.id == company_id)
        if company is None:
            raise NotFound(f"company {company_id}")
        if bool(company.penalties_invoiced) == invoiced:
            return
        await Company.update({Company.penalties_invoiced: invoiced}).where(Company.id == company_id)
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="dunning.penalties_invoicing_set",
            details={"invoiced": invoiced},
        )
