"""Stripe webhook signatures: the raw body, its HMAC, and a timestamp no older or further in
the future than the tolerance (the SDK checks only the past)."""

from __future__ import annotations

import json
import time
from typing import Any

import stripe

from receivables.errors import ReceivablesError

TOLERANCE = 300


class SignatureRefused(ReceivablesError):
    """The body is not a genuine, fresh Stripe event; nothing was stored."""


def _timestamp(header: str) -> int:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            return int(value)
    raise ValueError("no timestamp")


def verify(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """The event, when the signature matches and its time is within `tolerance` of now."""
    if not secret:
        raise SignatureRefused("no webhook secret is configured")
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
        stamp = _timestamp(header or "")
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise SignatureRefused(f"signature refused: {exc}") from None
    now = time.time() if now is None else now
    if stamp < now - tolerance:
        raise SignatureRefused(f"signature refused: timestamp {stamp} is too old")
    if stamp > now + tolerance:
        raise SignatureRefused(f"signature refused: timestamp {stamp} is in the future")
    try:
        event = json.loads(payload)
    except ValueError:
        raise SignatureRefused("the body is not JSON") from None
    if not isinstance(event, dict) or not all(k in event for k in ("id", "type", "data")):
        raise SignatureRefused("the body is not a Stripe event")
    return event


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload` (tests, the bench, events localstripe lacks)."""
    import hashlib
    import hmac

    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"
