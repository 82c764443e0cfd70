"""Rendering back-office pages: the layout's context (user, navigation, flashes, CSRF)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Redirect, Template

from backoffice.security import (
    ADMINS,
    ALL_STAFF,
    FINANCE,
    PREFIX,
    WORKERS,
    csrf_token,
    flash,
    pop_flashes,
)
from receivables.access.tables import StaffUser
from receivables.feedback_inbox import pending_count

NAV = (
    # (label, path, roles, demo only); an entry shows only when its page is mounted.
    ("Dashboard", f"{PREFIX}/dashboard", ALL_STAFF, False),
    ("Agenda", f"{PREFIX}/agenda", ALL_STAFF, False),
    ("Feedback", f"{PREFIX}/feedback", ALL_STAFF, False),
    ("Customers", f"{PREFIX}/customers", ALL_STAFF, False),
    ("Finance", f"{PREFIX}/finance", FINANCE, False),
    ("Payments", f"{PREFIX}/payments", FINANCE, False),
    ("Scenarios", f"{PREFIX}/scenarios", ALL_STAFF, False),
    ("Captured mail", f"{PREFIX}/mail", ALL_STAFF, True),
    ("Users", f"{PREFIX}/users", ADMINS, False),
)
SUPERSEDED = {f"{PREFIX}/payments": f"{PREFIX}/finance"}
"""A basic page left out of the menu once the fuller one is mounted (still reachable)."""


def is_mounted(request: Request, path: str) -> bool:
    return path in _mounted(request)


def _mounted(request: Request) -> frozenset[str]:
    app = request.app
    paths = getattr(app.state, "backoffice_paths", None)
    if paths is None:
        paths = frozenset(route.path for route in app.routes)
        app.state.backoffice_paths = paths
    return paths


def staff(request: Request) -> StaffUser:
    user = request.state.staff
    assert user is not None, "guards run before handlers"
    return user


def is_demo(request: Request) -> bool:
    return bool(getattr(request.app.state, "demo", False))


def nav_items(request: Request, user: StaffUser, pending: int = 0) -> list[dict[str, Any]]:
    path = request.url.path
    mounted = _mounted(request)
    items = []
    for label, href, allowed, demo_only in NAV:
        if user.role not in allowed or (demo_only and not is_demo(request)):
            continue
        if href not in mounted or SUPERSEDED.get(href) in mounted:
            continue
        items.append(
            {
                "label": label,
                "href": href,
                "active": path == href or path.startswith(href + "/"),
                "badge": pending if label == "Feedback" and pending else None,
            }
        )
    return items


def is_fragment(request: Request, *targets: str) -> bool:
    """An htmx request (not a boosted navigation) aimed at one of these element ids."""
    htmx = getattr(request, "htmx", None)
    if not htmx or htmx.boosted:
        return False
    return not targets or htmx.target in targets


async def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> Template:
    """A whole page in the back-office layout."""
    user = staff(request)
    context.update(
        user={"name": user.name, "role": user.role},
        staff=user,
        can_work=user.role in WORKERS,
        is_admin=user.role in ADMINS,
        logout_url=f"{PREFIX}/logout",
        brand_href=f"{PREFIX}/",
        nav=nav_items(request, user, await pending_count()),
        flash_messages=pop_flashes(request),
        csrf_token=csrf_token(request.session),
    )
    return Template(template_name=template, context=context, status_code=status_code)


def fragment(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> Template:
    """A piece of a page for htmx; the CSRF token rides along for its forms."""
    user = staff(request)
    context.update(
        staff=user,
        can_work=user.role in WORKERS,
        is_admin=user.role in ADMINS,
        csrf_token=csrf_token(request.session),
    )
    return Template(template_name=template, context=context, status_code=status_code)


def done(request: Request, to: str, message: str, level: str = "success") -> Redirect:
    """After a change: a flash, then the page that shows its effect (POST/redirect/GET)."""
    flash(request, message, level)
    return Redirect(path=to, status_code=303)
