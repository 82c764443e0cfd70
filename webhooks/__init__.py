"""Stripe's callback: the raw body and its signature handed to receivables.payments.

200 once the event is applied (or was already), 400 for a body that is not a genuine,
fresh Stripe event (nothing is stored), 500 when applying it failed (the event and its
error are kept, Stripe delivers it again). No session, no CSRF: the signature is the
authentication.
"""

from __future__ import annotations

import logging

from litestar import MediaType, Request, Response, Router, post

from receivables.payments.events import ProcessingFailed, receive
from receivables.payments.gateway import StripeGateway, shared_gateway
from receivables.payments.signatures import SignatureRefused
from receivables.settings import Settings

log = logging.getLogger("relance.webhooks")


def gateway_of(request: Request) -> StripeGateway:
    """The app's Stripe gateway, made on first use (tests may put their own in app.state)."""
    return shared_gateway(request.app.state, request.app.state.settings)


@post("/stripe", name="webhooks:stripe", media_type=MediaType.JSON, status_code=200)
async def stripe_webhook(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if not settings.stripe_webhook_secret:
        return Response({"error": "Stripe webhooks are not configured"}, status_code=503)
    payload = await request.body()
    try:
        outcome = await receive(
            payload,
            request.headers.get("stripe-signature"),
            secret=settings.stripe_webhook_secret,
            gateway=gateway_of(request),
        )
    except SignatureRefused as exc:
        log.warning("stripe webhook refused: %s", exc)
        return Response({"error": str(exc)}, status_code=400)
    except ProcessingFailed as exc:
        log.error("stripe webhook failed: %s", exc, exc_info=exc.__cause__)
        return Response({"error": "processing failed; retry"}, status_code=500)
    return Response({"received": outcome.event_id, "result": outcome.result})


webhooks_router = Router(path="/webhooks", route_handlers=[stripe_webhook], include_in_schema=False)
