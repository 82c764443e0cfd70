"""What a customer sees of its account in the portal, and the traces its visits leave.

Every figure comes from `build_statement`; penalties from the company's policy; answers
awaiting confirmation from the feedback table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from receivables import history
from receivables.access.tables import StaffUser
from receivables.dunning.reference_rates import statement_penalties
from receivables.errors import NotFound
from receivables.ledger.penalties import Penalties, PenaltyTerms
from receivables.ledger.statement import Statement, build_statement
from receivables.ledger.tables import Company, Customer, Item, ItemStatus
from receivables.portal.feedback import PendingAnswer, pending_by_item
from receivables.portal.sessions import Visit


@dataclass
class CollectorCard:
    name: str
    email: str
    phone: str


@dataclass
class AccountView:
    statement: Statement
    pending: dict[int, PendingAnswer]
    penalties: Penalties | None
    collector: CollectorCard | None


async def account_view(
    customer_id: int, on: date, terms: PenaltyTerms | None = None
) -> AccountView:
    statement = await build_statement(customer_id, on)
    collector = None
    if statement.customer.collector:
        staff = (
            await StaffUser.select(StaffUser.name, StaffUser.email, StaffUser.phone)
            .where((StaffUser.id == statement.customer.collector) & (StaffUser.active == True))  # noqa: E712
            .first()
        )
        if staff:
            collector = CollectorCard(staff["name"], staff["email"], staff["phone"])
    return AccountView(
        statement=statement,
        pending=await pending_by_item(customer_id),
        penalties=await statement_penalties(statement, terms),
        collector=collector,
    )


async def company_of(company_id: int) -> Company:
    company = await Company.objects().get(Company.id == company_id)
    if company is None:
        raise NotFound(f"company {company_id}")
    return company


@dataclass
class InvoiceDocument:
    item: Item
    customer: Customer
    company: Company


async def invoice_of(customer_id: int, item_id: int) -> InvoiceDocument:
    """One of the customer's items (open or not, but not cancelled); NotFound otherwise."""
    item = await Item.objects().get(
        (Item.id == item_id)
        & (Item.customer == customer_id)
        & (Item.status != ItemStatus.cancelled.value)
    )
    if item is None:
        raise NotFound(f"item {item_id}")
    customer = await Customer.objects().get(Customer.id == customer_id)
    company = await Company.objects().get(Company.id == item.company)
    assert customer is not None and company is not None
    return InvoiceDocument(item, customer, company)


async def record_visit(visit: Visit, kind: str, item_id: int | None = None, **details: Any) -> None:
    """A view or a download, in the account's history (the only write a GET makes)."""
    await history.record(
        company_id=visit.company_id,
        actor=visit.actor,
        kind=kind,
        customer_id=visit.customer_id,
        item_id=item_id,
        details={"session": visit.session_id, **details},
    )
