"""Staff accounts, for admins: create, change role, deactivate, reset a password."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.forms import errors_of, form_values, text
from backoffice.pages import done, render, staff, tr
from backoffice.security import ADMINS, PREFIX, roles
from receivables.access import staff_accounts
from receivables.access.staff import create_user
from receivables.access.tables import Role
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.i18n import N_
from receivables.labels import LANGUAGE_NAMES, label

USERS = f"{PREFIX}/users"
ROLE_CHOICES = [(r.value, label("role", r.value)) for r in Role]
"""(code, English name): the page translates the name."""


async def _page(
    request: Request,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    _ = tr(request)
    return await render(
        request,
        "backoffice/users/list.html",
        status_code=status_code,
        page_title=_("Users"),
        users=await staff_accounts.list_staff(),
        role_choices=[(code, _(name)) for code, name in ROLE_CHOICES],
        values=values or {"role": Role.collector.value},
        errors=errors or {},
    )


@get("/users", name="bo:users", opt=roles(ADMINS))
async def users(request: Request) -> Template:
    return await _page(request)


@post("/users", name="bo:user-create", opt=roles(ADMINS))
async def user_create(request: Request) -> Template | Redirect:
    values = await form_values(request)
    try:
        user = await create_user(
            text(values, "email"),
            text(values, "name"),
            text(values, "role"),
            str(values.get("password", "")),
            phone=text(values, "phone"),
        )
    except InvalidInput as exc:
        values.pop("password", None)
        return await _page(request, values=values, errors=errors_of(exc), status_code=422)
    _ = tr(request)
    role = _(label("role", user.role))
    return done(
        request, USERS, _("%(name)s can now sign in as %(role)s.", name=user.name, role=role)
    )


@post("/users/{user_id:int}/role", name="bo:user-role", opt=roles(ADMINS))
async def user_role(request: Request, user_id: FromPath[int]) -> Redirect:
    values = await form_values(request)
    try:
        user = await staff_accounts.set_role(user_id, text(values, "role"), by=staff(request))
    except (Conflict, InvalidInput) as exc:
        return done(request, USERS, str(exc), "error")
    _ = tr(request)
    role = _(label("role", user.role))
    return done(request, USERS, _("%(name)s is now %(role)s.", name=user.name, role=role))


@post("/users/{user_id:int}/active", name="bo:user-active", opt=roles(ADMINS))
async def user_active(request: Request, user_id: FromPath[int]) -> Redirect:
    values = await form_values(request)
    active = text(values, "active") == "1"
    try:
        user = await staff_accounts.set_active(user_id, active, by=staff(request))
    except Conflict as exc:
        return done(request, USERS, str(exc), "error")
    _ = tr(request)
    if active:
        return done(request, USERS, _("%(name)s reactivated.", name=user.name))
    return done(
        request, USERS, _("%(name)s deactivated; their sessions have ended.", name=user.name)
    )


@post("/users/{user_id:int}/password", name="bo:user-password", opt=roles(ADMINS))
async def user_password(request: Request, user_id: FromPath[int]) -> Redirect:
    values = await form_values(request)
    try:
        await staff_accounts.reset_password(user_id, str(values.get("password", "")))
    except InvalidInput as exc:
        _ = tr(request)
        return done(request, USERS, _("Password not changed: %(why)s", why=exc), "error")
    return done(
        request, USERS, tr(request)(N_("Password changed; that user's open sessions have ended."))
    )


@post("/users/{user_id:int}/language", name="bo:user-language", opt=roles(ADMINS))
async def user_language(request: Request, user_id: FromPath[int]) -> Redirect:
    """An admin sets the language of a user's back office and notifications."""
    values = await form_values(request)
    _ = tr(request)
    try:
        user = await staff_accounts.set_language(user_id, text(values, "language"))
    except InvalidInput:
        return done(request, USERS, _("That language is not available."), "error")
    except NotFound:
        return done(request, USERS, _("That user no longer exists."), "error")
    name = LANGUAGE_NAMES[user.language]
    return done(
        request,
        USERS,
        _("%(name)s now reads the back office in %(language)s.", name=user.name, language=name),
    )


ROUTES = [users, user_create, user_role, user_active, user_password, user_language]
