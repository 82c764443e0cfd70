"""Staff pages: login, roles, CSRF.

One Router carries the whole face: its session middleware, its guards (signed in, role
declared by each handler, CSRF on unsafe methods) and its own answers to "not signed in"
(go and sign in, then come back) and "not allowed". app.py only mounts it.
"""

from __future__ import annotations

from litestar import Request, Response, Router
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import DefineMiddleware
from litestar.response import Template

from backoffice import (
    auth,
    cash,
    customers,
    dashboard,
    dunning,
    feedback,
    language,
    mail,
    payments,
    users,
)
from backoffice.finance import ROUTES as finance_routes
from backoffice.pages import language_context, language_of, nav_items
from backoffice.payment_attempts import ROUTES as attempt_routes
from backoffice.security import (
    PREFIX,
    StaffSessionMiddleware,
    csrf_token,
    requires_csrf,
    requires_role,
    requires_staff,
    to_login,
)
from receivables.i18n import translator
from receivables.settings import Settings


def _denied(request: Request, exc: PermissionDeniedException) -> Response:
    user = request.state.get("staff") if "staff" in request.state else None
    csrf = bool(exc.extra and isinstance(exc.extra, dict) and exc.extra.get("csrf"))
    context = {
        **language_context(user),
        "page_title": translator(language_of(user))("Not allowed"),
        "detail": exc.detail,
        "csrf_failure": csrf,
        "brand_href": f"{PREFIX}/",
        "csrf_token": csrf_token(request.session) if "session" in request.scope else "",
    }
    if user is not None:
        context.update(
            user={"name": user.name, "role": user.role},
            logout_url=f"{PREFIX}/logout",
            nav=nav_items(request, user),
        )
    return Template(template_name="backoffice/denied.html", context=context, status_code=403)


def router(settings: Settings, *, demo: bool = False) -> Router:
    """The face for `create_app`: the session cookie made from `settings`, the demo flag and
    the face's own paths (the menu shows mounted pages only) in the router's `opt`; handlers
    take the settings and the Stripe gateway by injection (web/deps.py)."""
    face = Router(
        path=PREFIX,
        route_handlers=[
            auth.login_form,
            auth.login_submit,
            auth.logout,
            auth.home,
            *customers.ROUTES,
            *feedback.ROUTES,
            *mail.ROUTES,
            *payments.ROUTES,
            *finance_routes,
            *attempt_routes,
            *cash.ROUTES,
            *users.ROUTES,
            *language.ROUTES,
            *dunning.ROUTES,
            *dashboard.ROUTES,
        ],
        middleware=[DefineMiddleware(StaffSessionMiddleware, settings=settings)],
        guards=[requires_staff, requires_role, requires_csrf],
        exception_handlers={
            NotAuthorizedException: to_login,
            PermissionDeniedException: _denied,
        },
        opt={"demo": demo},
        include_in_schema=False,
    )
    face.opt["mounted"] = frozenset(route.path for route in face.routes)
    return face
