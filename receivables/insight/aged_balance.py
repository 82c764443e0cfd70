"""The aged balance report: each customer's open invoices on a date, by bucket, as XLSX or CSV.

Its totals per currency are the dashboard's aging buckets for the same date and scope
(today: the items' current state, as the live figures; a past date: rebuilt from the
ledger's dates, as `figures.aging_as_of`). Customers are read in slices of ids and each
slice is written at once to a temporary file (openpyxl's write-only mode, in a thread), so
memory stays flat whatever the number of customers.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook

from receivables.documents.cells import csv_cell, xlsx_cell
from receivables.insight.figures import AGING_LABELS, Scope, _bucket_sums, _int, _open_on, _Query
from receivables.ledger.statement import BUCKETS
from receivables.ledger.tables import Customer
from receivables.money import Money

COLUMNS = ["Customer", "Name", "Currency", *(AGING_LABELS[b] for b in BUCKETS), "Total"]
SLICE_IDS = 5000
"""Customer ids read per query."""


async def slices(scope: Scope, on: date, live: bool) -> AsyncIterator[list[list[Any]]]:
    """Rows (ref, name, currency, five buckets, total) for slices of customer ids, in id
    order; amounts as Decimal in the currency's units."""
    top = await Customer.select(Customer.id).order_by(Customer.id, ascending=False).first()
    last_id = int(top["id"]) if top else 0
    start = 0
    while start < last_id:
        end = start + SLICE_IDS
        q = _Query().add("SELECT x.customer, x.currency")
        _bucket_sums(q, on, "x.left_minor", "x.due_date")
        q.add(" FROM (")
        if live:
            q.add(
                "SELECT i.customer, i.currency, i.due_date, i.open_minor AS left_minor "
                "FROM item i WHERE i.kind = 'invoice' AND i.open_minor > 0 "
                "AND i.status <> 'cancelled'"
            )
            q.scope(scope)
        else:
            _open_on(q, scope, on, customers=(start, end))
        q.add(
            ") x WHERE x.left_minor > 0 AND x.customer > {} AND x.customer <= {} "
            "GROUP BY x.customer, x.currency",
            start,
            end,
        )
        rows = await q.rows()
        if rows:
            ids = sorted({int(r["customer"]) for r in rows})
            names = {
                r["id"]: (r["ref"], r["name"])
                for r in await Customer.select(Customer.id, Customer.ref, Customer.name).where(
                    Customer.id.is_in(ids)
                )
            }
            out = []
            for r in sorted(rows, key=lambda r: (r["customer"], r["currency"])):
                cur = r["currency"]
                amounts = [_int(r[f"b{n}"]) for n in range(len(BUCKETS))]
                ref, name = names[r["customer"]]
                out.append(
                    [
                        ref,
                        name,
                        cur,
                        *(Money.from_minor(m, cur).amount for m in amounts),
                        Money.from_minor(sum(amounts), cur).amount,
                    ]
                )
            yield out
        start = end


class _Writer:
    """One export file being written, a slice at a time (blocking calls: run in a thread)."""

    def __init__(self, path: Path, format: str) -> None:
        self.format = format
        self.path = path
        self.totals: dict[str, list[Decimal]] = {}
        self.book: Workbook | None = None
        self.out: IO[str] | None = None
        if format == "csv":
            self.out = path.open("w", encoding="utf-8-sig", newline="")
            self.csv = csv.writer(self.out)
            self.csv.writerow(COLUMNS)
        else:
            self.book = Workbook(write_only=True)
            self.sheet = self.book.create_sheet("Aged balance")
            self.sheet.append([xlsx_cell(self.sheet, name) for name in COLUMNS])

    def write(self, rows: list[list[Any]]) -> None:
        for row in rows:
            t = self.totals.setdefault(row[2], [Decimal(0)] * (len(BUCKETS) + 1))
            for n, v in enumerate(row[3:]):
                t[n] += v
            self._row(row)

    def _row(self, row: list[Any]) -> None:
        if self.format == "csv":
            self.csv.writerow([csv_cell(v) for v in row])
        else:
            self.sheet.append(
                [
                    xlsx_cell(self.sheet, v, "#,##0.00###" if isinstance(v, Decimal) else None)
                    for v in row
                ]
            )

    def close(self) -> None:
        for cur, t in sorted(self.totals.items()):
            self._row(["Total", "", cur, *t])
        if self.out is not None:
            self.out.close()
        if self.book is not None:
            self.book.save(str(self.path))


async def export_file(scope: Scope, on: date, today: date, format: str) -> Path:
    """The aged balance on `on` written to a temporary file (the caller streams it, then
    removes it). The last rows are the totals per currency."""
    handle, name = tempfile.mkstemp(prefix="relance-aged-", suffix=f".{format}")
    os.close(handle)
    path = Path(name)
    try:
        writer = await asyncio.to_thread(_Writer, path, format)
        async for rows in slices(scope, on, live=on >= today):
            await asyncio.to_thread(writer.write, rows)
        await asyncio.to_thread(writer.close)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)  # noqa: ASYNC240 - a quick unlink on the way out of a failure
        raise
    return path
