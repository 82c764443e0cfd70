"""JSON API for ERPs under /api/v1: API keys as bearer tokens, OpenAPI schema served.

Handlers are thin: they type the JSON, hand the fields to `receivables.ledger.records`
(the same checks and upserts as the file import) and answer with the stored row. The
company is always the API key's own.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.exceptions import ValidationException

from api.auth import provide_caller, requires_api_key
from api.batch import batch_contacts, batch_customers, batch_items, batch_ledger, batch_payments
from api.customers import put_contact, put_customer
from api.errors import validation_error
from api.items import put_item, upload_item_pdf
from api.payments import post_payment
from api.statement import customer_statement
from receivables.settings import Settings


def router(settings: Settings) -> Router:
    """The face for `create_app`; handlers take the settings they need by injection."""
    del settings  # nothing in the face's shape depends on them today
    return Router(
        path="/api/v1",
        guards=[requires_api_key],
        security=[{"BearerToken": []}],
        dependencies={"caller": Provide(provide_caller)},
        exception_handlers={ValidationException: validation_error},
        route_handlers=[
            put_customer,
            put_contact,
            customer_statement,
            put_item,
            upload_item_pdf,
            post_payment,
            batch_customers,
            batch_contacts,
            batch_items,
            batch_payments,
            batch_ledger,
        ],
        tags=["ERP"],
    )
