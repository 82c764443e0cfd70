"""PUT a customer, PUT a contact: upserts by business key through the records service."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter

from api.auth import Caller
from api.schemas import (
    UPSERT_ANSWER,
    ContactFields,
    ContactOut,
    CustomerFields,
    CustomerOut,
    MoneyOut,
    carried,
    upsert_status,
)
from receivables.ledger.records import (
    parse_contact,
    parse_customer,
    upsert_contacts,
    upsert_customers,
)
from receivables.ledger.tables import Contact, Customer


async def customer_out(customer_id: int, *, created: bool) -> CustomerOut:
    row = (
        await Customer.select(*Customer.all_columns(), Customer.collector.email)
        .where(Customer.id == customer_id)
        .first()
    )
    assert row is not None
    limit = row["credit_limit_minor"]
    return CustomerOut(
        ref=row["ref"],
        name=row["name"],
        address=row["address"],
        country=row["country"],
        payer_profile=row["payer_profile"],
        language=row["language"],
        collector_email=row["collector.email"],
        blocked=row["blocked"],
        credit_limit=None if limit is None else MoneyOut.minor(limit, row["currency"]),
        currency=row["currency"],
        created=created,
    )


async def contact_out(contact_id: int, *, created: bool) -> ContactOut:
    row = (
        await Contact.select(*Contact.all_columns(), Contact.customer.ref)
        .where(Contact.id == contact_id)
        .first()
    )
    assert row is not None
    return ContactOut(
        customer_ref=row["customer.ref"],
        email=row["email"],
        name=row["name"],
        phone=row["phone"],
        role=row["role"],
        language=row["language"],
        receives_reminders=row["receives_reminders"],
        ext_ref=row["ext_ref"],
        created=created,
    )


CustomerRef = Annotated[str, PathParameter(description="The ERP's customer reference")]
Email = Annotated[str, PathParameter(description="The contact's email address")]


@put(
    "/customers/{ref:str}",
    summary="Create or update a customer",
    description="Upsert by (company, `ref`). " + UPSERT_ANSWER,
    status_code=200,
    responses={201: ResponseSpec(CustomerOut, description="Created by this call")},
)
async def put_customer(
    caller: NamedDependency[Caller], ref: CustomerRef, data: JSONBody[CustomerFields]
) -> Response[CustomerOut]:
    record = parse_customer(carried(data, ref=ref))
    result = await upsert_customers([record], caller.actor, company_code=caller.company_code)
    row_id = result.ids[(caller.company_code, record.ref)]
    out = await customer_out(row_id, created=bool(result.created))
    return Response(out, status_code=upsert_status(out.created))


@put(
    "/customers/{ref:str}/contacts/{email:str}",
    summary="Create or update a contact of a customer",
    description="Upsert by (customer, `email`); the email is compared and stored in lower "
    "case. " + UPSERT_ANSWER,
    status_code=200,
    responses={201: ResponseSpec(ContactOut, description="Created by this call")},
)
async def put_contact(
    caller: NamedDependency[Caller],
    ref: CustomerRef,
    email: Email,
    data: JSONBody[ContactFields],
) -> Response[ContactOut]:
    record = parse_contact(carried(data, customer_ref=ref, email=email))
    result = await upsert_contacts([record], caller.actor, company_code=caller.company_code)
    row_id = result.ids[(caller.company_code, record.customer_ref, record.email)]
    out = await contact_out(row_id, created=bool(result.created))
    return Response(out, status_code=upsert_status(out.created))
