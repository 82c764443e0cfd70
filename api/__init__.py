"""JSON API for ERPs under /api/v1: API keys as bearer tokens, OpenAPI schema served."""

from __future__ import annotations

from litestar import Router

from api.auth import requires_api_key
from api.statement import customer_statement

api_router = Router(
    path="/api/v1",
    guards=[requires_api_key],
    route_handlers=[customer_statement],
    tags=["ERP"],
)
