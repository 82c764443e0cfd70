"""Stripe webhook signatures, checked by the official SDK: the raw body, its HMAC and a
timestamp at most TOLERANCE seconds old (`stripe.WebhookSignature.verify_header`).

There is no parser of our own: the SDK reads the header exactly as Stripe writes it (no
whitespace around elements, the first `t=`), so a replayed body with a fresh `t=` added
anywhere in the header is refused (the signature then covers another timestamp, or the
timestamp it covers is too old). A timestamp in the future is the signer's clock, not a
replay: the SDK accepts it, and so do we.
"""

from __future__ import annotations

import json
from typing import Any

import stripe

from receivables.errors import ReceivablesError

TOLERANCE = 300
"""Seconds: Stripe's own default for `Webhook.construct_event`."""


class SignatureRefused(ReceivablesError):
    """The body is not a genuine, fresh Stripe event; nothing was stored."""


def verify(payload: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """The event, when the SDK finds the signature right and its timestamp fresh."""
    if not secret:
        raise SignatureRefused("no webhook secret is configured")
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=TOLERANCE)
    except stripe.SignatureVerificationError as exc:
        raise SignatureRefused(f"signature refused: {exc.user_message or exc}") from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise SignatureRefused("the body is not JSON") from None
    if not isinstance(event, dict) or not all(k in event for k in ("id", "type", "data")):
        raise SignatureRefused("the body is not a Stripe event")
    return event
