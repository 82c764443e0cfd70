"""Late-payment penalties from the company's policy (simple interest per day, fixed
compensation per late invoice, disputed invoices left out)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from receivables.ledger.penalties import interest_on, penalties_for
from receivables.ledger.statement import OpenItem, Statement
from receivables.ledger.tables import Company, Customer
from receivables.money import Money

ON = date(2026, 6, 30)


def _item(n: int, amount: str, days_late: int, currency="EUR", status="open", kind="invoice"):
    money = Money(Decimal(amount), currency)
    return OpenItem(
        id=n,
        number=f"INV-{n}",
        kind=kind,
        issue_date=ON - timedelta(days=days_late + 30),
        due_date=ON - timedelta(days=days_late),
        total=money,
        open=money,
        days_late=days_late,
        status=status,
        promise_date=None,
        dispute_reason="",
        comment="",
        po_number="",
        has_pdf=False,
    )


def _statement(company: Company, *items: OpenItem) -> Statement:
    return Statement(company=company, customer=Customer(name="B"), on=ON, invoices=list(items))


def test_interest_is_simple_per_day_and_rounded_half_up():
    assert interest_on(Money(Decimal("1000.00"), "EUR"), 1000, 365).amount == Decimal("100.00")
    assert interest_on(Money(Decimal("1200.00"), "EUR"), 1200, 40).amount == Decimal("15.78")
    assert interest_on(Money(Decimal("1000"), "JPY"), 1000, 1).amount == Decimal("0")
    assert interest_on(Money(Decimal("5000"), "JPY"), 1000, 4).amount == Decimal("5")


def test_fixed_policy_counts_interest_and_compensation_but_not_disputes():
    company = Company(
        penalty_policy="fixed", penalty_fixed_rate_bp=1000, compensation_minor=4000, currency="EUR"
    )
    st = _statement(
        company,
        _item(1, "1000.00", 73),
        _item(2, "500.00", 10, status="disputed"),
        _item(3, "200.00", 0),  # not late
        _item(4, "99.99", 30, currency="USD"),
    )
    result = penalties_for(st)
    assert [line.number for line in result.lines] == ["INV-1", "INV-4"]
    assert result.interest == {
        "EUR": Money(Decimal("20.00"), "EUR"),
        "USD": Money(Decimal("0.82"), "USD"),
    }
    assert result.compensation == {"EUR": Money(Decimal("80.00"), "EUR")}
    assert result.totals["EUR"] == Money(Decimal("100.00"), "EUR") and result.applies


def test_reference_rate_policies_need_the_rate_for_interest():
    company = Company(
        penalty_policy="france", penalty_margin_bp=1000, compensation_minor=4000, currency="EUR"
    )
    st = _statement(company, _item(1, "3650.00", 10))
    without = penalties_for(st)
    assert not without.interest_computed and without.interest == {}
    assert without.totals == {"EUR": Money(Decimal("40.00"), "EUR")}
    with_rate = penalties_for(st, reference_rate=lambda on: 215)  # 2.15 % + 10 points
    assert with_rate.annual_rate_bp == 1215
    assert with_rate.interest["EUR"] == Money(Decimal("12.15"), "EUR")


def test_uk_scale_and_no_policy():
    company = Company(
        penalty_policy="uk", penalty_margin_bp=800, compensation_minor=0, currency="GBP"
    )
    st = _statement(
        company,
        _item(1, "999.99", 5, currency="GBP"),
        _item(2, "1000.00", 5, currency="GBP"),
        _item(3, "25000.00", 5, currency="GBP"),
    )
    assert penalties_for(st).compensation == {"GBP": Money(Decimal("210.00"), "GBP")}
    assert penalties_for(_statement(Company(penalty_policy="none"), _item(1, "10.00", 5))) is None
