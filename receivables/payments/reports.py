"""What finance reads: online payments with their fees, payouts and allocations, the exceptions
to act on, payouts and their transactions, bank statements, and the accounting export."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook

from receivables.documents.cells import csv_cell, xlsx_cell
from receivables.errors import NotFound
from receivables.ledger.tables import Allocation, Customer, Item
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

EXPORT_COLUMNS = (
    "Date",
    "Payment intent",
    "Customer reference",
    "Customer",
    "Status",
    "Currency",
    "Gross",
    "Stripe fee",
    "Net",
    "Settlement currency",
    "Refunded",
    "Payout",
    "Invoice",
    "Allocated",
)


async def export_rows(date_from: date, date_to: date) -> list[list[Any]]:
    """One row per allocation (and one for what is unallocated) of the payments that
    succeeded in the range, amounts as exact decimals."""
    start = datetime.combine(date_from, time.min, tzinfo=UTC)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=UTC)
    rows = await _rows((OnlinePayment.succeeded_at >= start) & (OnlinePayment.succeeded_at < end))
    out: list[list[Any]] = []
    for p in sorted(rows, key=lambda r: (r.succeeded_at or r.created_at, r.id)):
        head = [
            (p.succeeded_at or p.created_at).date().isoformat(),
            p.intent_id,
            p.customer_ref,
            p.customer_name,
            p.status,
            p.asked.currency,
            p.gross.amount if p.gross else None,
            p.fee.amount if p.fee else None,
            p.net.amount if p.net else None,
            p.net.currency if p.net else "",
            p.refunded.amount if p.refunded else None,
            p.payout_id,
        ]
        active = [a for a in p.allocations if not a.reversed]
        for a in active:
            out.append([*head, a.number, a.amount.amount])
        allocated = sum((a.amount.minor for a in active), 0)
        if p.gross is not None:
            left = p.gross.minor - (p.refunded.minor if p.refunded else 0) - allocated
            if left > 0 or not active:
                out.append([*head, "", Money.from_minor(left, p.asked.currency).amount])
    return out


def _write_csv(out: IO[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])


def _write_xlsx(target: IO[bytes] | str, rows: list[list[Any]]) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Online payments")
    sheet.append([xlsx_cell(sheet, name) for name in EXPORT_COLUMNS])
    for row in rows:
        sheet.append(
            [xlsx_cell(sheet, v, "#,##0.00###" if hasattr(v, "as_tuple") else None) for v in row]
        )
    book.save(target)


def export_csv(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    _write_csv(buffer, rows)
    return buffer.getvalue().encode("utf-8-sig")


def export_xlsx(rows: list[list[Any]]) -> bytes:
    buffer = io.BytesIO()
    _write_xlsx(buffer, rows)
    return buffer.getvalue()


def export_file(rows: list[list[Any]], format: str) -> Path:
    """The export written to a temporary file (the caller streams it, then removes it): a
    100k-row workbook never sits in memory as bytes. Blocking: run it in a thread."""
    handle, name = tempfile.mkstemp(prefix="relance-export-", suffix=f".{format}")
    os.close(handle)
    path = Path(name)
    try:
        if format == "csv":
            with path.open("w", encoding="utf-8-sig", newline="") as out:
                _write_csv(out, rows)
        else:
            _write_xlsx(str(path), rows)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
