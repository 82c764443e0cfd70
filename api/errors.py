"""The API's 400 for bodies that are not even the right JSON shape, naming the field.

Litestar reports a body's type errors as `extra: [{key, message, source}]`, but names the
whole body (`data`) for a missing or unknown field and says "Expected `str`, got `float`"
for an amount sent as a number. This handler names the field in every case and adds the
same `problems: [{field, message}]` list that business errors carry (app.py maps
InvalidInput), so an ERP reads one shape for every 400.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import ValidationException

from api.schemas import AMOUNT_FIELDS

_IN_MESSAGE = re.compile(
    r"Object (?P<what>missing required|contains unknown) field `(?P<name>[^`]+)`"
)
_NUMBER_FOR_TEXT = re.compile(r"Expected `str`, got `(?:int|float)`")
_BODY = "data"  # Litestar's name for the request body


def _public_name(request: Request, key: str) -> str:
    """The name the caller used: Litestar reports a parameter by its Python name (`on`),
    the caller sent its alias (`?date=`)."""
    parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    alias = getattr(parameter.kwarg_definition, "name", None) if parameter else None
    return alias or key


def _named(request: Request, entry: dict[str, Any]) -> dict[str, Any]:
    key = str(entry.get("key", ""))
    message = str(entry.get("message", ""))
    if entry.get("source") != "body":
        return {**entry, "key": _public_name(request, key)} if key else entry
    where = "" if key == _BODY else key
    if m := _IN_MESSAGE.match(message):
        key = f"{where}.{m['name']}" if where else m["name"]
        message = "required" if m["what"] == "missing required" else "unknown field"
    elif key == _BODY:
        key = "body"
        if message == f"'{_BODY}'":  # what Litestar says of an empty body
            message = "a JSON body is required"
    elif _NUMBER_FOR_TEXT.match(message) and key.rsplit(".", 1)[-1] in AMOUNT_FIELDS:
        message = 'send amounts as a JSON string like "1234.50", never a number'
    elif message.startswith("Invalid RFC3339 encoded date"):
        message = "not a date; write YYYY-MM-DD"
    return {**entry, "key": key, "message": message}


def validation_error(request: Request, exc: ValidationException) -> Response:
    extra = [_named(request, e) for e in exc.extra] if isinstance(exc.extra, list) else []
    body: dict[str, Any] = {"status_code": 400, "detail": exc.detail}
    if extra:
        body["extra"] = extra
        body["problems"] = [{"field": e.get("key", ""), "message": e["message"]} for e in extra]
    return Response(body, status_code=400)
