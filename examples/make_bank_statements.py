"""Writes examples/bank-statement-demo.csv and bank-statement-demo.xml (CAMT.053): the bank
statement finance imports in `relance demo`, at /backoffice/finance/bank.

Its lines pay invoices the demo leaves open whatever the day (receivables.demo.data,
EXAMPLE_CUSTOMERS), so it matches the demo's data: two lines are proposed for confirmation,
the others wait for review (a down payment, a payer named but no invoice, bank interest)
and a debit is skipped; the CAMT.053 file books two customers' transfers in one entry.
Run it again after changing the demo's plan: `python examples/make_bank_statements.py`.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from receivables.demo.bank import example_statements  # noqa: E402
from receivables.demo.data import make_plan  # noqa: E402

BOOKED_ON = date(2026, 11, 27)
"""The date printed on the statement; what its lines pay does not depend on it."""


def main() -> None:
    csv_file, camt_file = example_statements(make_plan(BOOKED_ON), BOOKED_ON)
    (HERE / "bank-statement-demo.csv").write_bytes(csv_file)
    (HERE / "bank-statement-demo.xml").write_bytes(camt_file)


if __name__ == "__main__":
    main()
