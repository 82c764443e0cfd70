"""Hooks on every response (matched routes, 404s and errors alike): security headers and an
access log that never holds a portal token."""

from __future__ import annotations

import logging
import re

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_TOKEN_PATH = re.compile(r"^/p/[^/]+")
access_logger = logging.getLogger("relance.access")
_DEFAULTS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def redact_path(path: str) -> str:
    """Portal paths carry a bearer token: never write it anywhere."""
    return _TOKEN_PATH.sub("/p/[redacted]", path)


async def security_headers(message: Message, scope: Scope) -> None:
    """Set the defaults a handler did not set itself (the portal sets a stricter referrer)."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in _DEFAULTS.items():
        if name not in headers:
            headers[name] = value


async def access_log(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    access_logger.info(
        "request",
        extra={
            "method": scope.get("method"),
            "path": redact_path(scope.get("path", "")),
            "status": message["status"],
        },
    )
