"""Portal links in mail: the customer gets a working link, our stored copy never holds one.

A message that carries a portal link is stored with the token replaced by `REDACTED`
(`https://…/p/…redacted…?next=/statement`); the token itself is kept beside it sealed
(AES-GCM under a key derived from SECRET_KEY, which is not in the database, and bound to
the message's Message-ID), and only until the message is sent, fails or is cancelled. The
worker unseals it to write the bytes it sends. Anyone reading the database or a staff page
finds no token that opens the portal; the SHA-256 of the exact bytes sent is kept instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REDACTED = "…redacted…"
"""Stands for the token in a stored copy; the link around it is kept as it was sent."""

_PORTAL_TOKEN = re.compile(r"/p/[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{8,}")
"""A portal token in a URL (24 random bytes and an HMAC, base64url, joined by a dot)."""

_STORED = "/p/" + REDACTED


class SealBroken(Exception):
    """A sealed token that cannot be opened (SECRET_KEY changed, or the row was altered)."""


def redact(text: str) -> str:
    """`text` with every portal token in a URL replaced by REDACTED."""
    return _PORTAL_TOKEN.sub(_STORED, text) if "/p/" in text else text


def stored_copy(text: str, token: str) -> str:
    """`text` as the outbox stores it: `token` (and any other portal token) redacted."""
    return redact(text.replace("/p/" + token, _STORED))


def with_token(text: str, token: str) -> str:
    """The stored `text` as its recipient gets it: the redacted link made to work again."""
    return text.replace(_STORED, "/p/" + token) if token else text


def _key(secret_key: str) -> bytes:
    label = b"relance outbox: sealed portal token"
    return hmac.new(secret_key.encode(), label, hashlib.sha256).digest()


def seal(token: str, secret_key: str, message_id: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key(secret_key)).encrypt(nonce, token.encode(), message_id.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(sealed: str, secret_key: str, message_id: str) -> str:
    if not sealed:
        return ""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        token = AESGCM(_key(secret_key)).decrypt(raw[:12], raw[12:], message_id.encode())
    except (InvalidTag, ValueError) as exc:
        raise SealBroken("the portal link of this message cannot be unsealed") from exc
    return token.decode()
