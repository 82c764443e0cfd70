"""POST a payment received, optionally applied in full to one invoice."""

from __future__ import annotations

from litestar import Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from api.auth import Caller
from api.schemas import AllocationOut, MoneyOut, PaymentOut, PaymentRow, carried, upsert_status
from receivables.ledger.records import parse_payment, upsert_payments
from receivables.ledger.tables import Allocation, Payment


async def payment_out(payment_id: int, *, created: bool) -> PaymentOut:
    row = (
        await Payment.select(*Payment.all_columns(), Payment.customer.ref)
        .where(Payment.id == payment_id)
        .first()
    )
    assert row is not None
    currency = row["currency"]
    allocations = (
        await Allocation.select(Allocation.item.number, Allocation.amount_minor)
        .where((Allocation.payment == payment_id) & Allocation.reversed_at.is_null())
        .order_by(Allocation.id)
    )
    return PaymentOut(
        ref=row["ref"],
        customer_ref=row["customer.ref"],
        received_on=row["received_on"],
        method=row["method"],
        amount=MoneyOut.minor(row["amount_minor"], currency),
        unapplied=MoneyOut.minor(row["unapplied_minor"], currency),
        allocations=[
            AllocationOut(a["item.number"], MoneyOut.minor(a["amount_minor"], currency))
            for a in allocations
        ],
        created=created,
    )


@post(
    "/payments",
    summary="Record a payment received",
    description="Recorded once per (company, `ref`): sending it again changes nothing but "
    "`received_on` and `method`; another amount, currency or customer for a known ref is "
    "refused (a payment received does not change). With `item_number` the whole amount is "
    "allocated to that invoice of the same customer and currency, which must have that much "
    "open. Without `item_number` the payment stays unapplied: finance applies it to one or "
    "more invoices in the back office (Finance > Cash application, /backoffice/finance/cash). "
    "201 when recorded by this call, 200 when it was already; the body is the payment "
    "with its allocations and `created`.",
    status_code=201,
    responses={200: ResponseSpec(PaymentOut, description="Already recorded")},
)
async def post_payment(
    caller: NamedDependency[Caller], data: JSONBody[PaymentRow]
) -> Response[PaymentOut]:
    record = parse_payment(carried(data))
    result = await upsert_payments([record], caller.actor, company_code=caller.company_code)
    out = await payment_out(
        result.ids[(caller.company_code, record.ref)], created=bool(result.created)
    )
    return Response(out, status_code=upsert_status(out.created))
