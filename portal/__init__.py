"""Customer pages behind a signed link: parse, call a service, render."""

from __future__ import annotations

from litestar import Router

portal_router = Router(path="/p", route_handlers=[])
