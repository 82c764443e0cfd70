"""Bank transfers: a statement's credits matched to open invoices, confirmed by finance.

Each credit gets a proposal from the payment reference, the amount and the customer:

- *proposed* (certain): the remittance text names open invoices of one customer whose open
  amounts add up exactly to the credit;
- *review* (uncertain): anything else (the amount differs, invoices of several customers,
  only the customer recognised, nothing recognised), with the likeliest invoices suggested.

Nothing is allocated until finance confirms a line: then a transfer payment is recorded and
allocated through `receivables.ledger.allocations`; what is left stays credit.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from receivables import history
from receivables.db import atomic
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.history import Actor
from receivables.ledger.allocations import allocate
from receivables.ledger.tables import Customer, Item, ItemKind, ItemStatus, Payment
from receivables.money import AmountFormat, Money, format_minor
from receivables.payments.bank_files import BankEntry, parse_statement
from receivables.payments.flags import Kind, flag
from receivables.payments.tables import BankLine, BankLineMatch, BankStatement

Status = BankLine.Status


def _norm(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def _tokens(text: str) -> set[str]:
    """Words of a remittance text, normalised; adjacent pairs too ("INV 0042")."""
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9\-/_.]*", text or "")
    normal = [_norm(w) for w in words]
    pairs = [a + b for a, b in zip(normal, normal[1:], strict=False)]
    return {w for w in [*normal, *pairs] if len(w) >= 3}


@dataclass
class OpenInvoice:
    id: int
    number: str
    customer: int
    customer_ref: str
    customer_name: str
    currency: str
    open_minor: int
    due_date: object


@dataclass
class Ledger:
    """The company's open invoices and customers, indexed for matching one statement."""

    invoices_by_number: dict[str, OpenInvoice] = field(default_factory=dict)
    settled_numbers: dict[str, str] = field(default_factory=dict)
    customers_by_ref: dict[str, tuple[int, str]] = field(default_factory=dict)
    customers_by_name: dict[str, int] = field(default_factory=dict)
    invoices_by_customer: dict[int, list[OpenInvoice]] = field(default_factory=dict)


async def _ledger(company_id: int) -> Ledger:
    ledger = Ledger()
    customers = await Customer.select(Customer.id, Customer.ref, Customer.name).where(
        Customer.company == company_id
    )
    names = {}
    for c in customers:
        ledger.customers_by_ref[_norm(c["ref"])] = (c["id"], c["ref"])
        ledger.customers_by_name[_norm(c["name"])] = c["id"]
        names[c["id"]] = (c["ref"], c["name"])
    rows = await Item.select(
        Item.id,
        Item.number,
        Item.customer,
        Item.currency,
        Item.open_minor,
        Item.due_date,
        Item.status,
    ).where(
        (Item.company == company_id)
        & (Item.kind != ItemKind.credit_note.value)  # invoices and invoiced penalties
        & (Item.status != ItemStatus.cancelled.value)
    )
    by_customer: dict[int, list[OpenInvoice]] = defaultdict(list)
    for r in rows:
        key = _norm(r["number"])
        if r["open_minor"] <= 0:
            ledger.settled_numbers[key] = r["number"]
            continue
        ref, name = names[r["customer"]]
        invoice = OpenInvoice(
            r["id"],
            r["number"],
            r["customer"],
            ref,
            name,
            r["currency"],
            int(r["open_minor"]),
            r["due_date"],
        )
        ledger.invoices_by_number[key] = invoice
        by_customer[r["customer"]].append(invoice)
    for invoices in by_customer.values():
        invoices.sort(key=lambda i: (i.due_date, i.id))
    ledger.invoices_by_customer = dict(by_customer)
    return ledger


@dataclass
class Proposal:
    status: str
    customer_id: int | None
    matches: list[tuple[int, int]]
    """(item id, amount in minor units), oldest invoice first."""
    reason: str


def _spread(invoices: list[OpenInvoice], amount: int) -> list[tuple[int, int]]:
    matches = []
    for invoice in sorted(invoices, key=lambda i: (i.due_date, i.id)):
        if amount <= 0:
            break
        take = min(invoice.open_minor, amount)
        matches.append((invoice.id, take))
        amount -= take
    return matches


def propose(entry: BankEntry, ledger: Ledger) -> Proposal:
    """What a credit pays, and whether that is certain."""
    amount = entry.amount_minor
    text = f"{entry.reference} {entry.counterparty}"
    tokens = _tokens(text)
    named = [
        ledger.invoices_by_number[t]
        for t in sorted(tokens)
        if t in ledger.invoices_by_number
        and ledger.invoices_by_number[t].currency == entry.currency
    ]
    named = list({i.id: i for i in named}.values())
    settled = sorted({ledger.settled_numbers[t] for t in tokens if t in ledger.settled_numbers})
    note = f" {', '.join(settled)} already settled." if settled else ""
    refs = {ledger.customers_by_ref[t] for t in tokens if t in ledger.customers_by_ref}
    money = format_minor(amount, entry.currency)

    if named:
        customers = {i.customer for i in named}
        numbers = ", ".join(i.number for i in sorted(named, key=lambda i: (i.due_date, i.id)))
        total = sum(i.open_minor for i in named)
        if len(customers) > 1:
            return Proposal(
                Status.review.value,
                None,
                _spread(named, amount),
                f"The reference names invoices of several customers ({numbers}).{note}",
            )
        customer = customers.pop()
        if refs and customer not in {c for c, _ in refs}:
            return Proposal(
                Status.review.value,
                customer,
                _spread(named, amount),
                f"The reference names {numbers} and another customer's reference.{note}",
            )
        if total == amount:
            return Proposal(
                Status.proposed.value,
                customer,
                _spread(named, amount),
                f"The reference names {numbers}; {money} is exactly what they leave open.",
            )
        return Proposal(
            Status.review.value,
            customer,
            _spread(named, amount),
            f"The reference names {numbers}, open {format_minor(total, entry.currency)}, "
            f"but {money} was received.{note}",
        )

    payer: int | None = None
    if len(refs) == 1:
        payer = next(iter(refs))[0]
    elif entry.counterparty and _norm(entry.counterparty) in ledger.customers_by_name:
        payer = ledger.customers_by_name[_norm(entry.counterparty)]
    if payer is None:
        return Proposal(Status.review.value, None, [], f"No invoice or customer recognised.{note}")
    invoices = [
        i for i in ledger.invoices_by_customer.get(payer, []) if i.currency == entry.currency
    ]
    exact = [i for i in invoices if i.open_minor == amount]
    if len(exact) == 1:
        return Proposal(
            Status.review.value,
            payer,
            [(exact[0].id, amount)],
            f"No invoice named; {exact[0].number} is the customer's only invoice open for "
            f"{money}.{note}",
        )
    if invoices and sum(i.open_minor for i in invoices) == amount:
        return Proposal(
            Status.review.value,
            payer,
            _spread(invoices, amount),
            f"No invoice named; {money} is everything the customer has open.{note}",
        )
    return Proposal(
        Status.review.value,
        payer,
        [],
        f"Customer recognised, but no invoice named and no amount that matches.{note}",
    )


@dataclass
class ImportReport:
    statement_id: int
    credits: int
    proposed: int
    review: int
    debits: int
    duplicates: int


async def import_statement(
    *,
    company_id: int,
    filename: str,
    content: bytes,
    currency: str,
    actor: Actor,
    amounts: AmountFormat | None = None,
) -> ImportReport:
    """Store a statement's credits with their proposals; allocate nothing.

    `amounts`: the CSV's locale or decimal separator, when the bank's format needs it."""
    digest = hashlib.sha256(content).hexdigest()
    known = await BankStatement.objects().get(
        (BankStatement.company == company_id) & (BankStatement.sha256 == digest)
    )
    if known is not None:
        raise InvalidInput.one(
            "file", f"this file was already imported on {known.imported_at:%Y-%m-%d %H:%M}"
        )
    parsed = parse_statement(content, currency, amounts)
    ledger = await _ledger(company_id)
    credits = [e for e in parsed.entries if e.amount_minor > 0]
    debits = len(parsed.entries) - len(credits)
    keys = [
        f"ref:{e.bank_ref}" if e.bank_ref else f"file:{digest[:16]}:{e.line_no}:{i}"
        for i, e in enumerate(credits)
    ]
    async with atomic():
        await history.lock_accounts(company_wide=[company_id])
        seen = {
            r["dedup_key"]
            for r in await BankLine.select(BankLine.dedup_key).where(
                (BankLine.company == company_id) & BankLine.dedup_key.is_in(keys or [""])
            )
        }
        statement = BankStatement(
            company=company_id,
            filename=filename[:255],
            format=parsed.format,
            account=parsed.account[:64],
            sha256=digest,
            imported_by=actor.label[:254],
        )
        await statement.save()
        counts = {Status.proposed.value: 0, Status.review.value: 0}
        duplicates = 0
        for entry, key in zip(credits, keys, strict=True):
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            proposal = propose(entry, ledger)
            rows = await BankLine.insert(
                BankLine(
                    statement=statement.id,
                    company=company_id,
                    line_no=entry.line_no,
                    dedup_key=key[:200],
                    booked_on=entry.booked_on,
                    value_date=entry.value_date,
                    currency=entry.currency,
                    amount_minor=entry.amount_minor,
                    counterparty=entry.counterparty,
                    counterparty_iban=entry.counterparty_iban,
                    reference=entry.reference,
                    status=proposal.status,
                    customer=proposal.customer_id,
                    reason=proposal.reason,
                )
            ).returning(BankLine.id)
            if proposal.matches:
                await BankLineMatch.insert(
                    *[
                        BankLineMatch(line=rows[0]["id"], item=item, amount_minor=minor)
                        for item, minor in proposal.matches
                    ]
                )
            counts[proposal.status] += 1
        await BankStatement.update(
            {
                BankStatement.credits: sum(counts.values()),
                BankStatement.skipped: debits + duplicates,
            }
        ).where(BankStatement.id == statement.id)
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="bank.statement_imported",
            details={
                "statement": statement.id,
                "file": filename,
                "format": parsed.format,
                "credits": sum(counts.values()),
                "proposed": counts[Status.proposed.value],
                "review": counts[Status.review.value],
                "debits_skipped": debits,
                "already_imported": duplicates,
            },
        )
    return ImportReport(
        statement.id,
        sum(counts.values()),
        counts[Status.proposed.value],
        counts[Status.review.value],
        debits,
        duplicates,
    )


async def _claim_line(line_id: int, company_id: int | None = None) -> BankLine:
    line = await BankLine.objects().get(BankLine.id == line_id)
    if line is None or (company_id is not None and line.company != company_id):
        raise NotFound(f"bank line {line_id}")
    return line


async def confirm_line(
    line_id: int,
    *,
    actor: Actor,
    item_ids: list[int] | None = None,
    customer_id: int | None = None,
) -> int:
    """Record the transfer and allocate it: to the proposal, or to the invoices finance chose
    (oldest first). Returns the payment id."""
    async with atomic():
        line = await _claim_line(line_id)
        # Chain before rows: every account this confirmation may touch, before the line's row.
        accounts = {c for c in (line.customer, customer_id) if c is not None}
        if item_ids:
            accounts |= {
                r["customer"]
                for r in await Item.select(Item.customer).where(
                    Item.id.is_in(item_ids) & (Item.company == line.company)
                )
            }
        await history.lock_accounts(accounts, company_id=line.company)
        decided = (
            await BankLine.update(
                {
                    BankLine.status: Status.confirmed.value,
                    BankLine.decided_at: datetime.now(UTC),
                    BankLine.decided_by: actor.label[:254],
                }
            )
            .where(
                (BankLine.id == line_id)
                & BankLine.status.is_in([Status.proposed.value, Status.review.value])
            )
            .returning(BankLine.id)
        )
        if not decided:
            raise Conflict(f"bank line {line_id} was already {line.status}")
        if item_ids is not None:
            chosen = await Item.objects().where(
                Item.id.is_in(item_ids or [0])
                & (Item.company == line.company)
                & (Item.kind != ItemKind.credit_note.value)
            )
            customers = {i.customer for i in chosen}
            if len(customers) > 1:
                raise InvalidInput.one("items", "choose invoices of one customer")
            if any(i.currency != line.currency for i in chosen):
                raise InvalidInput.one("items", f"choose invoices in {line.currency}")
            customer_id = customers.pop() if customers else customer_id
            invoices = [
                OpenInvoice(
                    i.id, i.number, i.customer, "", "", i.currency, i.open_minor, i.due_date
                )
                for i in chosen
                if i.open_minor > 0
            ]
            matches = _spread(invoices, line.amount_minor)
            await BankLineMatch.delete().where(BankLineMatch.line == line_id)
            if matches:
                await BankLineMatch.insert(
                    *[BankLineMatch(line=line_id, item=i, amount_minor=m) for i, m in matches]
                )
        else:
            rows = await BankLineMatch.select(BankLineMatch.item, BankLineMatch.amount_minor).where(
                BankLineMatch.line == line_id
            )
            matches = [(r["item"], int(r["amount_minor"])) for r in rows]
            customer_id = customer_id or line.customer
        if customer_id is None:
            raise InvalidInput.one("customer", "choose the customer who paid")
        customer = await Customer.objects().get(
            (Customer.id == customer_id) & (Customer.company == line.company)
        )
        if customer is None:
            raise InvalidInput.one("customer", "unknown customer")
        rows = await Payment.insert(
            Payment(
                company=line.company,
                customer=customer.id,
                ref=f"BANK-{line.id}",
                received_on=line.booked_on,
                method=Payment.Method.transfer.value,
                currency=line.currency,
                amount_minor=line.amount_minor,
                unapplied_minor=line.amount_minor,
            )
        ).returning(Payment.id)
        payment_id = int(rows[0]["id"])
        await BankLine.update({BankLine.payment: payment_id, BankLine.customer: customer.id}).where(
            BankLine.id == line_id
        )
        await history.record(
            company_id=line.company,
            actor=actor,
            kind="payment.received",
            customer_id=customer.id,
            details={
                "payment": f"BANK-{line.id}",
                "method": "transfer",
                "amount": format_minor(line.amount_minor, line.currency),
                "bank_reference": line.reference[:200],
                "bank_line": line.id,
            },
        )
        applied = 0
        for item_id, minor in matches:
            open_now = await Item.select(Item.open_minor).where(Item.id == item_id).first()
            take = min(minor, int(open_now["open_minor"])) if open_now else 0
            if take > 0:
                await allocate(payment_id, item_id, Money.from_minor(take, line.currency), actor)
                applied += take
        left = line.amount_minor - applied
        if left > 0:
            # The same exception as a card payment that pays more than its invoices.
            await flag(
                Kind.overpayment if applied else Kind.unallocated,
                f"BANK-{line.id}",
                detail=f"{format_minor(left, line.currency)} of transfer BANK-{line.id} "
                + (
                    "is more than the invoices it pays; kept as credit."
                    if applied
                    else "pays no invoice; kept as credit."
                )
                + " Apply it in Finance > Cash application.",
                company_id=line.company,
                customer_id=customer.id,
                amount_minor=left,
                currency=line.currency,
            )
        return payment_id


async def ignore_line(line_id: int, *, actor: Actor, note: str = "") -> None:
    """Not a customer payment (a refund from a supplier, interest...): nothing is recorded."""
    async with atomic():
        line = await _claim_line(line_id)
        await history.lock_accounts(company_wide=[line.company])
        done = (
            await BankLine.update(
                {
                    BankLine.status: Status.ignored.value,
                    BankLine.decided_at: datetime.now(UTC),
                    BankLine.decided_by: actor.label[:254],
                    BankLine.reason: (line.reason + (f" Ignored: {note.strip()}" if note else ""))[
                        :2000
                    ],
                }
            )
            .where(
                (BankLine.id == line_id)
                & BankLine.status.is_in([Status.proposed.value, Status.review.value])
            )
            .returning(BankLine.id)
        )
        if not done:
            raise Conflict(f"bank line {line_id} was already {line.status}")
        await history.record(
            company_id=line.company,
            actor=actor,
            kind="bank.line_ignored",
            details={
                "bank_line": line.id,
                "amount": format_minor(line.amount_minor, line.currency),
                "note": note.strip()[:500],
            },
        )


async def confirm_proposed(statement_id: int, *, actor: Actor) -> int:
    """Confirm every certain proposal of a statement; returns how many."""
    ids = [
        r["id"]
        for r in await BankLine.select(BankLine.id)
        .where((BankLine.statement == statement_id) & (BankLine.status == Status.proposed.value))
        .order_by(BankLine.id)
    ]
    for line_id in ids:
        await confirm_line(line_id, actor=actor)
    return len(ids)
