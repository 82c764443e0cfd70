"""Spreadsheet cells never become formulas: XLSX read back with openpyxl, CSV as text."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from receivables.documents.cells import csv_cell, formula_like, xlsx_cell

DANGEROUS = [
    '=HYPERLINK("http://x","y")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
]


def _roundtrip(values: list) -> list:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("S")
    ws.append([xlsx_cell(ws, v) for v in values])
    out = io.BytesIO()
    wb.save(out)
    back = load_workbook(io.BytesIO(out.getvalue()))["S"]
    return list(back.iter_rows())[0]


def test_formula_text_reads_back_as_text():
    cells = _roundtrip(DANGEROUS)
    for cell, value in zip(cells, DANGEROUS, strict=True):
        assert cell.data_type == "s", value
        assert cell.value == value
        assert cell.quotePrefix is True


def test_numbers_and_dates_stay_typed():
    number, day, text = _roundtrip([Decimal("-12.50"), date(2026, 11, 22), "INV-1"])
    assert number.data_type == "n" and number.value == -12.5
    assert day.is_date and day.value.date() == date(2026, 11, 22)
    assert text.data_type == "s" and text.value == "INV-1" and not text.quotePrefix


def test_csv_cells_get_an_apostrophe():
    out = io.StringIO()
    csv.writer(out).writerow([csv_cell(v) for v in [*DANGEROUS, "INV-1", -5, None]])
    row = next(csv.reader(io.StringIO(out.getvalue())))
    assert row[:6] == ["'" + v for v in DANGEROUS]
    assert row[6:] == ["INV-1", "-5", ""]


@given(st.text(max_size=40))
def test_any_text_either_is_safe_or_is_neutralised(text):
    cell = csv_cell(text)
    assert not formula_like(cell) or cell.startswith("'")
    assert cell.removeprefix("'") == text or cell == text
