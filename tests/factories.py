"""Factories for rows, with sensible defaults; every money amount as Decimal text."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import count

from receivables.ledger.tables import Company, Contact, Customer, Item, ItemKind, Payment
from receivables.money import to_minor

_seq = count(1)


async def make_company(**kw) -> Company:
    n = next(_seq)
    company = Company(
        code=kw.pop("code", f"C{n}"),
        name=kw.pop("name", f"Seller {n} SAS"),
        currency=kw.pop("currency", "EUR"),
        iban=kw.pop("iban", "FR7630006000011234567890189"),
        bic=kw.pop("bic", "AGRIFRPP"),
        **kw,
    )
    await company.save()
    return company


async def make_customer(company: Company, **kw) -> Customer:
    n = next(_seq)
    customer = Customer(
        company=company.id,
        ref=kw.pop("ref", f"CUST{n:05d}"),
        name=kw.pop("name", f"Buyer {n} Ltd"),
        currency=kw.pop("currency", company.currency),
        **kw,
    )
    await customer.save()
    return customer


async def make_contact(customer: Customer, **kw) -> Contact:
    n = next(_seq)
    contact = Contact(
        customer=customer.id,
        name=kw.pop("name", f"Clerk {n}"),
        email=kw.pop("email", f"ap{n}@buyer.example"),
        **kw,
    )
    await contact.save()
    return contact


async def make_item(
    customer: Customer,
    amount: str = "100.00",
    *,
    due: date | None = None,
    kind: ItemKind = ItemKind.invoice,
    currency: str | None = None,
    **kw,
) -> Item:
    n = next(_seq)
    currency = currency or customer.currency
    due = due or date.today() + timedelta(days=30)
    minor = to_minor(Decimal(amount), currency)
    item = Item(
        company=customer.company,
        customer=customer.id,
        kind=kind.value,
        number=kw.pop("number", f"{'CN' if kind == ItemKind.credit_note else 'INV'}-{n:06d}"),
        issue_date=kw.pop("issue_date", due - timedelta(days=30)),
        due_date=due,
        currency=currency,
        total_minor=minor,
        open_minor=minor,
        **kw,
    )
    await item.save()
    return item


async def make_payment(
    customer: Customer, amount: str, *, currency: str | None = None, **kw
) -> Payment:
    n = next(_seq)
    currency = currency or customer.currency
    minor = to_minor(Decimal(amount), currency)
    payment = Payment(
        company=customer.company,
        customer=customer.id,
        ref=kw.pop("ref", f"PAY-{n:06d}"),
        received_on=kw.pop("received_on", date.today()),
        currency=currency,
        amount_minor=minor,
        unapplied_minor=minor,
        **kw,
    )
    await payment.save()
    return payment
