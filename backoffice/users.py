"""Staff accounts, for admins: create, change role, deactivate, reset a password."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.forms import errors_of, form_values, text
from backoffice.pages import done, render, staff
from backoffice.security import ADMINS, PREFIX, roles
from receivables.access import staff_accounts
from receivables.access.staff import create_user
from receivables.access.tables import Role
from receivables.errors import Conflict, InvalidInput

USERS = f"{PREFIX}/users"
ROLE_CHOICES = [(r.value, r.value.capitalize()) for r in Role]


async def _page(
    request: Request,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    return await render(
        request,
        "backoffice/users/list.html",
        status_code=status_code,
        page_title="Users",
        users=await staff_accounts.list_staff(),
        role_choices=ROLE_CHOICES,
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
    return done(request, USERS, f"{user.name} can now sign in as {user.role}.")


@post("/users/{user_id:int}/role", name="bo:user-role", opt=roles(ADMINS))
async def user_role(request: Request, user_id: FromPath[int]) -> Redirect:
    values = await form_values(request)
    try:
        user = await staff_accounts.set_role(user_id, text(values, "role"), by=staff(request))
    except (Conflict, InvalidInput) as exc:
        return done(request, USERS, str(exc), "error")
    return done(request, USERS, f"{user.name} is now {user.role}.")


@post("/users/{user_id:int}/active", name="bo:user-active", opt=roles(ADMINS))
async def user_active(request: Request, user_id: FromPath[int]) -> Redirect:
    values = await form_values(request)
    active = text(values, "active") == "1"
    try:
        user = await staff_accounts.set_active(user_id, active, by=staff(request))
    except Conflict as exc:
        return done(request, USERS, str(exc), "error")
    state = "reactivated" if active else "deactivated; their sessions have ended"
    return done(request, USERS, f"{user.name} {state}.")


@post("/users/{user_id:int}/password", name="bo:user-password", opt=roles(ADMINS))
async def user_password(request: Request, user_id: FromPath[int]) -> Redirect:
    values = await form_values(request)
    try:
        await staff_accounts.reset_password(user_id, str(values.get("password", "")))
    except InvalidInput as exc:
        return done(request, USERS, f"Password not changed: {exc}", "error")
    return done(request, USERS, "Password changed; that user's open sessions have ended.")


ROUTES = [users, user_create, user_role, user_active, user_password]
