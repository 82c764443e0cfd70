"""Spreadsheet cells that never become formulas, whatever text they carry.

A value typed by a customer or an ERP (`=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)`) must
reach the accountant's Excel as the text it is. XLSX cells are written as strings with
Excel's quote prefix (shown as typed, kept as text when edited); CSV cells, which have no
types, get a leading apostrophe (the OWASP rule).
"""

from __future__ import annotations

from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def xlsx_cell(ws: WriteOnlyWorksheet, value: Any, number_format: str | None = None, **style):
    """A write-only cell; text stays text (strings are never parsed as formulas)."""
    cell = WriteOnlyCell(ws, value=None)
    if isinstance(value, str):
        cell.value = value
        cell.data_type = "s"  # openpyxl guessed 'f' for '=...'; a string it is
        if formula_like(value):
            cell.quotePrefix = True
    else:
        cell.value = value
    if number_format:
        cell.number_format = number_format
    for name, val in style.items():
        setattr(cell, name, val)
    return cell


def csv_cell(value: Any) -> str:
    """Text that could start a formula gets an apostrophe; numbers (-5) stay numbers."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value)
    return "'" + value if formula_like(value) else value
