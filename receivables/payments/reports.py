"""What finance reads: online payments with their fees, payouts and allocations, the exceptions
to act on, payouts and their transactions, bank statements, and the accounting export."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook

from receivables.documents.cells import csv_cell, xlsx_cell
from receivables.errors import NotFound
from receivables.ledger.tables import Allocation, Customer, Item, Payment
from receivables.money import Money
from receivables.payments.tables import (
    BankLine,
    BankLineMatch,
    BankStatement,
    FinanceException,
    OnlinePayment,
    OnlinePaymentItem,
    PayoutTransaction,
    StripeEvent,
    StripePayout,
)

PAGE = 50


def _money(minor: int | None, currency: str) -> Money | None:
    return None if minor is None or not currency else Money.from_minor(int(minor), currency)


@dataclass
class AllocationLine:
    item_id: int
    number: str
    amount: Money
    reversed: bool


@dataclass
class OnlinePaymentRow:
    id: int
    key: str
    intent_id: str
    status: str
    created_at: datetime
    succeeded_at: datetime | None
    customer_id: int | None
    customer_name: str
    customer_ref: str
    asked: Money
    gross: Money | None
    fee: Money | None
    net: Money | None
    refunded: Money | None
    dispute_status: str
    payout_id: str
    failure_message: str
    ledger_payment: int | None
    allocations: list[AllocationLine] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    open_exceptions: int = 0


async def _rows(where: Any, limit: int | None = None) -> list[OnlinePaymentRow]:
    query = (
        OnlinePayment.select(
            *OnlinePayment.all_columns(),
            OnlinePayment.customer.name.as_alias("customer_name"),
            OnlinePayment.customer.ref.as_alias("customer_ref"),
            OnlinePayment.payout.payout_id.as_alias("stripe_payout"),
        )
        .where(where)
        .order_by(OnlinePayment.id, ascending=False)
    )
    if limit:
        query = query.limit(limit)
    raw = await query
    rows = []
    for r in raw:
        cur = r["currency"]
        settle = r["settlement_currency"] or cur
        succeeded = r["status"] == OnlinePayment.Status.succeeded.value
        rows.append(
            OnlinePaymentRow(
                id=r["id"],
                key=r["key"],
                intent_id=r["intent_id"] or "",
                status=r["status"],
                created_at=r["created_at"],
                succeeded_at=r["succeeded_at"],
                customer_id=r["customer"],
                customer_name=r["customer_name"] or "(unknown customer)",
                customer_ref=r["customer_ref"] or "",
                asked=Money.from_minor(int(r["amount_minor"]), cur),
                gross=_money(r["received_minor"], cur) if succeeded else None,
                fee=_money(r["fee_minor"], settle),
                net=_money(r["net_minor"], settle),
                refunded=_money(r["refunded_minor"] + r["dispute_lost_minor"], cur)
                if r["refunded_minor"] or r["dispute_lost_minor"]
                else None,
                dispute_status=r["dispute_status"],
                payout_id=r["stripe_payout"] or "",
                failure_message=r["failure_message"],
                ledger_payment=r["payment"],
            )
        )
    await _attach(rows)
    return rows


async def _attach(rows: list[OnlinePaymentRow]) -> None:
    """Allocations, selected items and open exceptions of the rows, in three queries."""
    if not rows:
        return
    by_payment = {r.ledger_payment: r for r in rows if r.ledger_payment}
    if by_payment:
        allocations = await Allocation.select(
            Allocation.payment,
            Allocation.item,
            Allocation.amount_minor,
            Allocation.reversed_at,
            Allocation.item.number.as_alias("number"),
            Allocation.item.currency.as_alias("currency"),
        ).where(Allocation.payment.is_in(list(by_payment)))
        for a in sorted(allocations, key=lambda a: a["number"]):
            by_payment[a["payment"]].allocations.append(
                AllocationLine(
                    a["item"],
                    a["number"],
                    Money.from_minor(int(a["amount_minor"]), a["currency"]),
                    a["reversed_at"] is not None,
                )
            )
    by_id = {r.id: r for r in rows}
    selected = await OnlinePaymentItem.select(
        OnlinePaymentItem.online_payment, OnlinePaymentItem.item.number.as_alias("number")
    ).where(OnlinePaymentItem.online_payment.is_in(list(by_id)))
    for s in selected:
        by_id[s["online_payment"]].selected.append(s["number"])
    flagged = await FinanceException.select(FinanceException.online_payment).where(
        FinanceException.online_payment.is_in(list(by_id)) & FinanceException.resolved_at.is_null()
    )
    for f in flagged:
        by_id[f["online_payment"]].open_exceptions += 1


async def online_payments(
    *, status: str = "", before: int | None = None
) -> tuple[list[OnlinePaymentRow], int | None]:
    """Attempts that reached Stripe, newest first (keyset pages); `status` filters."""
    where: Any = OnlinePayment.intent_id.is_not_null() | (
        OnlinePayment.status != OnlinePayment.Status.started.value
    )
    if status:
        where &= OnlinePayment.status == status
    if before:
        where &= OnlinePayment.id < before
    rows = await _rows(where, PAGE + 1)
    more = len(rows) > PAGE
    return rows[:PAGE], rows[PAGE - 1].id if more else None


@dataclass
class OnlinePaymentDetail:
    row: OnlinePaymentRow
    events: list[dict[str, Any]]
    exceptions: list[FinanceException]


async def online_payment(online_payment_id: int) -> OnlinePaymentDetail:
    rows = await _rows(OnlinePayment.id == online_payment_id)
    if not rows:
        raise NotFound(f"online payment {online_payment_id}")
    row = rows[0]
    events = []
    if row.intent_id and not row.intent_id.startswith("pending:"):
        events = await (
            StripeEvent.select(
                StripeEvent.event_id,
                StripeEvent.type,
                StripeEvent.created,
                StripeEvent.status,
                StripeEvent.attempts,
                StripeEvent.last_error,
            )
            .where(StripeEvent.object_id == row.intent_id)
            .order_by(StripeEvent.created)
        )
    exceptions = await FinanceException.objects().where(
        FinanceException.online_payment == online_payment_id
    )
    return OnlinePaymentDetail(row, events, exceptions)


@dataclass
class ExceptionRow:
    exception: FinanceException
    customer_name: str
    customer_id: int | None
    amount: Money | None
    online_payment_id: int | None
    payout_id: int | None


async def exceptions(*, resolved: bool = False) -> list[ExceptionRow]:
    where = (
        FinanceException.resolved_at.is_not_null()
        if resolved
        else FinanceException.resolved_at.is_null()
    )
    found = (
        await FinanceException.objects()
        .where(where)
        .order_by(FinanceException.id, ascending=False)
        .limit(500)
    )
    names = {}
    ids = {e.customer for e in found if e.customer}
    if ids:
        names = {
            c["id"]: c["name"]
            for c in await Customer.select(Customer.id, Customer.name).where(
                Customer.id.is_in(list(ids))
            )
        }
    return [
        ExceptionRow(
            e,
            names.get(e.customer, ""),
            e.customer,
            _money(e.amount_minor, e.currency),
            e.online_payment,
            e.payout,
        )
        for e in found
    ]


async def open_exception_count() -> int:
    return await FinanceException.count().where(FinanceException.resolved_at.is_null())


@dataclass
class PayoutRow:
    id: int
    payout_id: str
    status: str
    arrival_date: date | None
    amount: Money
    carried: Money
    transactions: int
    balanced: bool
    checked_at: datetime | None

    @property
    def difference(self) -> Money:
        return self.amount - self.carried


def _payout(r: dict[str, Any]) -> PayoutRow:
    return PayoutRow(
        r["id"],
        r["payout_id"],
        r["status"],
        r["arrival_date"],
        Money.from_minor(int(r["amount_minor"]), r["currency"]),
        Money.from_minor(int(r["transactions_net_minor"]), r["currency"]),
        r["transactions"],
        r["balanced"],
        r["checked_at"],
    )


async def payouts() -> list[PayoutRow]:
    rows = await StripePayout.select().order_by(StripePayout.id, ascending=False).limit(200)
    return [_payout(r) for r in rows]


@dataclass
class PayoutTransactionRow:
    txn_id: str
    type: str
    source_id: str
    amount: Money
    fee: Money
    net: Money
    online_payment_id: int | None
    customer_name: str


async def payout(payout_row_id: int) -> tuple[PayoutRow, list[PayoutTransactionRow]]:
    row = await StripePayout.select().where(StripePayout.id == payout_row_id).first()
    if row is None:
        raise NotFound(f"payout {payout_row_id}")
    txns = (
        await PayoutTransaction.select(
            *PayoutTransaction.all_columns(),
            PayoutTransaction.online_payment.customer.name.as_alias(  # type: ignore[union-attr]
                "customer_name"
            ),
        )
        .where(PayoutTransaction.payout == payout_row_id)
        .order_by(PayoutTransaction.id)
    )
    return _payout(row), [
        PayoutTransactionRow(
            t["txn_id"],
            t["type"],
            t["source_id"],
            Money.from_minor(int(t["amount_minor"]), t["currency"]),
            Money.from_minor(int(t["fee_minor"]), t["currency"]),
            Money.from_minor(int(t["net_minor"]), t["currency"]),
            t["online_payment"],
            t["customer_name"] or "",
        )
        for t in txns
    ]


# ------------------------------------------------------------------ bank statements


async def statements() -> list[dict[str, Any]]:
    rows = await BankStatement.select().order_by(BankStatement.id, ascending=False).limit(100)
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if rows:
        for line in await BankLine.select(BankLine.statement, BankLine.status).where(
            BankLine.statement.is_in([r["id"] for r in rows])
        ):
            counts[line["statement"]][line["status"]] += 1
    return [{**r, "counts": dict(counts[r["id"]])} for r in rows]


@dataclass
class BankLineRow:
    line: BankLine
    amount: Money
    customer_name: str
    customer_ref: str
    matches: list[tuple[str, Money, int]]
    """(invoice number, amount, item id)"""


async def bank_lines(*, statement_id: int | None = None, status: str = "") -> list[BankLineRow]:
    where: Any = BankLine.id > 0
    if statement_id is not None:
        where &= BankLine.statement == statement_id
    if status:
        where &= BankLine.status == status
    lines = await BankLine.objects().where(where).order_by(BankLine.id).limit(1000)
    return await _bank_rows(lines)


async def _bank_rows(lines: list[BankLine]) -> list[BankLineRow]:
    if not lines:
        return []
    ids = [line.id for line in lines]
    matches: dict[int, list[tuple[str, Money, int]]] = defaultdict(list)
    for m in await BankLineMatch.select(
        BankLineMatch.line,
        BankLineMatch.item,
        BankLineMatch.amount_minor,
        BankLineMatch.item.number.as_alias("number"),
        BankLineMatch.item.currency.as_alias("currency"),
    ).where(BankLineMatch.line.is_in(ids)):
        matches[m["line"]].append(
            (m["number"], Money.from_minor(int(m["amount_minor"]), m["currency"]), m["item"])
        )
    customers = {line.customer for line in lines if line.customer}
    names = {}
    if customers:
        names = {
            c["id"]: (c["name"], c["ref"])
            for c in await Customer.select(Customer.id, Customer.name, Customer.ref).where(
                Customer.id.is_in(list(customers))
            )
        }
    return [
        BankLineRow(
            line,
            Money.from_minor(line.amount_minor, line.currency),
            names.get(line.customer, ("", ""))[0],
            names.get(line.customer, ("", ""))[1],
            matches[line.id],
        )
        for line in lines
    ]


async def bank_line(line_id: int) -> BankLineRow:
    line = await BankLine.objects().get(BankLine.id == line_id)
    if line is None:
        raise NotFound(f"bank line {line_id}")
    return (await _bank_rows([line]))[0]


@dataclass
class Candidate:
    id: int
    number: str
    due_date: date
    open: Money
    proposed: bool


async def candidates(line: BankLine, customer_id: int | None) -> list[Candidate]:
    """The customer's open invoices in the line's currency, for finance to choose from."""
    if customer_id is None:
        return []
    proposed = {
        r["item"]
        for r in await BankLineMatch.select(BankLineMatch.item).where(BankLineMatch.line == line.id)
    }
    rows = (
        await Item.select(Item.id, Item.number, Item.due_date, Item.open_minor)
        .where(
            (Item.customer == customer_id)
            & (Item.kind == "invoice")
            & (Item.currency == line.currency)
            & (Item.open_minor > 0)
        )
        .order_by(Item.due_date)
    )
    return [
        Candidate(
            r["id"],
            r["number"],
            r["due_date"],
            Money.from_minor(int(r["open_minor"]), line.currency),
            r["id"] in proposed,
        )
        for r in rows
    ]


async def customer_by_ref(company_id: int, ref: str) -> Customer | None:
    return await Customer.objects().get((Customer.company == company_id) & (Customer.ref == ref))


# ------------------------------------------------------------------ accounting export

PAYMENT_COLUMNS = (
    "Received",
    "Payment",
    "Method",
    "Customer reference",
    "Customer",
    "Currency",
    "Amount",
    "Applied",
    "Unapplied",
    "Refunded",
    "Stripe payment intent",
    "Stripe fee",
    "Net",
    "Settlement currency",
    "Payout",
    "Bank line",
)
ALLOCATION_COLUMNS = (
    "Payment",
    "Received",
    "Customer reference",
    "Invoice",
    "Currency",
    "Allocated",
    "Applied on",
)
EXPORT_COLUMNS = PAYMENT_COLUMNS
SHEETS = {
    "payments": ("Payments", PAYMENT_COLUMNS),
    "allocations": ("Allocations", ALLOCATION_COLUMNS),
}

_EXPORT_SQL = (
    # Money received: every ledger payment but the non-cash ones (credit notes applied,
    # write-offs, a credit note deducted from a card payment).
    "SELECT p.id, p.ref, p.received_on, p.method, p.currency, p.amount_minor, "
    "p.unapplied_minor, c.ref AS customer_ref, c.name AS customer_name, op.intent_id, "
    "op.fee_minor, op.net_minor, op.settlement_currency, op.refunded_minor, "
    "op.dispute_lost_minor, sp.payout_id, bl.id AS bank_line "
    "FROM payment p JOIN customer c ON c.id = p.customer "
    "LEFT JOIN online_payment op ON op.payment = p.id "
    "LEFT JOIN stripe_payout sp ON sp.id = op.payout "
    "LEFT JOIN bank_line bl ON bl.payment = p.id "
    "WHERE p.received_on >= {} AND p.received_on <= {} AND p.method NOT IN ({}, {}) "
    "AND NOT EXISTS (SELECT 1 FROM online_payment_item oi WHERE oi.offset_payment = p.id) "
    "ORDER BY p.received_on, p.id"
)


_ALLOCATIONS_SQL = (
    # The active allocations of the payments received in the range, in one statement.
    "SELECT a.payment, a.amount_minor, a.created_at, i.number FROM allocation a "
    "JOIN payment p ON p.id = a.payment JOIN item i ON i.id = a.item "
    "WHERE p.received_on >= {} AND p.received_on <= {} AND a.reversed_at IS NULL "
    "ORDER BY a.id"
)


@dataclass
class Export:
    """The accounting export: one row per payment received, its allocations on their own
    sheet (amounts never repeated, so each sheet sums)."""

    payments: list[list[Any]]
    allocations: list[list[Any]]

    def sheet(self, name: str) -> list[list[Any]]:
        return self.allocations if name == "allocations" else self.payments


def _day(value: Any) -> date:
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


async def export_rows(date_from: date, date_to: date) -> Export:
    """Payments received in the range (card, bank transfers, API and imported payments), as
    exact decimals, and the active allocations of each."""
    rows = await Allocation.raw(
        _EXPORT_SQL,
        date_from,
        date_to,
        Payment.Method.credit_note.value,
        Payment.Method.write_off.value,
    )
    payments: list[list[Any]] = []
    by_id: dict[int, dict[str, Any]] = {}
    for r in rows:
        cur = r["currency"]
        settlement = r["settlement_currency"] or ""
        refunded = int(r["refunded_minor"] or 0) + int(r["dispute_lost_minor"] or 0)
        amount = int(r["amount_minor"])
        unapplied = int(r["unapplied_minor"])
        fee, net = _money(r["fee_minor"], settlement), _money(r["net_minor"], settlement)
        by_id[int(r["id"])] = r
        payments.append(
            [
                _day(r["received_on"]).isoformat(),
                r["ref"],
                r["method"],
                r["customer_ref"],
                r["customer_name"],
                cur,
                Money.from_minor(amount, cur).amount,
                Money.from_minor(amount - unapplied, cur).amount,
                Money.from_minor(unapplied, cur).amount,
                Money.from_minor(refunded, cur).amount if r["intent_id"] else None,
                r["intent_id"] or "",
                fee.amount if fee else None,
                net.amount if net else None,
                settlement,
                r["payout_id"] or "",
                f"BANK-{r['bank_line']}" if r["bank_line"] else "",
            ]
        )
    applied: dict[int, list[list[Any]]] = defaultdict(list)
    rows = await Allocation.raw(_ALLOCATIONS_SQL, date_from, date_to)
    for a in rows:
        p = by_id.get(int(a["payment"]))
        if p is None:  # a non-cash payment's: not exported
            continue
        made = a["created_at"]
        applied[int(a["payment"])].append(
            [
                p["ref"],
                _day(p["received_on"]).isoformat(),
                p["customer_ref"],
                a["number"],
                p["currency"],
                Money.from_minor(int(a["amount_minor"]), p["currency"]).amount,
                made.date().isoformat() if isinstance(made, datetime) else str(made)[:10],
            ]
        )
    ids = list(by_id)
    return Export(payments, [row for pid in ids for row in applied.get(pid, [])])


def _write_csv(out: IO[str], rows: list[list[Any]], columns: tuple[str, ...]) -> None:
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])


def _write_xlsx(target: IO[bytes] | str, export: Export) -> None:
    book = Workbook(write_only=True)
    for key, (title, columns) in SHEETS.items():
        sheet = book.create_sheet(title)
        sheet.append([xlsx_cell(sheet, name) for name in columns])
        for row in export.sheet(key):
            sheet.append(
                [
                    xlsx_cell(sheet, v, "#,##0.00###" if hasattr(v, "as_tuple") else None)
                    for v in row
                ]
            )
    book.save(target)


def export_csv(export: Export, sheet: str = "payments") -> bytes:
    buffer = io.StringIO()
    _write_csv(buffer, export.sheet(sheet), SHEETS.get(sheet, SHEETS["payments"])[1])
    return buffer.getvalue().encode("utf-8-sig")


def export_xlsx(export: Export) -> bytes:
    buffer = io.BytesIO()
    _write_xlsx(buffer, export)
    return buffer.getvalue()


def export_file(export: Export, format: str, sheet: str = "payments") -> Path:
    """The export written to a temporary file (the caller streams it, then removes it): a
    100k-row workbook never sits in memory as bytes. Blocking: run it in a thread. A CSV
    holds one sheet (payments, or allocations); the workbook both."""
    handle, name = tempfile.mkstemp(prefix="relance-export-", suffix=f".{format}")
    os.close(handle)
    path = Path(name)
    try:
        if format == "csv":
            with path.open("w", encoding="utf-8-sig", newline="") as out:
                _write_csv(out, export.sheet(sheet), SHEETS.get(sheet, SHEETS["payments"])[1])
        else:
            _write_xlsx(str(path), export)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
