"""Staff pages: login, roles, CSRF."""

from __future__ import annotations

from litestar import Router

backoffice_router = Router(path="/backoffice", route_handlers=[])
