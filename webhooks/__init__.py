"""Stripe's callback: the raw body and its signature handed to receivables.payments.

200 as soon as the event is verified and stored (or was stored already): the worker applies
it (`receivables.payments.events.apply_due`). 400 for a body that is not a genuine, fresh
Stripe event (nothing is stored); an error storing it is a 500, so Stripe delivers it again.
No session, no CSRF: the signature is the authentication.
"""

from __future__ import annotations

import logging

from litestar import MediaType, Request, Response, Router, post

from receivables.payments.events import receive
from receivables.payments.signatures import SignatureRefused
from receivables.settings import Settings
from web.deps import SettingsDep

log = logging.getLogger("relance.webhooks")


@post("/stripe", name="webhooks:stripe", media_type=MediaType.JSON, status_code=200)
async def stripe_webhook(request: Request, settings: SettingsDep) -> Response:
    if not settings.stripe_webhook_secret:
        return Response({"error": "Stripe webhooks are not configured"}, status_code=503)
    payload = await request.body()
    try:
        outcome = await receive(
            payload,
            request.headers.get("stripe-signature"),
            secret=settings.stripe_webhook_secret,
        )
    except SignatureRefused as exc:
        log.warning("stripe webhook refused: %s", exc)
        return Response({"error": str(exc)}, status_code=400)
    return Response({"received": outcome.event_id, "result": outcome.result})


def router(settings: Settings) -> Router:
    """The face for `create_app`: Stripe's callback under /webhooks (the secret is read from
    the injected settings at request time, so an unconfigured app answers 503)."""
    del settings  # nothing in the face's shape depends on them today
    return Router(path="/webhooks", route_handlers=[stripe_webhook], include_in_schema=False)
