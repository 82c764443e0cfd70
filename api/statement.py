"""GET a customer's statement of account."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from api.auth import Caller
from receivables.clock import customer_today
from receivables.errors import NotFound
from receivables.ledger.statement import OpenItem, Statement, build_statement
from receivables.ledger.tables import Customer
from receivables.money import Money


def _money(m: Money) -> dict[str, str]:
    return {"amount": str(m.amount), "currency": m.currency}


def _item(i: OpenItem) -> dict[str, Any]:
    return {
        "number": i.number,
        "kind": i.kind,
        "issue_date": i.issue_date.isoformat(),
        "due_date": i.due_date.isoformat(),
        "total": _money(i.total),
        "open": _money(i.open),
        "days_late": i.days_late,
        "bucket": i.bucket,
        "status": i.status,
        "promise_date": i.promise_date.isoformat() if i.promise_date else None,
        "po_number": i.po_number,
        "has_pdf": i.has_pdf,
    }


def statement_json(st: Statement) -> dict[str, Any]:
    return {
        "customer_ref": st.customer.ref,
        "customer_name": st.customer.name,
        "date": st.on.isoformat(),
        "invoices": [_item(i) for i in st.invoices],
        "credit_notes": [_item(i) for i in st.credit_notes],
        "unapplied_payments": [
            {
                "ref": p.ref,
                "received_on": p.received_on.isoformat(),
                "amount": _money(p.amount),
                "unapplied": _money(p.unapplied),
            }
            for p in st.unapplied_payments
        ],
        "totals": {
            cur: {
                "overdue": str(t.overdue.amount),
                "not_due": str(t.not_due.amount),
                "credit_notes": str(t.credit_notes.amount),
                "unapplied_payments": str(t.unapplied_payments.amount),
                "open": str(t.open.amount),
                "buckets": {b: str(v.amount) for b, v in t.buckets.items()},
            }
            for cur, t in st.totals.items()
        },
    }


@get(
    "/customers/{ref:str}/statement",
    summary="A customer's statement of account",
    description="Open invoices (overdue and not due, with days late and aging bucket), open "
    "credit notes, unapplied payments and totals per currency, on `date`. 404 when the "
    "API key's company has no customer with this reference.",
)
async def customer_statement(
    caller: NamedDependency[Caller],
    ref: Annotated[str, PathParameter(description="The ERP's customer reference")],
    on: Annotated[
        date | None, QueryParameter(name="date", description="Statement date (default today)")
    ] = None,
) -> dict[str, Any]:
    customer = await Customer.objects().get(
        (Customer.company == caller.company_id) & (Customer.ref == ref)
    )
    if customer is None:
        raise NotFound(f"customer {ref}")
    return statement_json(
        await build_statement(customer.id, on or await customer_today(customer.id))
    )
