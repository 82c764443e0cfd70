"""Writes examples/items.xlsx: 30 invoices and 2 credit notes of Atelier Lumière around 2026-06-30.

Dates are real date cells and totals real number cells (as an ERP export has them), so an
import of this file exercises the spreadsheet path, not text. Run it again after editing
ITEMS: `python examples/make_items_xlsx.py`.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

REFERENCE_DATE = date(2026, 6, 30)
"""Due dates run from 120 days before this date to 60 days after it."""

# number, customer, kind, due date (days from REFERENCE_DATE), payment terms (days),
# currency, total, purchase order
ITEMS = [
    ("F2026-0101", "CLI-001", "Invoice", -32, 30, "EUR", "1860.00", "PO-ML-2211"),
    ("F2026-0102", "CLI-001", "Invoice", 12, 30, "EUR", "742.35", "PO-ML-2260"),
    ("F2026-0103", "CLI-001", "Invoice", 44, 30, "EUR", "1315.80", "PO-ML-2301"),
    ("F2026-0104", "CLI-002", "Invoice", -118, 45, "EUR", "3120.00", ""),
    ("F2026-0105", "CLI-002", "Invoice", -61, 45, "EUR", "2435.60", ""),
    ("F2026-0106", "CLI-002", "Invoice", -9, 45, "EUR", "987.45", ""),
    ("F2026-0107", "CLI-002", "Invoice", 25, 45, "EUR", "1502.10", ""),
    ("F2026-0108", "CLI-003", "Invoice", -95, 30, "EUR", "4210.00", "HF-7781"),
    ("F2026-0109", "CLI-003", "Invoice", -40, 30, "EUR", "1275.50", "HF-7802"),
    ("F2026-0110", "CLI-003", "Invoice", -3, 30, "USD", "2999.99", "HF-7815"),
    ("F2026-0111", "CLI-003", "Invoice", 30, 30, "EUR", "640.00", "HF-7840"),
    ("F2026-0112", "CLI-004", "Invoice", -120, 60, "EUR", "6890.00", ""),
    ("F2026-0113", "CLI-004", "Invoice", -77, 60, "EUR", "2150.25", ""),
    ("F2026-0114", "CLI-004", "Invoice", -20, 60, "EUR", "1180.00", ""),
    ("F2026-0115", "CLI-005", "Invoice", -50, 60, "EUR", "12480.00", "4500123456"),
    ("F2026-0116", "CLI-005", "Invoice", -15, 60, "EUR", "3360.72", "4500123789"),
    ("F2026-0117", "CLI-005", "Invoice", 18, 60, "EUR", "8725.40", "4500124012"),
    ("F2026-0118", "CLI-005", "Invoice", 60, 60, "EUR", "2210.00", "4500124355"),
    ("F2026-0119", "CLI-006", "Invoice", -88, 45, "EUR", "5420.00", "NB-3310"),
    ("F2026-0120", "CLI-006", "Invoice", -35, 45, "EUR", "1875.30", "NB-3342"),
    ("F2026-0121", "CLI-006", "Invoice", -1, 45, "EUR", "960.00", "NB-3367"),
    ("F2026-0122", "CLI-006", "Invoice", 33, 45, "EUR", "2740.15", "NB-3391"),
    ("F2026-0123", "CLI-007", "Invoice", -25, 30, "EUR", "450.00", ""),
    ("F2026-0124", "CLI-007", "Invoice", 5, 30, "EUR", "612.90", ""),
    ("F2026-0125", "CLI-007", "Invoice", 36, 30, "EUR", "388.00", ""),
    ("F2026-0126", "CLI-008", "Invoice", -10, 30, "EUR", "265.40", ""),
    ("F2026-0127", "CLI-008", "Invoice", 15, 30, "EUR", "1190.00", ""),
    ("F2026-0128", "CLI-008", "Invoice", 52, 30, "EUR", "534.75", ""),
    ("F2026-0129", "CLI-001", "Invoice", -70, 30, "EUR", "95.20", "PO-ML-2102"),
    ("F2026-0130", "CLI-002", "Invoice", 0, 45, "EUR", "1740.00", ""),
    ("AV2026-0001", "CLI-006", "Credit note", -30, 0, "EUR", "320.00", "NB-3342"),
    ("AV2026-0002", "CLI-001", "Credit note", -5, 0, "EUR", "74.60", ""),
]

HEADER = [
    "Number",
    "Customer ref",
    "Kind",
    "Issue date",
    "Due date",
    "Currency",
    "Total",
    "PO number",
]


def write(path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Items"
    sheet.append(HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for number, customer, kind, due_in, terms, currency, total, po in ITEMS:
        due = REFERENCE_DATE + timedelta(days=due_in)
        issued = due - timedelta(days=terms)
        sheet.append([number, customer, kind, issued, due, currency, Decimal(total), po or None])
    for row in sheet.iter_rows(min_row=2):
        row[3].number_format = row[4].number_format = "DD/MM/YYYY"
        row[6].number_format = "#,##0.00"
    for letter, width in zip("ABCDEFGH", (14, 14, 12, 12, 12, 10, 12, 14), strict=True):
        sheet.column_dimensions[letter].width = width
    workbook.save(path)


if __name__ == "__main__":
    write(Path(__file__).resolve().parent / "items.xlsx")
