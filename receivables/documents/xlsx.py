"""The statement of account as an XLSX workbook (openpyxl write-only: flat memory).

One sheet per currency; dates are dates, amounts are numbers in the currency's format;
the header row is frozen and filtered; a totals block follows the rows. Totals are written
as values from the statement (never formulas), so they read back identical to the page.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from babel import Locale
from babel.numbers import get_currency_symbol
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from receivables.documents.cells import xlsx_cell
from receivables.i18n import N_
from receivables.ledger.statement import OpenItem, Statement
from receivables.money import Money, exponent

HEADER_ROW = 4
COLUMNS = (
    (N_("Type"), 14),
    (N_("Number"), 16),
    (N_("Issue date"), 12),
    (N_("Due date"), 12),
    (N_("Days late"), 10),
    (N_("Amount"), 16),
    (N_("Open amount"), 16),
    (N_("Status"), 34),
    (N_("PO number"), 16),
)
_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="1F4F8B")
_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=14)


def money_format(currency: str, locale: str | Locale) -> str:
    decimals = exponent(currency)
    digits = "#,##0" + ("." + "0" * decimals if decimals else "")
    symbol = get_currency_symbol(currency, locale=locale).replace('"', "")
    return f'{digits} "{symbol}";-{digits} "{symbol}"'


def date_format(locale: str | Locale) -> str:
    return "mm/dd/yyyy" if str(locale) == "en_US" else "dd/mm/yyyy"


def _text(value: str) -> str:
    return ILLEGAL_CHARACTERS_RE.sub("", value)


def statement_xlsx(
    statement: Statement,
    *,
    _: Callable[..., str],
    locale: str | Locale,
    status_of: Callable[[OpenItem], str],
    type_of: Callable[[str], str],
) -> bytes:
    """The workbook's bytes. `t` translates, `status_of` labels an item as the page does."""
    wb = Workbook(write_only=True)
    currencies = statement.currencies or [statement.company.currency]
    several = len(currencies) > 1
    for cur in currencies:
        title = _("Statement") + f" {cur}" if not several else cur
        ws = wb.create_sheet(title=_text(title)[:31])
        for index, (_name, width) in enumerate(COLUMNS, start=1):
            ws.column_dimensions[get_column_letter(index)].width = width
        ws.freeze_panes = f"A{HEADER_ROW + 1}"
        _write_sheet(ws, statement, cur, _=_, locale=locale, status_of=status_of, type_of=type_of)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _write_sheet(ws, statement: Statement, cur: str, *, _, locale, status_of, type_of) -> None:
    amount_fmt = money_format(cur, locale)
    day_fmt = date_format(locale)

    def cell(value, fmt=None, **style):
        if isinstance(value, str):
            value = _text(value)
        return xlsx_cell(ws, value, fmt, **style)

    def amount(m: Money, negative: bool = False, **style):
        return cell(-m.amount if negative else m.amount, amount_fmt, **style)

    title = _("Statement of account") + f" · {statement.customer.name}"
    ws.append([cell(title, font=_TITLE)])
    ws.append(
        [
            cell(statement.company.name),
            cell(_("As of")),
            cell(statement.on, day_fmt, alignment=Alignment(horizontal="left")),
            cell(_("Currency")),
            cell(cur),
        ]
    )
    ws.append([])
    ws.append([cell(_(name), font=_HEADER_FONT, fill=_HEADER_FILL) for name, _width in COLUMNS])

    rows = 0
    for item in (i for i in statement.invoices if i.currency == cur):
        ws.append(
            [
                cell(type_of(item.kind)),
                cell(item.number),
                cell(item.issue_date, day_fmt),
                cell(item.due_date, day_fmt),
                cell(item.days_late),
                amount(item.total),
                amount(item.open),
                cell(status_of(item)),
                cell(item.po_number),
            ]
        )
        rows += 1
    for item in (i for i in statement.credit_notes if i.currency == cur):
        ws.append(
            [
                cell(type_of(item.kind)),
                cell(item.number),
                cell(item.issue_date, day_fmt),
                cell(item.due_date, day_fmt),
                cell(None),
                amount(item.total, negative=True),
                amount(item.open, negative=True),
                cell(status_of(item)),
                cell(item.po_number),
            ]
        )
        rows += 1
    for pay in (p for p in statement.unapplied_payments if p.unapplied.currency == cur):
        ws.append(
            [
                cell(type_of("payment")),
                cell(pay.ref),
                cell(pay.received_on, day_fmt),
                cell(None),
                cell(None),
                amount(pay.amount, negative=True),
                amount(pay.unapplied, negative=True),
                cell(_("Received, not yet matched to invoices")),
                cell(""),
            ]
        )
        rows += 1
    last = HEADER_ROW + max(rows, 1)
    ws.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(len(COLUMNS))}{last}"

    totals = statement.totals.get(cur)
    if totals is None:
        return
    ws.append([])
    for label, value, style in (
        (_("Overdue"), totals.overdue, {}),
        (_("Coming due"), totals.not_due, {}),
        (_("Credit notes and payments"), -totals.credits, {}),
        (_("Total open"), totals.open, {"font": _BOLD}),
    ):
        ws.append([None, None, None, None, None, cell(label, **style), amount(value, **style)])


async def statement_xlsx_async(statement: Statement, **kw) -> bytes:
    """`statement_xlsx` in a worker thread: openpyxl is blocking CPU work."""
    import functools

    import anyio.to_thread

    return await anyio.to_thread.run_sync(functools.partial(statement_xlsx, statement, **kw))
