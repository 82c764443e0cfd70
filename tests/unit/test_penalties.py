"""Late-payment penalties, table-driven, with the seeded ECB and Bank of England rates.

Expected figures are worked by hand from the published rates:
ECB main refinancing rate in force on 1 Jul 2024: 4.25 %, 1 Jan 2025: 3.15 %, 1 Jul 2025: 2.15 %;
Bank Rate on 30 Jun 2024: 5.25 %, 31 Dec 2024: 4.75 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from receivables.dunning.reference_rates import PRESETS, SEED, RateTable, source_for
from receivables.dunning.tables import RateSource
from receivables.ledger.penalties import penalties_for
from receivables.ledger.statement import OpenItem, Statement
from receivables.ledger.tables import Company, Customer
from receivables.money import Money, to_minor

ECB = RateTable(
    RateSource.ecb, tuple((date.fromisoformat(d), bp) for d, bp in SEED[RateSource.ecb])
)
BOE = RateTable(
    RateSource.boe, tuple((date.fromisoformat(d), bp) for d, bp in SEED[RateSource.boe])
)


def company_with(preset: str | None = None, **kw) -> Company:
    company = Company(code="S", name="Seller", currency=kw.pop("currency", "EUR"), **kw)
    if preset:
        p = PRESETS[preset]
        company.penalty_policy = p.policy.value
        company.penalty_margin_bp = p.margin_bp
        company.compensation_minor = to_minor(p.compensation, company.currency)
    return company


def invoice(amount: str, due: str, on: date, currency: str, status: str = "open", n: int = 1):
    value = Money(Decimal(amount), currency)
    due_date = date.fromisoformat(due)
    return OpenItem(
        id=n,
        number=f"F-{n}",
        kind="invoice",
        issue_date=due_date,
        due_date=due_date,
        total=value,
        open=value,
        days_late=max(0, (on - due_date).days),
        status=status,
        promise_date=None,
        dispute_reason="price" if status == "disputed" else "",
        comment="",
        po_number="",
        has_pdf=False,
    )


def statement(company: Company, on: date, *items: OpenItem) -> Statement:
    return Statement(company=company, customer=Customer(name="Buyer"), on=on, invoices=list(items))


@dataclass(frozen=True)
class Case:
    name: str
    preset: str
    amount: str
    due: str
    on: str
    rate_bp: int  # the rate shown for the statement date
    interest: str
    compensation: str
    currency: str = "EUR"


CASES = [
    # France: ECB of the half-year + 10 points, EUR 40 per late invoice.
    Case("france", "france", "1000.00", "2025-03-31", "2025-04-30", 1315, "10.81", "40.00"),
    # EU: + 8 points.
    Case("eu", "eu", "1000.00", "2025-03-31", "2025-04-30", 1115, "9.16", "40.00"),
    # UK: Bank Rate on 31 Dec 2024 (4.75 %) + 8 for a debt late in H1 2025; bands by amount.
    Case("uk 999.99", "uk", "999.99", "2025-03-31", "2025-04-30", 1275, "10.48", "40.00", "GBP"),
    Case("uk 1000", "uk", "1000.00", "2025-03-31", "2025-04-30", 1275, "10.48", "70.00", "GBP"),
    Case("uk 9999.99", "uk", "9999.99", "2025-03-31", "2025-04-30", 1275, "104.79", "70.00", "GBP"),
    Case("uk 10000", "uk", "10000.00", "2025-03-31", "2025-04-30", 1275, "104.79", "100.00", "GBP"),
    # 1 July 2025: 15 days at 13.15 % then 1 day at 12.15 % (France).
    Case("france 30 June", "france", "1000.00", "2025-06-15", "2025-06-30", 1315, "5.40", "40.00"),
    Case("france 1 July", "france", "1000.00", "2025-06-15", "2025-07-01", 1215, "5.74", "40.00"),
    Case("france 10 July", "france", "1000.00", "2025-06-15", "2025-07-10", 1215, "8.73", "40.00"),
    # 1 January 2025 (EU): 11 days at 12.25 % (ECB 4.25 on 1 Jul 2024) then 10 at 11.15 %.
    Case("eu 1 January", "eu", "1000.00", "2024-12-20", "2025-01-10", 1115, "6.75", "40.00"),
    # UK keeps the rate of the half-year the debt became late: 13.25 % from 21 Dec 2024 ...
    Case(
        "uk late in H2", "uk", "1000.00", "2024-12-20", "2025-01-10", 1275, "7.62", "70.00", "GBP"
    ),
    # ... and 12.75 % for a debt late from 1 January 2025.
    Case(
        "uk late in H1", "uk", "1000.00", "2024-12-31", "2025-01-10", 1275, "3.49", "70.00", "GBP"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_penalties_presets(case: Case):
    company = company_with(case.preset, currency=case.currency)
    on = date.fromisoformat(case.on)
    table = ECB if source_for(company.penalty_policy) == RateSource.ecb else BOE
    result = penalties_for(
        statement(company, on, invoice(case.amount, case.due, on, case.currency)), table
    )
    assert result is not None and result.annual_rate_bp == case.rate_bp
    [line] = result.lines
    assert line.interest == Money(Decimal(case.interest), case.currency)
    assert line.compensation == Money(Decimal(case.compensation), case.currency)
    total = Decimal(case.interest) + Decimal(case.compensation)
    assert result.totals == {case.currency: Money(total, case.currency)}


def test_the_applicable_rate_changes_on_1_january_and_1_july():
    assert [
        ECB(date.fromisoformat(d)) for d in ("2024-12-31", "2025-01-01", "2025-06-30", "2025-07-01")
    ] == [425, 315, 315, 215]
    # The ECB cut of 11 June 2025 waits for 1 July; Bank Rate uses 31 Dec / 30 Jun.
    assert ECB.in_force(date(2025, 6, 11)) == 215 and ECB(date(2025, 6, 11)) == 315
    assert [BOE(date.fromisoformat(d)) for d in ("2024-12-31", "2025-01-01", "2025-07-01")] == [
        525,
        475,
        425,
    ]


def test_a_disputed_item_bears_no_penalty():
    company = company_with("france")
    on = date(2025, 4, 30)
    result = penalties_for(
        statement(
            company,
            on,
            invoice("1000.00", "2025-03-31", on, "EUR", n=1),
            invoice("5000.00", "2025-03-31", on, "EUR", status="disputed", n=2),
            invoice("700.00", "2025-05-31", on, "EUR", n=3),  # not due yet
        ),
        ECB,
    )
    assert [line.number for line in result.lines] == ["F-1"]
    assert result.totals == {"EUR": Money(Decimal("50.81"), "EUR")}


def test_a_fixed_rate_needs_no_reference_rate():
    company = company_with(penalty_policy="fixed", penalty_fixed_rate_bp=1200)
    on = date(2025, 4, 30)
    result = penalties_for(statement(company, on, invoice("1000.00", "2025-03-31", on, "EUR")))
    assert result.lines[0].interest == Money(Decimal("9.86"), "EUR")
    assert result.lines[0].compensation is None


def test_without_known_rates_interest_is_not_invented():
    company = company_with("france")
    on = date(2022, 3, 1)  # before the first seeded value
    result = penalties_for(statement(company, on, invoice("100.00", "2022-01-31", on, "EUR")), ECB)
    assert not result.interest_computed
    assert result.lines[0].interest is None
    assert result.totals == {"EUR": Money(Decimal("40.00"), "EUR")}
