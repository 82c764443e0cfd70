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
from receivables.i18n import N_, Translator, choose_language, locale_for, translator
from receivables.labels import LANGUAGE_NAMES, label

NAV = (
    # (label, path, roles, demo only); an entry shows only when its page is mounted.
    (N_("Dashboard"), f"{PREFIX}/dashboard", ALL_STAFF, False),
    (N_("Agenda"), f"{PREFIX}/agenda", ALL_STAFF, False),
    (N_("Feedback"), f"{PREFIX}/feedback", ALL_STAFF, False),
    (N_("Customers"), f"{PREFIX}/customers", ALL_STAFF, False),
    (N_("Finance"), f"{PREFIX}/finance", FINANCE, False),
    (N_("Payments"), f"{PREFIX}/payments", FINANCE, False),
    (N_("Scenarios"), f"{PREFIX}/scenarios", ALL_STAFF, False),
    (N_("Captured mail"), f"{PREFIX}/mail", ALL_STAFF, True),
    (N_("Users"), f"{PREFIX}/users", ADMINS, False),
)
SUPERSEDED = {f"{PREFIX}/payments": f"{PREFIX}/finance"}
"""A basic page left out of the menu once the fuller one is mounted (still reachable)."""


def is_mounted(request: Request, path: str) -> bool:
    return path in _mounted(request)


def _mounted(request: Request) -> frozenset[str]:
    """The face's own paths, set in its router's `opt` by `backoffice.router()`."""
    return request.route_handler.opt.get("mounted", frozenset())


def staff(request: Request) -> StaffUser:
    user = request.state.staff
    assert user is not None, "guards run before handlers"
    return user


def language_of(user: StaffUser | None) -> str:
    """The language of a user's pages: their own setting, English otherwise."""
    return choose_language(getattr(user, "language", None))


def tr(request: Request) -> Translator:
    """gettext in the signed-in user's language, for flash messages and form errors:
    `_ = tr(request)` then `_("Saved %(name)s.", name=...)`."""
    return translator(language_of(request.state.staff))


def language_context(user: StaffUser | None) -> dict[str, Any]:
    """What every back-office page needs to speak the user's language (base.html reads `lang`;
    `label(kind, code)` gives a status or reason's English name, which pages pass to `_`)."""
    language = language_of(user)
    return {
        "lang": language,
        "locale": locale_for(language),
        "label": label,
        "language_names": LANGUAGE_NAMES,
        "language_url": f"{PREFIX}/language",
    }


def is_demo(request: Request) -> bool:
    """`create_app(..., demo=True)`: the flag rides in the face router's `opt`."""
    return bool(request.route_handler.opt.get("demo", False))


def nav_items(request: Request, user: StaffUser, pending: int = 0) -> list[dict[str, Any]]:
    path = request.url.path
    mounted = _mounted(request)
    items = []
    _ = translator(language_of(user))
    for name, href, allowed, demo_only in NAV:
        if user.role not in allowed or (demo_only and not is_demo(request)):
            continue
        if href not in mounted or SUPERSEDED.get(href) in mounted:
            continue
        items.append(
            {
                "label": _(name),
                "href": href,
                "active": path == href or path.startswith(href + "/"),
                "badge": pending if name == "Feedback" and pending else None,
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
    _ = translator(language_of(user))
    if isinstance(context.get("page_title"), str):
        context["page_title"] = _(context["page_title"])  # titles are marked N_ where set
    context.update(
        user={"name": user.name, "role": _(label("role", user.role))},
        staff=user,
        next_path=request.url.path,
        **language_context(user),
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
        **language_context(user),
    )
    return Template(template_name=template, context=context, status_code=status_code)


def done(
    request: Request, to: str, message: str, level: str = "success", **values: Any
) -> Redirect:
    """After a change: a flash, then the page that shows its effect (POST/redirect/GET).

    The message is a catalog msgid (marked `N_("Saved %(name)s.")`, its values given here),
    flashed in the user's language; a message not in the catalog (a domain error's text)
    is shown as it is."""
    flash(request, tr(request)(message, **values), level)
    return Redirect(path=to, status_code=303)
