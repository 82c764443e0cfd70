"""Late-payment penalties as the law computes them, worked by hand from the seeded rates.

Rates (seeded, receivables.dunning.reference_rates.SEED):
ECB main refinancing rate in force on 1 Jul 2024: 4.25 %, 1 Jan 2025: 3.15 %, 1 Jul 2025: 2.15 %;
Bank Rate on 30 Jun 2024: 5.25 %, 31 Dec 2024: 4.75 %.
France: ECB + 10 points, EUR 40; EU: ECB + 8 points, EUR 40; UK: Bank Rate + 8 points,
GBP 40 / 70 / 100. Interest = amount x rate x days / 365 (actual/365), each slice of the
balance for its own days, rounded half-up once per invoice. Below, amounts in cents:
cents x bp x days / 3,650,000 gives the interest in cents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from receivables.dunning.reference_rates import PRESETS, SEED, RateTable, terms_of
from receivables.dunning.tables import RateSource
from receivables.ledger.penalties import (
    ClaimBook,
    ClaimRecord,
    PaidLate,
    PenaltyTerms,
    interest_on,
    penalties_for,
)
from receivables.ledger.statement import OpenItem, Statement
from receivables.ledger.tables import Company, Customer
from receivables.money import Money, to_minor

ECB = RateTable(
    RateSource.ecb, tuple((date.fromisoformat(d), bp) for d, bp in SEED[RateSource.ecb])
)
BOE = RateTable(
    RateSource.boe, tuple((date.fromisoformat(d), bp) for d, bp in SEED[RateSource.boe])
)
D = date.fromisoformat


def company_with(preset: str | None = None, **kw) -> Company:
    company = Company(code="S", name="Seller", currency=kw.pop("currency", "EUR"), **kw)
    if preset:
        p = PRESETS[preset]
        company.penalty_policy = p.policy.value
        company.penalty_margin_bp = p.margin_bp
        company.compensation_minor = to_minor(p.compensation, company.currency)
    return company


def terms(company: Company) -> PenaltyTerms:
    table = BOE if company.penalty_policy == "uk" else ECB
    return terms_of(company, table)


def invoice(
    amount: str,
    due: str,
    on: date,
    currency: str = "EUR",
    status: str = "open",
    n: int = 1,
    open_: str | None = None,
) -> OpenItem:
    value = Money(Decimal(amount), currency)
    due_date = D(due)
    return OpenItem(
        id=n,
        number=f"F-{n}",
        kind="invoice",
        issue_date=due_date,
        due_date=due_date,
        total=value,
        open=Money(Decimal(open_), currency) if open_ else value,
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


def eur(text: str, currency: str = "EUR") -> Money:
    return Money(Decimal(text), currency)


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
    # France, 1 Apr..30 Apr 2025 = 30 days at 3.15 + 10 = 13.15 %:
    # 100000 x 1315 x 30 / 3650000 = 1080.82 cents -> 10.81; EUR 40 per invoice.
    Case("france", "france", "1000.00", "2025-03-31", "2025-04-30", 1315, "10.81", "40.00"),
    # EU: 30 days at 3.15 + 8 = 11.15 %: 100000 x 1115 x 30 / 3650000 = 916.44 -> 9.16.
    Case("eu", "eu", "1000.00", "2025-03-31", "2025-04-30", 1115, "9.16", "40.00"),
    # UK: Bank Rate on 31 Dec 2024 (4.75 %) + 8 = 12.75 % for a debt late in H1 2025, 30 days.
    # 99999 x 1275 x 30 / 3650000 = 1047.93 -> 10.48; under 1,000: GBP 40.
    Case("uk 999.99", "uk", "999.99", "2025-03-31", "2025-04-30", 1275, "10.48", "40.00", "GBP"),
    # 100000 x 1275 x 30 / 3650000 = 1047.95 -> 10.48; from 1,000: GBP 70.
    Case("uk 1000", "uk", "1000.00", "2025-03-31", "2025-04-30", 1275, "10.48", "70.00", "GBP"),
    # 999999 x 1275 x 30 / 3650000 = 10479.44 -> 104.79; under 10,000: GBP 70.
    Case("uk 9999.99", "uk", "9999.99", "2025-03-31", "2025-04-30", 1275, "104.79", "70.00", "GBP"),
    # 1000000 x 1275 x 30 / 3650000 = 10479.45 -> 104.79; from 10,000: GBP 100.
    Case("uk 10000", "uk", "10000.00", "2025-03-31", "2025-04-30", 1275, "104.79", "100.00", "GBP"),
    # France across 1 July 2025: 16..30 Jun = 15 days at 13.15 %, then 1 day at 2.15 + 10:
    # 100000 x (1315 x 15 + 1215 x 1) / 3650000 = 573.70 -> 5.74.
    Case("france 1 July", "france", "1000.00", "2025-06-15", "2025-07-01", 1215, "5.74", "40.00"),
    # ... and to 10 July: 100000 x (1315 x 15 + 1215 x 10) / 3650000 = 873.29 -> 8.73.
    Case("france 10 July", "france", "1000.00", "2025-06-15", "2025-07-10", 1215, "8.73", "40.00"),
    # EU across 1 January 2025: 21..31 Dec = 11 days at 4.25 + 8, then 10 days at 11.15 %:
    # 100000 x (1225 x 11 + 1115 x 10) / 3650000 = 674.66 -> 6.75.
    Case("eu 1 January", "eu", "1000.00", "2024-12-20", "2025-01-10", 1115, "6.75", "40.00"),
    # UK keeps the rate of the half-year the debt became late (21 Dec 2024: Bank Rate on
    # 30 Jun 2024, 5.25 % + 8) for all 21 days: 100000 x 1325 x 21 / 3650000 = 762.33 -> 7.62.
    Case(
        "uk late in H2", "uk", "1000.00", "2024-12-20", "2025-01-10", 1275, "7.62", "70.00", "GBP"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_penalties_presets(case: Case):
    company = company_with(case.preset, currency=case.currency)
    on = D(case.on)
    result = penalties_for(
        statement(company, on, invoice(case.amount, case.due, on, case.currency)), terms(company)
    )
    assert result is not None and result.annual_rate_bp == case.rate_bp
    [line] = result.lines
    assert line.interest == eur(case.interest, case.currency)
    assert line.compensation == eur(case.compensation, case.currency)
    total = Decimal(case.interest) + Decimal(case.compensation)
    assert result.totals == {case.currency: Money(total, case.currency)}


def test_the_applicable_rate_changes_on_1_january_and_1_july():
    assert [ECB(D(d)) for d in ("2024-12-31", "2025-01-01", "2025-06-30", "2025-07-01")] == [
        425,
        315,
        315,
        215,
    ]
    # The ECB cut of 11 June 2025 waits for 1 July; Bank Rate uses 31 Dec / 30 Jun.
    assert ECB.in_force(date(2025, 6, 11)) == 215 and ECB(date(2025, 6, 11)) == 315
    assert [BOE(D(d)) for d in ("2024-12-31", "2025-01-01", "2025-07-01")] == [525, 475, 425]


def test_a_partial_payment_ends_its_share_of_the_interest():
    # France, 1000.00 due 31 Mar 2025, 600.00 paid on 10 Apr, statement on 30 Apr:
    # 600 for 1..10 Apr (10 days), 400 for 1..30 Apr (30 days), all at 13.15 %:
    # (60000 x 1315 x 10 + 40000 x 1315 x 30) / 3650000 = 648.49 cents -> 6.48
    # (today's open amount over the whole lateness would claim 4.32).
    company = company_with("france")
    on = D("2025-04-30")
    book = ClaimBook(reductions={1: [(D("2025-04-10"), 60000)]})
    result = penalties_for(
        statement(company, on, invoice("1000.00", "2025-03-31", on, open_="400.00")),
        terms(company),
        book,
    )
    [line] = result.lines
    assert (line.interest, line.compensation, line.base) == (
        eur("6.48"),
        eur("40.00"),
        eur("400.00"),
    )
    assert line.days_late == 30
    assert result.totals == {"EUR": eur("46.48")}


def test_an_invoice_paid_late_in_full_keeps_its_claim():
    # France, 1000.00 due 31 Mar 2025, paid in full on 20 Apr: 20 days at 13.15 %:
    # 100000 x 1315 x 20 / 3650000 = 720.55 -> 7.21, plus EUR 40; still claimed on 30 June.
    # An invoice paid on its due date (F-3) owes nothing.
    company = company_with("france")
    on = D("2025-06-30")
    book = ClaimBook(
        reductions={2: [(D("2025-04-20"), 100000)]},
        paid_late=[PaidLate(2, "F-2", D("2025-03-31"), eur("1000.00"), "paid")],
    )
    result = penalties_for(statement(company, on), terms(company), book)
    [line] = result.lines
    assert (line.number, line.days_late, line.paid) == ("F-2", 20, True)
    assert (line.interest, line.compensation) == (eur("7.21"), eur("40.00"))
    assert result.totals == {"EUR": eur("47.21")}


def test_a_waived_claim_is_shown_as_waived_and_counts_for_nothing():
    company = company_with("france")
    on = D("2025-04-30")
    book = ClaimBook(claims={2: ClaimRecord(waived=True, reason="goodwill")})
    result = penalties_for(
        statement(
            company,
            on,
            invoice("1000.00", "2025-03-31", on, n=1),
            invoice("2000.00", "2025-03-31", on, n=2),
        ),
        terms(company),
        book,
    )
    assert [x.number for x in result.lines] == ["F-1"]
    [waived] = result.waived
    # 200000 x 1315 x 30 / 3650000 = 2161.64 -> 21.62, waived.
    assert (waived.number, waived.reason, waived.interest) == ("F-2", "goodwill", eur("21.62"))
    assert result.totals == {"EUR": eur("50.81")}  # F-1 only: 10.81 + 40.00


def test_an_invoiced_claim_counts_only_what_accrued_since():
    # F-1 of the France case was invoiced on 30 Apr (10.81 + 40.00). On 10 May, 40 days:
    # 100000 x 1315 x 40 / 3650000 = 1441.10 -> 14.41; 14.41 - 10.81 = 3.60 more, no
    # second compensation.
    company = company_with("france")
    on = D("2025-05-10")
    book = ClaimBook(claims={1: ClaimRecord(interest_minor=1081, compensation_minor=4000)})
    result = penalties_for(
        statement(company, on, invoice("1000.00", "2025-03-31", on)), terms(company), book
    )
    [line] = result.lines
    assert (line.interest, line.compensation) == (eur("3.60"), eur("0.00"))
    assert result.totals == {"EUR": eur("3.60")}
    # A paid invoice whose claim was invoiced to its payment date is settled: no line.
    paid = ClaimBook(
        reductions={2: [(D("2025-04-20"), 100000)]},
        paid_late=[PaidLate(2, "F-2", D("2025-03-31"), eur("1000.00"), "paid")],
        claims={2: ClaimRecord(interest_minor=721, compensation_minor=4000)},
    )
    assert penalties_for(statement(company, on), terms(company), paid).lines == []


def test_a_disputed_or_not_yet_due_item_bears_no_penalty():
    company = company_with("france")
    on = D("2025-04-30")
    result = penalties_for(
        statement(
            company,
            on,
            invoice("1000.00", "2025-03-31", on, n=1),
            invoice("5000.00", "2025-03-31", on, status="disputed", n=2),
            invoice("700.00", "2025-05-31", on, n=3),
        ),
        terms(company),
    )
    assert [line.number for line in result.lines] == ["F-1"]
    assert result.totals == {"EUR": eur("50.81")}


def test_rates_are_resolved_once_per_half_year_for_a_whole_statement():
    calls: list[date] = []

    def counting(day: date) -> int | None:
        calls.append(day)
        return ECB(day)

    company = company_with("france")
    on = D("2025-07-10")
    items = [invoice("100.00", f"2025-0{1 + n % 6}-10", on, n=n) for n in range(300)]
    result = penalties_for(statement(company, on, *items), terms_of(company, counting))
    assert len(result.lines) == 300
    assert sorted(calls) == [D("2025-01-01"), D("2025-07-01")]


def test_fixed_rate_and_unknown_rates():
    # Fixed 12 %: 100000 x 1200 x 30 / 3650000 = 986.30 -> 9.86, no compensation set.
    company = company_with(penalty_policy="fixed", penalty_fixed_rate_bp=1200)
    on = D("2025-04-30")
    result = penalties_for(statement(company, on, invoice("1000.00", "2025-03-31", on)), None)
    assert (result.lines[0].interest, result.lines[0].compensation) == (eur("9.86"), None)
    assert interest_on(eur("1000.00"), 1000, 365) == eur("100.00")
    # Before the first seeded ECB value no interest is invented; the compensation stands.
    company = company_with("france")
    on = D("2022-03-01")
    result = penalties_for(
        statement(company, on, invoice("100.00", "2022-01-31", on)), terms(company)
    )
    assert not result.interest_computed and result.lines[0].interest is None
    assert result.totals == {"EUR": eur("40.00")}


def test_the_letter_shows_the_same_lines_and_names_the_waived_claims():
    from receivables.dunning.letters import _penalty_table
    from receivables.dunning.messages import AccountFacts

    company = company_with("france", locale="en_GB")
    on = D("2025-06-30")
    book = ClaimBook(
        reductions={2: [(D("2025-04-20"), 100000)]},
        paid_late=[PaidLate(2, "F-2", D("2025-03-31"), eur("1000.00"), "paid")],
        claims={3: ClaimRecord(waived=True, reason="goodwill")},
    )
    st = statement(company, on, invoice("500.00", "2025-03-31", on, n=3))
    facts = AccountFacts(
        statement=st, penalties=penalties_for(st, terms(company), book), collector=None, contacts=[]
    )
    html = _penalty_table(facts, "en", "en_GB")
    # F-2, paid 20 days late: 7.21 + 40.00 (as in the test above); F-3's claim is waived.
    assert '<td>F-2</td><td class="num">20</td>' in html and "€7.21" in html
    assert "€47.21" in html and "Penalties waived: F-3." in html
