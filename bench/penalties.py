"""Late-payment penalties of a 500-invoice statement: the cost of the computation itself.

    python bench/penalties.py [--items 500] [--runs 200]

A France company (ECB + 10 points), 500 invoices late over four half-years, each partly
paid once after its due date. Measured, CPU only (no database):

- shared terms: `penalties_for` with the company's law resolved once (`terms_of`), as every
  page, email and PDF calls it: each half-year's rate looked up once and reused;
- terms per item: the same invoices, each computed with terms built afresh (the rate dates
  resolved again for every item, as before issue 11 point 9).

Prints the time per statement and the number of reference-rate lookups; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from decimal import Decimal

from receivables.dunning.reference_rates import PRESETS, SEED, RateTable, terms_of
from receivables.dunning.tables import RateSource
from receivables.ledger.penalties import ClaimBook, penalties_for
from receivables.ledger.statement import OpenItem, Statement
from receivables.ledger.tables import Company, Customer
from receivables.money import Money, to_minor

ON = date(2025, 11, 28)


def build(n: int) -> tuple[Statement, ClaimBook]:
    p = PRESETS["france"]
    company = Company(
        code="B",
        name="Bench",
        currency="EUR",
        penalty_policy=p.policy.value,
        penalty_margin_bp=p.margin_bp,
        compensation_minor=to_minor(p.compensation, "EUR"),
    )
    items, book = [], ClaimBook()
    for i in range(n):
        due = ON - timedelta(days=30 + (i * 7) % 700)
        total = Money(Decimal(100 + i), "EUR")
        paid = total.minor // 3
        book.reductions[i] = [(due + timedelta(days=10 + i % 50), paid)]
        items.append(
            OpenItem(
                id=i,
                number=f"F-{i}",
                kind="invoice",
                issue_date=due,
                due_date=due,
                total=total,
                open=Money.from_minor(total.minor - paid, "EUR"),
                days_late=(ON - due).days,
                status="open",
                promise_date=None,
                dispute_reason="",
                comment="",
                po_number="",
                has_pdf=False,
            )
        )
    statement = Statement(company=company, customer=Customer(name="B"), on=ON, invoices=items)
    return statement, book


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    table = RateTable(
        RateSource.ecb, tuple((date.fromisoformat(d), bp) for d, bp in SEED[RateSource.ecb])
    )
    lookups = 0

    def counted(day: date) -> int | None:
        nonlocal lookups
        lookups += 1
        return table(day)

    statement, book = build(args.items)
    company = statement.company

    t0 = time.perf_counter()
    for _ in range(args.runs):
        shared = penalties_for(statement, terms_of(company, counted), book)
    shared_s = (time.perf_counter() - t0) / args.runs
    shared_lookups, lookups = lookups // args.runs, 0

    t0 = time.perf_counter()
    for _ in range(args.runs):
        for item in statement.invoices:
            one = Statement(company=company, customer=statement.customer, on=ON, invoices=[item])
            penalties_for(one, terms_of(company, counted), book)
    per_item_s = (time.perf_counter() - t0) / args.runs
    per_item_lookups = lookups // args.runs

    assert shared is not None
    print(f"{args.items} late invoices, each partly paid; {args.runs} runs")
    print(f"  total claimed: {', '.join(str(m) for m in shared.totals.values())}")
    print(
        f"  shared terms:   {shared_s * 1000:7.2f} ms a statement, "
        f"{shared_lookups} reference-rate lookups"
    )
    print(
        f"  terms per item: {per_item_s * 1000:7.2f} ms a statement, "
        f"{per_item_lookups} reference-rate lookups"
    )


if __name__ == "__main__":
    main()
