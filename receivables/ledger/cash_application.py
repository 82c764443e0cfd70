"""Cash application: money received but not applied yet (what is left of a payment, the open
amount of a credit note) applied by finance to chosen invoices of the same customer and
currency, taken back with a reason, and small remainders written off under the company's
tolerance.

Everything moves through `receivables.ledger.allocations` (its guarded UPDATEs keep
`open = total - active allocations` and `unapplied = amount - active allocations`), in one
transaction with the history, the account's lock taken first (docs/HISTORY.md). A credit note
is applied through its carrier: one non-cash payment (method `credit_note`, `Payment.credit_note`
set) that takes from the credit note what it gives to invoices, and gives it back when an
allocation of it is reversed. A write-off is a non-cash payment (method `write_off`) allocated
to the invoice, which is then `written_off`: the open amount stays in step with allocations,
so an ERP re-sending the invoice does not re-open it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from receivables import history
from receivables.clock import today_in
from receivables.db import atomic
from receivables.errors import FieldProblem, InvalidInput, NotFound
from receivables.history import Actor
from receivables.ledger import allocations
from receivables.ledger.tables import (
    Allocation,
    Company,
    Item,
    ItemKind,
    ItemStatus,
    Payment,
)
from receivables.money import (
    Money,
    MoneyError,
    NotTypedAmount,
    format_minor,
    parse_typed_minor,
)

PAYMENT = "payment"
CREDIT_NOTE = "credit_note"
SOURCES = (PAYMENT, CREDIT_NOTE)
NON_CASH = (Payment.Method.credit_note.value, Payment.Method.write_off.value)
"""Payment methods that are not money received (kept out of the payments list and exports)."""

_CLOSED = (ItemStatus.cancelled.value, ItemStatus.written_off.value)


def _day(value: Any) -> date:
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


@dataclass(frozen=True)
class Unapplied:
    """Money of a customer not applied to invoices yet: a payment's remainder or an open
    credit note."""

    kind: str
    id: int
    ref: str
    on: date
    method: str
    company_id: int
    customer_id: int
    customer_ref: str
    customer_name: str
    amount: Money
    left: Money

    @property
    def label(self) -> str:
        return f"Credit note {self.ref}" if self.kind == CREDIT_NOTE else f"Payment {self.ref}"


_UNAPPLIED_SQL = (
    "SELECT 'payment' AS kind, p.id, p.ref, p.received_on AS on_date, p.method, "
    "p.company, p.customer, c.ref AS customer_ref, c.name AS customer_name, p.currency, "
    "p.amount_minor AS amount, p.unapplied_minor AS remainder "
    "FROM payment p JOIN customer c ON c.id = p.customer "
    "WHERE p.unapplied_minor > 0 AND p.method NOT IN ({}, {}) {payment_filter}"
    "UNION ALL "
    "SELECT 'credit_note' AS kind, i.id, i.number AS ref, i.issue_date AS on_date, '' AS method, "
    "i.company, i.customer, c.ref AS customer_ref, c.name AS customer_name, i.currency, "
    "i.total_minor AS amount, i.open_minor AS remainder "
    "FROM item i JOIN customer c ON c.id = i.customer "
    "WHERE i.kind = {} AND i.open_minor > 0 AND i.status <> {} {item_filter}"
)


def _unapplied(r: dict[str, Any]) -> Unapplied:
    currency = r["currency"]
    return Unapplied(
        kind=r["kind"],
        id=int(r["id"]),
        ref=r["ref"],
        on=_day(r["on_date"]),
        method=r["method"],
        company_id=int(r["company"]),
        customer_id=int(r["customer"]),
        customer_ref=r["customer_ref"],
        customer_name=r["customer_name"],
        amount=Money.from_minor(int(r["amount"]), currency),
        left=Money.from_minor(int(r["remainder"]), currency),
    )


async def unapplied_money(
    *, customer_id: int | None = None, limit: int | None = None
) -> list[Unapplied]:
    """Payment remainders and open credit notes, by customer (name), oldest first; at most
    `limit` of them."""
    args: list[Any] = [*NON_CASH]
    payment_filter = item_filter = ""
    if customer_id is not None:
        payment_filter, item_filter = "AND p.customer = {} ", "AND i.customer = {}"
        args.append(customer_id)
    args += [ItemKind.credit_note.value, ItemStatus.cancelled.value]
    if customer_id is not None:
        args.append(customer_id)
    sql = _UNAPPLIED_SQL.replace("{payment_filter}", payment_filter).replace(
        "{item_filter}", item_filter
    )
    # By position: SQLite matches a compound SELECT's ORDER BY names only to plain aliases.
    sql += " ORDER BY 9, 7, 4, 1, 2"  # customer name, customer, date, kind, id
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_unapplied(r) for r in await Payment.raw(sql, *args)]


async def source(kind: str, source_id: int) -> Unapplied:
    """One payment or credit note as the cash application sees it (even when fully applied)."""
    if kind == PAYMENT:
        sql = (
            "SELECT 'payment' AS kind, p.id, p.ref, p.received_on AS on_date, p.method, "
            "p.company, p.customer, c.ref AS customer_ref, c.name AS customer_name, "
            "p.currency, p.amount_minor AS amount, p.unapplied_minor AS remainder "
            "FROM payment p JOIN customer c ON c.id = p.customer WHERE p.id = {}"
        )
    elif kind == CREDIT_NOTE:
        sql = (
            "SELECT 'credit_note' AS kind, i.id, i.number AS ref, i.issue_date AS on_date, "
            "'' AS method, i.company, i.customer, c.ref AS customer_ref, "
            "c.name AS customer_name, i.currency, i.total_minor AS amount, "
            "i.open_minor AS remainder FROM item i JOIN customer c ON c.id = i.customer "
            "WHERE i.id = {} AND i.kind = 'credit_note' AND i.status <> 'cancelled'"
        )
    else:
        raise NotFound(f"{kind} {source_id}")
    rows = await Payment.raw(sql, source_id)
    if not rows:
        raise NotFound(f"{kind} {source_id}")
    return _unapplied(rows[0])


@dataclass(frozen=True)
class OpenInvoice:
    id: int
    number: str
    issue_date: date
    due_date: date
    total: Money
    open: Money
    proposed: Money
    """Oldest first: what the money would pay of it if applied in full."""


@dataclass(frozen=True)
class AppliedPart:
    """An active allocation of the money, which finance may take back."""

    allocation_id: int
    item_id: int
    item_number: str
    amount: Money
    created_at: datetime


@dataclass(frozen=True)
class Proposal:
    money: Unapplied
    invoices: list[OpenInvoice]
    applied: list[AppliedPart]


async def _open_invoices(customer_id: int, currency: str) -> list[Item]:
    return await (
        Item.objects()
        .where(
            (Item.customer == customer_id)
            & (Item.kind == ItemKind.invoice.value)
            & (Item.currency == currency)
            & (Item.open_minor > 0)
            & Item.status.not_in(list(_CLOSED))
        )
        .order_by(Item.due_date)
        .order_by(Item.issue_date)
        .order_by(Item.id)
    )


async def carrier_of(credit_note_id: int) -> Payment | None:
    return await Payment.objects().get(
        (Payment.credit_note == credit_note_id)
        & (Payment.method == Payment.Method.credit_note.value)
    )


async def applied_parts(money: Unapplied) -> list[AppliedPart]:
    payment_id: int | None = money.id
    if money.kind == CREDIT_NOTE:
        carrier = await carrier_of(money.id)
        payment_id = carrier.id if carrier else None
    if payment_id is None:
        return []
    rows = (
        await Allocation.select(
            Allocation.id,
            Allocation.item,
            Allocation.item.number.as_alias("number"),
            Allocation.amount_minor,
            Allocation.created_at,
        )
        .where((Allocation.payment == payment_id) & Allocation.reversed_at.is_null())
        .order_by(Allocation.id)
    )
    return [
        AppliedPart(
            r["id"],
            r["item"],
            r["number"],
            Money.from_minor(int(r["amount_minor"]), money.left.currency),
            r["created_at"],
        )
        for r in rows
    ]


async def proposal(kind: str, source_id: int) -> Proposal:
    """The money, the customer's open invoices in its currency oldest first with what it would
    pay of each, and what it already pays."""
    money = await source(kind, source_id)
    currency = money.left.currency
    left = money.left.minor
    invoices = []
    for item in await _open_invoices(money.customer_id, currency):
        take = min(left, item.open_minor)
        left -= take
        invoices.append(
            OpenInvoice(
                item.id,
                item.number,
                _day(item.issue_date),
                _day(item.due_date),
                Money.from_minor(item.total_minor, currency),
                Money.from_minor(item.open_minor, currency),
                Money.from_minor(take, currency),
            )
        )
    return Proposal(money, invoices, await applied_parts(money))


def read_amount(text: str, currency: str, field: str) -> tuple[int | None, FieldProblem | None]:
    """An amount typed in a form: digits and at most one '.' with the currency's decimals;
    empty is none. ("1,000" is ambiguous and refused rather than guessed.)"""
    try:
        return parse_typed_minor(text, currency), None
    except NotTypedAmount:
        return None, FieldProblem(field, f"an amount in {currency} like 120 or 120.50")
    except MoneyError as exc:
        return None, FieldProblem(field, str(exc))


async def apply(kind: str, source_id: int, amounts: dict[int, str], actor: Actor) -> list[int]:
    """Apply the money to the invoices, each the amount typed (empty or 0: not this one).

    Checked to the cent before anything is written: each amount at most the invoice's open
    amount, together at most what is left of the money; InvalidInput names each bad field
    (`amount_<invoice id>`, or `total`). One transaction: all or nothing. Returns the
    allocation ids.
    """
    money = await source(kind, source_id)
    if money.method in NON_CASH:  # a carrier or a write-off: not money to apply
        raise InvalidInput.one("total", f"{money.label} is not money received")
    currency = money.left.currency
    invoices = {i.id: i for i in await _open_invoices(money.customer_id, currency)}
    problems: list[FieldProblem] = []
    plan: list[tuple[Item, int]] = []
    for item_id, text in amounts.items():
        field = f"amount_{item_id}"
        minor, problem = read_amount(text, currency, field)
        if problem is not None:
            problems.append(problem)
            continue
        if not minor:
            continue
        item = invoices.get(item_id)
        if item is None:
            problems.append(
                FieldProblem(field, "not an open invoice of this customer in " + currency)
            )
        elif minor > item.open_minor:
            problems.append(
                FieldProblem(
                    field,
                    f"only {format_minor(item.open_minor, currency)} open",
                )
            )
        else:
            plan.append((item, minor))
    total = sum(m for _, m in plan)
    if not problems and not plan:
        problems.append(FieldProblem("total", "enter an amount for at least one invoice"))
    if total > money.left.minor:
        problems.append(
            FieldProblem(
                "total",
                f"{format_minor(total, currency)} is more than the "
                f"{format_minor(money.left.minor, currency)} left of {money.label}",
            )
        )
    if problems:
        raise InvalidInput(problems)
    plan.sort(key=lambda p: (p[0].due_date, p[0].issue_date, p[0].id))
    async with atomic():
        # Chain before rows: the account's history lock before the first guarded UPDATE.
        await history.lock_accounts([money.customer_id], company_id=money.company_id)
        payment_id = money.id
        if kind == CREDIT_NOTE:
            payment_id = await _draw_on_credit_note(money, total, [i for i, _ in plan], actor)
        made = []
        for item, minor in plan:
            made.append(
                await allocations.allocate(
                    payment_id, item.id, Money.from_minor(minor, currency), actor
                )
            )
        return made


async def _draw_on_credit_note(
    money: Unapplied, total: int, invoices: list[Item], actor: Actor
) -> int:
    """Move `total` from the credit note's open amount to its carrier payment (made on first
    use); returns the carrier's id. The caller holds the account's lock."""
    currency = money.left.currency
    taken = (
        await Item.update({Item.open_minor: Item.open_minor - total})
        .where((Item.id == money.id) & (Item.open_minor >= total))
        .returning(Item.open_minor)
    )
    if not taken:
        raise InvalidInput.one(
            "total", f"credit note {money.ref} has less than {format_minor(total, currency)} open"
        )
    if taken[0]["open_minor"] == 0:
        await Item.update({Item.status: ItemStatus.paid.value}).where(Item.id == money.id)
    carrier = await carrier_of(money.id)
    if carrier is None:
        rows = await Payment.insert(
            Payment(
                company=money.company_id,
                customer=money.customer_id,
                ref=f"Credit note {money.ref}"[:64],
                received_on=money.on,
                method=Payment.Method.credit_note.value,
                currency=currency,
                amount_minor=total,
                unapplied_minor=total,
                credit_note=money.id,
            )
        ).returning(Payment.id)
        carrier_id = int(rows[0]["id"])
    else:
        carrier_id = carrier.id
        await Payment.update(
            {
                Payment.amount_minor: Payment.amount_minor + total,
                Payment.unapplied_minor: Payment.unapplied_minor + total,
            }
        ).where(Payment.id == carrier_id)
    await history.record(
        company_id=money.company_id,
        actor=actor,
        kind="credit_note.applied",
        customer_id=money.customer_id,
        item_id=money.id,
        details={
            "credit_note": money.ref,
            "amount": str(Money.from_minor(total, currency).amount),
            "currency": currency,
            "invoices": [i.number for i in invoices],
            "credit_note_open_after": str(
                Money.from_minor(int(taken[0]["open_minor"]), currency).amount
            ),
        },
    )
    return carrier_id


async def take_back(allocation_id: int, reason: str, actor: Actor) -> None:
    """Reverse an allocation, with the reason, in the history: the invoice re-opens; a
    payment's money is free again, a credit note's goes back to the credit note, a write-off
    is undone."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "say why it is taken back")
    row = (
        await Allocation.select(
            Allocation.amount_minor,
            Allocation.item,
            Allocation.payment,
            Allocation.payment.method.as_alias("method"),
            Allocation.payment.credit_note.as_alias("credit_note"),
            Allocation.payment.customer.as_alias("customer"),
            Allocation.payment.company.as_alias("company"),
            Allocation.payment.currency.as_alias("currency"),
        )
        .where((Allocation.id == allocation_id) & Allocation.reversed_at.is_null())
        .first()
    )
    if row is None:
        raise NotFound(f"active allocation {allocation_id}")
    minor = int(row["amount_minor"])
    currency = row["currency"]
    async with atomic():
        await history.lock_accounts([row["customer"]], company_id=row["company"])
        await allocations.reverse(allocation_id, actor, reason[:500])
        if row["method"] in NON_CASH:
            # Not money: what the allocation gave leaves the carrier too.
            await Payment.update(
                {
                    Payment.amount_minor: Payment.amount_minor - minor,
                    Payment.unapplied_minor: Payment.unapplied_minor - minor,
                }
            ).where((Payment.id == row["payment"]) & (Payment.unapplied_minor >= minor))
        if row["method"] == Payment.Method.credit_note.value and row["credit_note"]:
            note = await Item.objects().get(Item.id == row["credit_note"])
            assert note is not None
            await Item.update(
                {
                    Item.open_minor: Item.open_minor + minor,
                    Item.status: ItemStatus.open.value
                    if note.status == ItemStatus.paid.value
                    else note.status,
                }
            ).where(Item.id == note.id)
            await history.record(
                company_id=row["company"],
                actor=actor,
                kind="credit_note.restored",
                customer_id=row["customer"],
                item_id=note.id,
                details={
                    "credit_note": note.number,
                    "amount": str(Money.from_minor(minor, currency).amount),
                    "currency": currency,
                    "reason": reason[:500],
                },
            )
        elif row["method"] == Payment.Method.write_off.value:
            await Item.update({Item.status: ItemStatus.open.value}).where(
                (Item.id == row["item"]) & (Item.status == ItemStatus.written_off.value)
            )
            item = await Item.objects().get(Item.id == row["item"])
            assert item is not None
            await history.record(
                company_id=row["company"],
                actor=actor,
                kind="write_off.reversed",
                customer_id=row["customer"],
                item_id=item.id,
                details={
                    "item": item.number,
                    "amount": str(Money.from_minor(minor, currency).amount),
                    "currency": currency,
                    "reason": reason[:500],
                },
            )


# ------------------------------------------------------------------ small remainders


@dataclass(frozen=True)
class SmallRemainder:
    """A partly paid invoice whose remainder is within its company's write-off tolerance."""

    item_id: int
    number: str
    due_date: date
    customer_id: int
    customer_ref: str
    customer_name: str
    total: Money
    open: Money
    tolerance: Money


def within_tolerance(open_minor: int, total_minor: int, tolerance_minor: int) -> bool:
    """The one rule: something was paid and at most the tolerance is left (0: never)."""
    return 0 < open_minor <= tolerance_minor and open_minor < total_minor


async def small_remainders(*, customer_id: int | None = None) -> list[SmallRemainder]:
    """Invoices the run no longer chases and finance may write off, oldest first."""
    where = ["i.kind = {}", "i.open_minor > 0", "i.open_minor < i.total_minor"]
    args: list[Any] = [ItemKind.invoice.value]
    where.append("i.open_minor <= co.writeoff_tolerance_minor")
    where.append("i.currency = co.currency")
    where.append("i.status NOT IN ({}, {})")
    args += list(_CLOSED)
    if customer_id is not None:
        where.append("i.customer = {}")
        args.append(customer_id)
    rows = await Item.raw(
        "SELECT i.id, i.number, i.due_date, i.currency, i.total_minor, i.open_minor, "  # noqa: S608
        "i.customer, c.ref AS customer_ref, c.name AS customer_name, "
        "co.writeoff_tolerance_minor AS tolerance FROM item i "
        "JOIN customer c ON c.id = i.customer JOIN company co ON co.id = i.company "
        f"WHERE {' AND '.join(where)} ORDER BY i.due_date, i.id",
        *args,
    )
    return [
        SmallRemainder(
            int(r["id"]),
            r["number"],
            _day(r["due_date"]),
            int(r["customer"]),
            r["customer_ref"],
            r["customer_name"],
            Money.from_minor(int(r["total_minor"]), r["currency"]),
            Money.from_minor(int(r["open_minor"]), r["currency"]),
            Money.from_minor(int(r["tolerance"]), r["currency"]),
        )
        for r in rows
    ]


async def write_off(item_id: int, reason: str, actor: Actor) -> int:
    """Close a small remainder as written off (a non-cash payment allocated to it), with the
    reason, in the history. Refused unless it is within the company's tolerance."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "say why it is written off")
    item = await Item.objects().get(Item.id == item_id)
    if item is None or item.kind != ItemKind.invoice.value:
        raise NotFound(f"invoice {item_id}")
    company = await Company.objects().get(Company.id == item.company)
    assert company is not None
    async with atomic():
        await history.lock_accounts([item.customer], company_id=item.company)
        item = await Item.objects().get(Item.id == item_id)
        assert item is not None
        tolerance = int(company.writeoff_tolerance_minor or 0)
        if (
            item.status in _CLOSED
            or item.currency != company.currency
            or not within_tolerance(item.open_minor, item.total_minor, tolerance)
        ):
            raise InvalidInput.one(
                "item",
                f"{item.number} has {format_minor(item.open_minor, item.currency)} open; only "
                "a remainder after a payment of at most the write-off tolerance "
                f"({format_minor(tolerance, company.currency)}) can be written off",
            )
        minor = item.open_minor
        count = await Payment.count().where(
            (Payment.company == item.company) & Payment.ref.like(f"Write-off {item.number}%")
        )
        rows = await Payment.insert(
            Payment(
                company=item.company,
                customer=item.customer,
                ref=f"Write-off {item.number}" + (f" #{count + 1}" if count else ""),
                received_on=today_in(company.timezone),
                method=Payment.Method.write_off.value,
                currency=item.currency,
                amount_minor=minor,
                unapplied_minor=minor,
            )
        ).returning(Payment.id)
        payment_id = int(rows[0]["id"])
        await allocations.allocate(
            payment_id, item.id, Money.from_minor(minor, item.currency), actor
        )
        await Item.update({Item.status: ItemStatus.written_off.value}).where(Item.id == item.id)
        await history.record(
            company_id=item.company,
            actor=actor,
            kind="write_off.recorded",
            customer_id=item.customer,
            item_id=item.id,
            details={
                "item": item.number,
                "amount": str(Money.from_minor(minor, item.currency).amount),
                "currency": item.currency,
                "tolerance": str(Money.from_minor(tolerance, company.currency).amount),
                "reason": reason[:500],
                "status_before": item.status,
            },
        )
        return payment_id


async def set_tolerance(company_id: int, text: str, actor: Actor) -> Company:
    """Set the company's write-off tolerance (an amount in its currency; 0 turns it off)."""
    company = await Company.objects().get(Company.id == company_id)
    if company is None:
        raise NotFound(f"company {company_id}")
    minor, problem = read_amount(text or "0", company.currency, "tolerance")
    if problem is not None:
        raise InvalidInput([problem])
    before = int(company.writeoff_tolerance_minor or 0)
    async with atomic():
        await Company.update({Company.writeoff_tolerance_minor: minor or 0}).where(
            Company.id == company_id
        )
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="company.writeoff_tolerance_set",
            details={
                "before": str(Money.from_minor(before, company.currency).amount),
                "after": str(Money.from_minor(minor or 0, company.currency).amount),
                "currency": company.currency,
            },
        )
    company.writeoff_tolerance_minor = minor or 0
    return company
