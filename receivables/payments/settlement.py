"""What Stripe says about a payment, applied to the ledger.

Every function here runs inside the caller's transaction (the worker's batch, one savepoint
per event), works from a state Stripe cannot take back (the signed object when final) or
just re-read from Stripe rather than from the event that announced it, and is idempotent:
applying the same state twice, or an older state after a newer one, changes nothing. The
payment's account is locked first (`history.lock_accounts`: chain before rows), then the
online payment's row (Postgres), so two events about one payment, or an event and an
allocation from elsewhere on the same account, apply one after the other. A batch of events
locks all its accounts at once, before its first row lock (`lock_payers`); the events'
functions then find their account's lock held.

- processing: the selected invoices show "payment in progress";
- succeeded: a ledger payment for the gross amount, credit notes offset, then the money
  allocated to the invoices oldest first; any excess stays unapplied and is flagged;
- failed or canceled: the invoices get their status back;
- refunds and lost disputes: the money that left is taken back from the payment,
  reversing allocations newest first, so those invoices re-open.

Card money is allocated set-based (`_allocate`: the guarded UPDATEs of
`receivables.ledger.allocations.allocate`, one statement for all the invoices a payment
pays); reversals go through `receivables.ledger.allocations.reverse`.

The statements a payment's events run on every event (the online payment, its lines, the
allocation) are written in SQL: Piccolo's query builder costs 0.3-0.7 ms of Python a
statement (measured), more than the statement itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from receivables import history
from receivables.db import atomic, is_postgres
from receivables.errors import AllocationRefused
from receivables.history import Actor
from receivables.ledger.allocations import allocate, reverse
from receivables.ledger.tables import (
    Allocation,
    Company,
    Customer,
    Item,
    ItemKind,
    ItemStatus,
    Payment,
)
from receivables.money import Money, MoneyError, check_currency, format_minor
from receivables.payments.amounts import minor_from_stripe
from receivables.payments.flags import Kind, auto_resolve, flag
from receivables.payments.gateway import object_id
from receivables.payments.tables import OnlinePayment, OnlinePaymentItem, StripeDispute

STRIPE = Actor.system("stripe")
Status = OnlinePayment.Status
ACTIVE = (Status.started.value, Status.requires_action.value, Status.processing.value)
FINAL = (Status.succeeded.value, Status.failed.value, Status.canceled.value)
_NOT_PAYABLE = (
    ItemStatus.paid.value,
    ItemStatus.cancelled.value,
    ItemStatus.payment_in_progress.value,
)


def stripe_time(seconds: int | None) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC) if seconds else datetime.now(UTC)


_OP_COLUMNS = {c._meta.db_column_name for c in OnlinePayment._meta.columns}
_LINE_COLUMNS = (
    "l.id AS line_id, l.amount_minor AS line_amount, l.prior_status AS line_prior, "
    "l.offset_payment AS line_offset, i.id AS item_id, i.kind AS item_kind, "
    "i.number AS item_number, i.due_date AS item_due, i.currency AS item_currency, "
    "i.open_minor AS item_open, i.status AS item_status"
)


async def _locked(column: str, value: Any) -> tuple[OnlinePayment, list[Line]] | None:
    """The online payment whose `column` is `value`, its row locked (Postgres), with its lines
    (one statement)."""
    assert column in _OP_COLUMNS
    rows = await OnlinePayment.raw(
        f"SELECT op.*, {_LINE_COLUMNS} FROM online_payment op "  # noqa: S608 - ours
        "LEFT JOIN online_payment_item l ON l.online_payment = op.id "
        f"LEFT JOIN item i ON i.id = l.item WHERE op.{column} = {{}} "
        "ORDER BY i.due_date, i.id" + (" FOR UPDATE OF op" if is_postgres() else ""),
        value,
    )
    if not rows:
        return None
    op = OnlinePayment(_exists_in_db=True, **{k: rows[0][k] for k in _OP_COLUMNS})
    return op, [_line(r) for r in rows if r["line_id"] is not None]


async def _lock(op_id: int) -> OnlinePayment:
    found = await _locked("id", op_id)
    assert found is not None
    return found[0]


async def _save(op: OnlinePayment, **values: Any) -> None:
    for name, value in values.items():
        setattr(op, name, value)
    values["updated_at"] = datetime.now(UTC)
    assert set(values) <= _OP_COLUMNS, set(values) - _OP_COLUMNS
    sets = ", ".join(f"{name} = {{}}" for name in values)
    await OnlinePayment.raw(
        f"UPDATE online_payment SET {sets} WHERE id = {{}}",  # noqa: S608 - columns checked
        *values.values(),
        op.id,
    )


@dataclass
class SelectedItem:
    """The item of a line, as it is now."""

    id: int
    kind: str
    number: str
    due_date: date
    currency: str
    open_minor: int
    status: str


@dataclass
class SelectedRow:
    """The line itself: what was selected, and what this payment did to it."""

    id: int
    amount_minor: int
    """Open amount when the customer selected it."""
    prior_status: str
    offset_payment: int | None


@dataclass
class Line:
    """A selected item, read fresh."""

    row: SelectedRow
    item: SelectedItem


def _line(r: dict[str, Any]) -> Line:
    return Line(
        SelectedRow(r["line_id"], r["line_amount"], r["line_prior"], r["line_offset"]),
        SelectedItem(
            r["item_id"],
            r["item_kind"],
            r["item_number"],
            r["item_due"],
            r["item_currency"],
            r["item_open"],
            r["item_status"],
        ),
    )


async def _lines(op: OnlinePayment) -> list[Line]:
    rows = await OnlinePaymentItem.raw(
        f"SELECT {_LINE_COLUMNS} FROM online_payment_item l JOIN item i "  # noqa: S608
        "ON i.id = l.item WHERE l.online_payment = {} ORDER BY i.due_date, i.id",  # oldest first
        op.id,
    )
    return [_line(r) for r in rows]


def _invoices(lines: list[Line]) -> list[Line]:
    """What money pays: every item but a credit note (invoices, invoiced penalties)."""
    return [line for line in lines if line.item.kind != ItemKind.credit_note.value]


def _numbers(lines: list[Line]) -> list[str]:
    return [line.item.number for line in lines]


# ------------------------------------------------------------------ payment intents


async def find_online_payment(intent: dict[str, Any]) -> OnlinePayment | None:
    """Ours by intent id, else by the key we put in its metadata (then linked); its row
    locked (Postgres) until the transaction ends: take the account's lock first."""
    found = await _find(intent)
    return found[0] if found is not None else None


async def _find(intent: dict[str, Any]) -> tuple[OnlinePayment, list[Line]] | None:
    found = await _locked("intent_id", intent["id"])
    if found is not None:
        return found
    key = str((intent.get("metadata") or {}).get("relance_payment") or "")
    if not key:
        return None
    found = await _locked("key", key)
    if found is not None:
        op = found[0]
        if op.intent_id is None or op.intent_id.startswith("pending:"):
            await _save(op, intent_id=intent["id"])
    return found


async def _outside_payment(intent: dict[str, Any]) -> OnlinePayment | None:
    """A PaymentIntent made outside the portal that names one of our companies."""
    meta = intent.get("metadata") or {}
    code = str(meta.get("relance_company") or "")
    company = await Company.objects().get(Company.code == code) if code else None
    if company is None:
        return None  # not ours: the Stripe account may serve other systems
    customer = None
    if meta.get("relance_customer"):
        customer = await Customer.objects().get(
            (Customer.company == company.id) & (Customer.ref == str(meta["relance_customer"]))
        )
    currency = check_currency(intent["currency"])
    key = f"ext-{intent['id']}"[:40]
    await OnlinePayment.insert(
        OnlinePayment(
            key=key,
            company=company.id,
            customer=customer.id if customer else None,
            intent_id=intent["id"],
            currency=currency,
            amount_minor=minor_from_stripe(int(intent["amount"]), currency),
        )
    ).on_conflict(target=OnlinePayment.key, action="DO NOTHING")  # two events at once
    return await OnlinePayment.objects().get(OnlinePayment.key == key)


async def _account_of(intent: dict[str, Any]) -> tuple[int, int | None] | None:
    """(company, customer) the intent is about, read without locking anything."""
    columns = (OnlinePayment.company, OnlinePayment.customer)
    row = (
        await OnlinePayment.select(*columns).where(OnlinePayment.intent_id == intent["id"]).first()
    )
    key = str((intent.get("metadata") or {}).get("relance_payment") or "")
    if row is None and key:
        row = await OnlinePayment.select(*columns).where(OnlinePayment.key == key).first()
    if row is not None:
        return row["company"], row["customer"]
    meta = intent.get("metadata") or {}
    code = str(meta.get("relance_company") or "")
    company = await Company.select(Company.id).where(Company.code == code).first() if code else None
    if company is None:
        return None
    customer = None
    if meta.get("relance_customer"):
        customer = (
            await Customer.select(Customer.id)
            .where(
                (Customer.company == company["id"])
                & (Customer.ref == str(meta["relance_customer"]))
            )
            .first()
        )
    return company["id"], customer["id"] if customer else None


@dataclass
class _Payers:
    """The accounts of a batch of intents, locked together before the batch's first row lock
    (`lock_payers`), for the rest of its transaction."""

    accounts: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    """(company, customer) by intent id and by our key (`relance_payment`)."""
    locked: set[tuple[int, int | None]] = field(default_factory=set)

    def account(self, intent: dict[str, Any]) -> tuple[int, int | None] | None:
        key = str((intent.get("metadata") or {}).get("relance_payment") or "")
        return self.accounts.get(intent["id"]) or (self.accounts.get(f"key:{key}") if key else None)


_payers: ContextVar[_Payers | None] = ContextVar("settlement_payers", default=None)


@contextmanager
def payers_locked(payers: _Payers) -> Iterator[None]:
    """Within the batch's transaction: functions here skip the locks `payers` holds."""
    token = _payers.set(payers)
    try:
        yield
    finally:
        _payers.reset(token)


async def lock_payers(intents: list[dict[str, Any]]) -> _Payers:
    """The accounts these intents are about (one query for those we know), locked in one
    statement in the history's order; call it in the batch's transaction before any row lock,
    then apply the events under `payers_locked(...)`."""
    payers = _Payers()
    ids = sorted({str(i["id"]) for i in intents})
    keys = sorted(
        {str(k) for i in intents if (k := (i.get("metadata") or {}).get("relance_payment"))}
    )
    if ids:
        condition: Any = OnlinePayment.intent_id.is_in(ids)
        if keys:
            condition = condition | OnlinePayment.key.is_in(keys)
        columns = (OnlinePayment.intent_id, OnlinePayment.key)
        for row in await OnlinePayment.select(
            *columns, OnlinePayment.company, OnlinePayment.customer
        ).where(condition):
            account = (row["company"], row["customer"])
            if row["intent_id"]:
                payers.accounts[row["intent_id"]] = account
            payers.accounts[f"key:{row['key']}"] = account
    for intent in intents:
        if payers.account(intent) is None:  # made outside the portal: named by its metadata
            named = await _account_of(intent)
            if named is not None:
                payers.accounts[intent["id"]] = named
    accounts = {a for i in intents if (a := payers.account(i)) is not None}
    if not accounts:
        return payers
    companies = {company for company, _ in accounts}
    # One statement, every lock in the history's order (the customers' companies are ours).
    await history.lock_accounts(
        [customer for _, customer in accounts if customer is not None],
        company_id=next(iter(companies)) if len(companies) == 1 else None,
        company_wide=[company for company, customer in accounts if customer is None],
    )
    payers.locked.update(accounts)
    return payers


async def _lock_account(company_id: int, customer_id: int | None) -> None:
    """Chain before rows: the payment's account (or its company's chain when the payer is
    unknown) is locked before the online payment's row and the ledger's."""
    payers = _payers.get()
    if payers is not None and (company_id, customer_id) in payers.locked:
        return  # the batch took it before its first row lock
    if customer_id is None:
        await history.lock_accounts(company_wide=[company_id])
    else:
        await history.lock_accounts([customer_id], company_id=company_id)


async def sync_intent(intent: dict[str, Any]) -> OnlinePayment | None:
    """Bring our side of a PaymentIntent to the state Stripe reports (a final state from its
    signed event, or one just re-read)."""
    async with atomic():
        payers = _payers.get()
        account = payers.account(intent) if payers is not None else None
        if account is None:
            account = await _account_of(intent)
        if account is not None:
            await _lock_account(*account)
        found = await _find(intent)  # the payment and its lines, read after the lock
        if found is None:
            outside = await _outside_payment(intent)
            if outside is None:
                return None
            found = await _locked("id", outside.id)
            assert found is not None
        op, lines = found
        status = intent.get("status")
        if status == "succeeded":
            await _succeeded(op, intent, lines)
        elif status == "processing":
            await _processing(op, lines)
        elif status == "canceled":
            await _failed(op, "The payment was canceled.", canceled=True, lines=lines)
        elif status == "requires_payment_method" and intent.get("last_payment_error"):
            error = intent["last_payment_error"] or {}
            message = str(error.get("message") or "The payment failed.")
            await _failed(op, message, lines=lines)
        elif status == "requires_action" and op.status == Status.started.value:
            await _save(op, status=Status.requires_action.value)
        return op


async def _processing(op: OnlinePayment, lines: list[Line]) -> None:
    if op.status not in (Status.started.value, Status.requires_action.value):
        return
    marked = []
    for line in _invoices(lines):
        item = line.item
        if item.status in _NOT_PAYABLE or item.open_minor <= 0:
            continue
        changed = (
            await Item.update({Item.status: ItemStatus.payment_in_progress.value})
            .where((Item.id == item.id) & (Item.status == item.status))
            .returning(Item.id)
        )
        if changed:
            await OnlinePaymentItem.update({OnlinePaymentItem.prior_status: item.status}).where(
                OnlinePaymentItem.id == line.row.id
            )
            marked.append(item.number)
    await _save(op, status=Status.processing.value)
    await _record(op, "payment.processing", items=marked)


async def _restore_items(op: OnlinePayment, lines: list[Line] | None = None) -> list[str]:
    """Items still shown 'payment in progress' by this payment get their status back."""
    restored = []
    for line in await _lines(op) if lines is None else lines:
        prior = line.row.prior_status
        if not prior:
            continue
        back = (
            await Item.update({Item.status: prior})
            .where(
                (Item.id == line.item.id) & (Item.status == ItemStatus.payment_in_progress.value)
            )
            .returning(Item.id)
        )
        await OnlinePaymentItem.update({OnlinePaymentItem.prior_status: ""}).where(
            OnlinePaymentItem.id == line.row.id
        )
        if back:
            restored.append(line.item.number)
    return restored


async def _failed(
    op: OnlinePayment, message: str, *, canceled: bool = False, lines: list[Line] | None = None
) -> None:
    if op.status in FINAL:
        return
    was_processing = op.status == Status.processing.value
    reopened = await _restore_items(op, lines)
    await _save(
        op,
        status=Status.canceled.value if canceled else Status.failed.value,
        failure_message=message[:1000],
    )
    await _record(op, "payment.failed", message=message, reopened=reopened)
    if was_processing:
        await flag(
            Kind.failed,
            op.key,
            detail=f"Payment {op.intent_id} failed after it was under way: {message}",
            company_id=op.company,
            customer_id=op.customer,
            online_payment_id=op.id,
            amount_minor=op.amount_minor,
            currency=op.currency,
        )


def _charge_figures(intent: dict[str, Any]) -> dict[str, Any]:
    """Charge id, fee, net and settlement currency from the expanded latest charge."""
    charge = intent.get("latest_charge")
    figures: dict[str, Any] = {"charge_id": object_id(charge)}
    paid_at = intent.get("created")
    if isinstance(charge, dict):
        paid_at = charge.get("created") or paid_at
        txn = charge.get("balance_transaction")
        if isinstance(txn, dict) and txn.get("currency"):
            settlement = check_currency(txn["currency"])
            figures.update(
                balance_transaction_id=str(txn.get("id") or ""),
                settlement_currency=settlement,
                fee_minor=minor_from_stripe(int(txn.get("fee") or 0), settlement),
                net_minor=minor_from_stripe(int(txn["net"]), settlement),
            )
    figures["succeeded_at"] = stripe_time(paid_at)
    return figures


async def _succeeded(op: OnlinePayment, intent: dict[str, Any], lines: list[Line]) -> None:
    if op.status == Status.succeeded.value:
        return
    currency = check_currency(intent["currency"])
    gross = int(intent.get("amount_received") or intent["amount"])
    received = minor_from_stripe(gross, currency)
    figures = _charge_figures(intent)
    received_on: date = figures["succeeded_at"].date()

    values = dict(
        status=Status.succeeded.value, received_minor=received, intent_id=intent["id"], **figures
    )
    payment_id = None
    if op.customer is not None:
        ref = str(intent["id"])[:64]
        payment = (ref, received_on, Payment.Method.card, currency, received)
        payment_id = await _save_with_payment(op, payment, **values)
    else:
        await _save(op, payment=None, **values)
    await _record(
        op,
        "payment.received",
        payment=intent["id"],
        amount=format_minor(received, currency),
        method="card",
        fee=format_minor(figures["fee_minor"], figures["settlement_currency"])
        if figures.get("fee_minor") is not None
        else "",
    )

    if payment_id is None or not _invoices(lines):
        await _restore_items(op, lines)
        who = "an unknown customer" if op.customer is None else "no invoice we know"
        await flag(
            Kind.unallocated,
            op.key,
            detail=f"Card payment {intent['id']} of {format_minor(received, currency)} "
            f"names {who}.",
            company_id=op.company,
            customer_id=op.customer,
            online_payment_id=op.id,
            amount_minor=received,
            currency=currency,
        )
        return
    if currency != op.currency:
        await _restore_items(op, lines)
        await flag(
            Kind.currency_mismatch,
            op.key,
            detail=f"Paid {format_minor(received, currency)} for invoices in {op.currency} "
            f"({', '.join(_numbers(lines))}).",
            company_id=op.company,
            customer_id=op.customer,
            online_payment_id=op.id,
            amount_minor=received,
            currency=currency,
        )
        return
    await _apply_to_selection(op, payment_id, received, lines)


async def _apply_to_selection(
    op: OnlinePayment, payment_id: int, received: int, lines: list[Line]
) -> None:
    invoices = _invoices(lines)
    for line in invoices:
        short = line.row.amount_minor - line.item.open_minor
        if short > 0:
            await flag(
                Kind.already_paid,
                f"{op.key}:{line.item.id}",
                detail=f"{line.item.number} was selected with "
                f"{format_minor(line.row.amount_minor, op.currency)} open; "
                f"{format_minor(short, op.currency)} of it was settled another way first.",
                company_id=op.company,
                customer_id=op.customer,
                online_payment_id=op.id,
                amount_minor=short,
                currency=op.currency,
            )
    notes = [line for line in lines if line.item.kind == ItemKind.credit_note.value]
    for line in notes:
        await _offset_credit_note(op, line, invoices)
    ref = str(op.intent_id)[:64]
    # Without credit notes the invoices are as `lines` read them, in this transaction.
    excess = await _spread(op, payment_id, ref, op.currency, invoices, received, fresh=not notes)
    if excess > 0:
        await flag(
            Kind.overpayment,
            op.key,
            detail=f"{format_minor(excess, op.currency)} of card payment {op.intent_id} is "
            f"more than the invoices it pays ({', '.join(_numbers(invoices))}); kept as credit.",
            company_id=op.company,
            customer_id=op.customer,
            online_payment_id=op.id,
            amount_minor=excess,
            currency=op.currency,
        )
    await _restore_items(op, lines)


_NEW_PAYMENT = (
    "INSERT INTO payment (company, customer, ref, received_on, method, currency, "
    "amount_minor, unapplied_minor, created_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) "
    "RETURNING id"
)
NewPayment = tuple[str, date, Payment.Method, str, int]
"""A ledger payment to make: ref, received on, method, currency, amount (all unapplied)."""


def _payment_args(op: OnlinePayment, payment: NewPayment) -> list[Any]:
    ref, received_on, method, currency, amount = payment
    now = datetime.now(UTC)
    return [op.company, op.customer, ref, received_on, method.value, currency, amount, amount, now]


async def _new_payment(op: OnlinePayment, payment: NewPayment) -> int:
    """A ledger payment for the online payment's customer, all of it unapplied."""
    rows = await Payment.raw(_NEW_PAYMENT, *_payment_args(op, payment))
    return int(rows[0]["id"])


async def _save_with_payment(op: OnlinePayment, payment: NewPayment, **values: Any) -> int:
    """A ledger payment made, then `_save(op, payment=<it>, **values)`: one statement on
    Postgres. Returns the payment's id."""
    if not is_postgres():
        payment_id = await _new_payment(op, payment)
        await _save(op, payment=payment_id, **values)
        return payment_id
    values["updated_at"] = datetime.now(UTC)
    assert set(values) <= _OP_COLUMNS, set(values) - _OP_COLUMNS
    sets = ", ".join(f"{name} = {{}}" for name in values)
    rows = await OnlinePayment.raw(
        f"WITH p AS ({_NEW_PAYMENT}) UPDATE online_payment SET {sets}, "  # noqa: S608
        "payment = (SELECT id FROM p) WHERE id = {} RETURNING payment",
        *_payment_args(op, payment),
        *values.values(),
        op.id,
    )
    payment_id = int(rows[0]["payment"])
    for name, value in {**values, "payment": payment_id}.items():
        setattr(op, name, value)
    return payment_id


async def _spread(
    op: OnlinePayment,
    payment_id: int,
    ref: str,
    currency: str,
    invoices: list[Line],
    available: int,
    *,
    fresh: bool = False,
) -> int:
    """Allocate up to `available` to the invoices, oldest first; returns what is left.

    `fresh`: the invoices were read in this transaction and nothing changed them since;
    otherwise their open amounts are read again (a credit note offset may have paid some)."""
    if available <= 0 or not invoices:
        return available
    open_now = {line.item.id: (line.item.open_minor, line.item.currency) for line in invoices}
    if not fresh:
        ids = list(open_now)
        rows = await Item.raw(
            f"SELECT id, open_minor, currency FROM item WHERE id IN ({_marks(ids)})",  # noqa: S608
            *ids,
        )
        open_now = {r["id"]: (int(r["open_minor"]), r["currency"]) for r in rows}
    plan: list[tuple[Line, int]] = []
    for line in invoices:
        if available <= 0:
            break
        open_minor, its_currency = open_now.get(line.item.id, (0, ""))
        if its_currency != currency:
            continue
        take = min(open_minor, available)
        if take > 0:
            plan.append((line, take))
            available -= take
    if plan:
        assert op.customer is not None  # no ledger payment without a customer
        await _allocate(op.customer, payment_id, ref, currency, plan)
    return available


def _marks(values: list[Any]) -> str:
    return ", ".join("{}" for _ in values)


_TAKE = (
    # The invoices' guarded UPDATE: never below zero, only the payer's own open debit items
    # (invoices, invoiced penalties: not credit notes) in the payment's currency; `paid` when
    # nothing is left. {values}: (id, amount) pairs.
    "UPDATE item SET open_minor = item.open_minor - v.amount, "
    "status = CASE WHEN item.open_minor = v.amount THEN {paid} ELSE item.status END, "
    "updated_at = {now} FROM v WHERE item.id = v.id AND item.open_minor >= v.amount "
    "AND item.customer = {customer} AND item.kind <> {credit} AND item.currency = {currency} "
    "RETURNING item.id, item.open_minor, item.company, item.customer"
)


async def _allocate(
    customer_id: int, payment_id: int, ref: str, currency: str, plan: list[tuple[Line, int]]
) -> None:
    """Apply the payment to these invoices, each its amount: `allocations.allocate`'s guarded
    UPDATEs (never below zero, on either engine) for all the invoices at once, the payment's
    unapplied amount taken down, the allocations written (Postgres: one statement; SQLite:
    three), then one `allocation.created` history event each. The caller holds the account's
    lock (chain before rows). Refused as a whole when an invoice or the payment has less left
    than planned (the caller's savepoint then undoes what was written)."""
    now = datetime.now(UTC)
    total = sum(take for _, take in plan)
    pairs = [n for line, take in plan for n in (line.item.id, take)]
    values = ", ".join("(CAST({} AS BIGINT), CAST({} AS BIGINT))" for _ in plan)
    guard = (ItemStatus.paid.value, now, customer_id, ItemKind.credit_note.value, currency)
    if is_postgres():
        rows = await Item.raw(
            f"WITH v (id, amount) AS (VALUES {values}), "  # noqa: S608 - placeholders only
            f"taken AS ({_sql(_TAKE)}, v.amount), "
            "paid AS (UPDATE payment SET unapplied_minor = unapplied_minor - {} "
            "WHERE id = {} AND unapplied_minor >= {} "
            "AND (SELECT count(*) FROM taken) = {} RETURNING id), "
            "made AS (INSERT INTO allocation (payment, item, amount_minor, created_at, "
            "reversed_at) SELECT CAST({} AS INTEGER), taken.id, taken.amount, "
            "CAST({} AS TIMESTAMPTZ), NULL FROM taken WHERE EXISTS (SELECT 1 FROM paid) "
            "RETURNING id, item) "
            "SELECT taken.id, taken.open_minor, taken.company, taken.customer, "
            "made.id AS allocation FROM taken LEFT JOIN made ON made.item = taken.id",
            *pairs,
            *guard,
            total,
            payment_id,
            total,
            len(plan),
            payment_id,
            now,
        )
        reduced = [r for r in rows if r["allocation"] is not None]
        if len(rows) == len(plan) and len(reduced) != len(plan):
            raise AllocationRefused(f"payment {ref} has less than {total} left to apply")
        allocation_of = {r["id"]: r["allocation"] for r in rows}
    else:
        reduced = await Item.raw(
            f"WITH v (id, amount) AS (VALUES {values}) {_sql(_TAKE)}",  # noqa: S608
            *pairs,
            *guard,
        )
    if len(reduced) != len(plan):
        done = {r["id"] for r in reduced}
        short = sorted(line.item.number for line, _ in plan if line.item.id not in done)
        raise AllocationRefused(f"{', '.join(short)}: less open than planned")
    if not is_postgres():
        taken = await Payment.raw(
            "UPDATE payment SET unapplied_minor = unapplied_minor - {} "
            "WHERE id = {} AND unapplied_minor >= {} RETURNING id",
            total,
            payment_id,
            total,
        )
        if not taken:
            raise AllocationRefused(f"payment {ref} has less than {total} left to apply")
        made = await Allocation.raw(
            "INSERT INTO allocation (payment, item, amount_minor, created_at, reversed_at) "  # noqa: S608
            f"VALUES {', '.join('({}, {}, {}, {}, NULL)' for _ in plan)} RETURNING id, item",
            *[v for line, take in plan for v in (payment_id, line.item.id, take, now)],
        )
        allocation_of = {r["item"]: r["id"] for r in made}
    after = {r["id"]: r for r in reduced}
    for line, amount in plan:
        item = after[line.item.id]
        await history.record(
            company_id=item["company"],
            actor=STRIPE,
            kind="allocation.created",
            customer_id=item["customer"],
            item_id=line.item.id,
            details={
                "allocation": allocation_of[line.item.id],
                "payment": ref,
                "item": line.item.number,
                "amount": str(Money.from_minor(amount, currency).amount),
                "currency": currency,
                "item_open_after": str(Money.from_minor(item["open_minor"], currency).amount),
            },
        )


def _sql(template: str) -> str:
    """A statement with named slots, as Piccolo's positional placeholders (in slot order)."""
    return re.sub(r"\{[a-z]+\}", "{}", template)


async def _offset_credit_note(op: OnlinePayment, line: Line, invoices: list[Line]) -> None:
    """The customer deducted a credit note from the amount paid: it settles invoices too.

    It becomes a non-cash payment (method 'other') of the credit note's open amount, taken
    off the credit note, then allocated like the card money.
    """
    if line.row.offset_payment is not None:
        return
    note = line.item
    amount = min(note.open_minor, line.row.amount_minor)
    if amount <= 0:
        return  # used elsewhere meanwhile: the card money falls short, the newest stays open
    taken = (
        await Item.update({Item.open_minor: Item.open_minor - amount})
        .where((Item.id == note.id) & (Item.open_minor >= amount))
        .returning(Item.open_minor)
    )
    if not taken:
        return
    if taken[0]["open_minor"] == 0:
        await Item.update({Item.status: ItemStatus.paid.value}).where(Item.id == note.id)
    offset_id = await _new_payment(
        op,
        (
            f"{note.number} offset #{op.id}"[:64],
            datetime.now(UTC).date(),
            Payment.Method.other,
            note.currency,
            amount,
        ),
    )
    await OnlinePaymentItem.update({OnlinePaymentItem.offset_payment: offset_id}).where(
        OnlinePaymentItem.id == line.row.id
    )
    await history.record(
        company_id=op.company,
        actor=STRIPE,
        kind="credit_note.offset",
        customer_id=op.customer,
        item_id=note.id,
        details={
            "credit_note": note.number,
            "amount": format_minor(amount, note.currency),
            "online_payment": op.key,
            "intent": op.intent_id,
        },
    )
    await _spread(
        op, offset_id, f"{note.number} offset #{op.id}"[:64], note.currency, invoices, amount
    )


# ------------------------------------------------------------------ money that leaves again


async def sync_refunds(op: OnlinePayment, refunds: list[dict[str, Any]]) -> None:
    """Refunds as Stripe lists them now; pending ones count as gone, failed ones come back."""
    total = 0
    for refund in refunds:
        if refund.get("status") in ("succeeded", "pending", "requires_action"):
            total += minor_from_stripe(int(refund["amount"]), refund["currency"])
    async with atomic():
        await _lock_account(op.company, op.customer)
        op = await _lock(op.id)
        await _money_out(op, refunded=total, lost=op.dispute_lost_minor, reason="refund")


async def sync_dispute(op: OnlinePayment, dispute: dict[str, Any]) -> None:
    """A dispute as Stripe has it now (re-read, never an event's copy: the order its events
    arrive in decides nothing). Flagged for finance when first seen open; a lost one takes
    the money back; a won one is filed as won (history, its exception resolved), and money
    taken back for it, if any, is allocated again as a dispute won, not a failed refund."""
    async with atomic():
        await _lock_account(op.company, op.customer)
        op = await _lock(op.id)
        currency = check_currency(dispute["currency"])
        known = await StripeDispute.objects().get(StripeDispute.dispute_id == dispute["id"])
        amount = minor_from_stripe(int(dispute["amount"]), currency)
        status = str(dispute.get("status") or "")
        reason = str(dispute.get("reason") or "")[:60]
        now = datetime.now(UTC)
        if known is None:
            await StripeDispute.insert(
                StripeDispute(
                    dispute_id=dispute["id"],
                    online_payment=op.id,
                    currency=currency,
                    amount_minor=amount,
                    status=status,
                    reason=reason,
                    last_event_at=now,
                )
            )
        elif (known.status, known.reason, known.amount_minor) != (status, reason, amount):
            await StripeDispute.update(
                {
                    StripeDispute.status: status,
                    StripeDispute.reason: reason,
                    StripeDispute.amount_minor: amount,
                    StripeDispute.last_event_at: now,
                }
            ).where(StripeDispute.id == known.id)
        latest = (
            await StripeDispute.objects()
            .where(StripeDispute.online_payment == op.id)
            .order_by(StripeDispute.id)
        )
        await _save(op, dispute_status=latest[-1].status if latest else "")
        if known is None and status not in _DISPUTE_SETTLED_FOR_US:
            await flag(
                Kind.disputed,
                dispute["id"],
                detail=f"Dispute {dispute['id']} ({reason or 'no reason given'}) "
                f"on card payment {op.intent_id} "
                f"for {format_minor(amount, currency)}.",
                company_id=op.company,
                customer_id=op.customer,
                online_payment_id=op.id,
                amount_minor=amount,
                currency=currency,
            )
        if status in _DISPUTE_SETTLED_FOR_US and (known is None or known.status != status):
            await _record(
                op,
                "payment.dispute_won",
                dispute=dispute["id"],
                status=status,
                amount=format_minor(amount, currency),
            )
            await auto_resolve(
                Kind.disputed, dispute["id"], f"Stripe reports the dispute {status}."
            )
        lost = sum(d.amount_minor for d in latest if d.status == "lost")
        await _money_out(op, refunded=op.refunded_minor, lost=lost, reason="dispute")


_DISPUTE_SETTLED_FOR_US = ("won", "warning_closed")
"""Dispute states in which the money stays ours (an inquiry closed counts as won)."""


async def _money_out(op: OnlinePayment, *, refunded: int, lost: int, reason: str) -> None:
    delta = (refunded + lost) - (op.refunded_minor + op.dispute_lost_minor)
    op_refunded_before = op.refunded_minor
    await _save(op, refunded_minor=refunded, dispute_lost_minor=lost)
    if op.payment is None or delta == 0:
        return
    if delta > 0:
        await _take_back(op, delta, reason)
    else:  # money counted as gone is back: which of the two came back says the reason
        back_reason = "refund" if refunded < op_refunded_before else "dispute"
        await _give_back(op, -delta, back_reason)


async def _take_back(op: OnlinePayment, amount: int, reason: str) -> None:
    payment = await Payment.objects().get(Payment.id == op.payment)
    assert payment is not None
    need = amount - min(payment.unapplied_minor, amount)
    reopened: list[str] = []
    if need > 0:
        active = await Allocation.select(
            Allocation.id,
            Allocation.item,
            Allocation.amount_minor,
            Allocation.item.number.as_alias("number"),
            Allocation.item.due_date.as_alias("due_date"),
        ).where((Allocation.payment == payment.id) & Allocation.reversed_at.is_null())
        active.sort(key=lambda a: (a["due_date"], a["item"], a["id"]), reverse=True)
        freed = 0
        for row in active:  # newest first: the oldest invoices stay paid longest
            why = "refund" if reason == "refund" else "dispute lost"
            await reverse(row["id"], STRIPE, f"{why} on card payment {op.intent_id}")
            freed += int(row["amount_minor"])
            reopened.append(row["number"])
            if freed >= need:
                if freed > need:
                    await allocate(
                        payment.id,
                        row["item"],
                        Money.from_minor(freed - need, payment.currency),
                        STRIPE,
                    )
                break
    cut = (
        await Payment.update(
            {
                Payment.amount_minor: Payment.amount_minor - amount,
                Payment.unapplied_minor: Payment.unapplied_minor - amount,
            }
        )
        .where((Payment.id == payment.id) & (Payment.unapplied_minor >= amount))
        .returning(Payment.id)
    )
    if not cut:
        raise MoneyError(f"cannot take {amount} back from payment {payment.ref}")
    await _record(
        op,
        "payment.refunded" if reason == "refund" else "payment.dispute_lost",
        amount=format_minor(amount, payment.currency),
        reopened=reopened,
    )


async def _give_back(op: OnlinePayment, amount: int, reason: str) -> None:
    """Money counted as gone came back (a refund failed, or a dispute counted lost was won):
    allocate it again, oldest first. Only a failed refund is an exception for finance."""
    payment = await Payment.objects().get(Payment.id == op.payment)
    assert payment is not None
    await Payment.update(
        {
            Payment.amount_minor: Payment.amount_minor + amount,
            Payment.unapplied_minor: Payment.unapplied_minor + amount,
        }
    ).where(Payment.id == payment.id)
    lines = await _lines(op)
    left = await _spread(
        op, payment.id, payment.ref, payment.currency, _invoices(lines), amount, fresh=True
    )
    await _record(
        op, "payment.money_back", amount=format_minor(amount, payment.currency), reason=reason
    )
    if reason != "refund":
        return  # a dispute won: recorded as such by sync_dispute, nothing to chase
    await flag(
        Kind.refund_failed,
        f"{op.key}:{op.refunded_minor}",
        detail=f"{format_minor(amount, payment.currency)} of card payment {op.intent_id} "
        f"came back ({reason} failed); {format_minor(left, payment.currency)} left as credit.",
        company_id=op.company,
        customer_id=op.customer,
        online_payment_id=op.id,
        amount_minor=amount,
        currency=payment.currency,
    )


async def _record(op: OnlinePayment, kind: str, **details: Any) -> None:
    await history.record(
        company_id=op.company,
        actor=STRIPE,
        kind=kind,
        customer_id=op.customer,
        details={"online_payment": op.key, "intent": op.intent_id, **details},
    )
