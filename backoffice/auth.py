"""Sign in and sign out."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from backoffice.pages import staff, tr
from backoffice.security import (
    ALL_STAFF,
    PREFIX,
    PUBLIC,
    csrf_token,
    flash,
    load_staff,
    pop_flashes,
    roles,
    safe_next,
    sign_in,
    sign_out,
)
from receivables.access import login_throttle
from receivables.access.staff import authenticate
from receivables.access.tables import Role
from receivables.i18n import N_, Translator, locale_for, translator
from web.client_address import client_ip
from web.i18n import request_language


def _words(request: Request) -> Translator:
    """Before sign-in: the visitor's chosen (cookie) or browser language."""
    return translator(request_language(request.headers, request.cookies))


def _login_page(
    request: Request, *, next_path: str, email: str = "", error: str = "", status_code: int = 200
) -> Template:
    language = request_language(request.headers, request.cookies)
    return Template(
        template_name="backoffice/login.html",
        context={
            "lang": language,
            "locale": locale_for(language),
            "page_title": translator(language)("Sign in"),
            "next": next_path,
            "email": email,
            "error": translator(language)(error) if error else "",
            "csrf_token": csrf_token(request.session),
            "flash_messages": pop_flashes(request),
            "brand_href": f"{PREFIX}/",
        },
        status_code=status_code,
        headers={"cache-control": "no-store"},
    )


@get("/login", name="bo:login", opt=PUBLIC)
async def login_form(request: Request, next: FromQuery[str | None] = None) -> Template | Redirect:
    target = safe_next(next)
    if await load_staff(request) is not None:
        return Redirect(path=target, status_code=303)
    return _login_page(request, next_path=target)


@post("/login", name="bo:login-submit", opt=PUBLIC)
async def login_submit(request: Request) -> Template | Redirect:
    form = await request.form()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    address = client_ip(request) or "unknown"
    if not email or not password:
        return _login_page(
            request,
            next_path=target,
            email=email,
            error=N_("Enter your email and your password."),
            status_code=422,
        )
    verdict = await login_throttle.attempt(address, email)
    if not verdict.allowed:
        minutes = max(1, round(verdict.retry_after / 60))
        page = _login_page(
            request,
            next_path=target,
            email=email,
            error=_words(request).ngettext(
                "Too many failed attempts. Try again in %(num)d minute.",
                "Too many failed attempts. Try again in %(num)d minutes.",
                minutes,
            ),
            status_code=429,
        )
        page.headers["retry-after"] = str(verdict.retry_after)
        return page
    user = await authenticate(email, password)
    if user is None:
        return _login_page(
            request,
            next_path=target,
            email=email,
            error=N_("That email and password do not match an active account."),
            status_code=401,
        )
    await login_throttle.succeeded(address, email)
    sign_in(request, user)
    return Redirect(path=target, status_code=303)


@post("/logout", name="bo:logout", opt=roles(ALL_STAFF))
async def logout(request: Request) -> Redirect:
    words = tr(request)  # the user's language, known until the session ends
    sign_out(request)
    request.set_session({})
    flash(request, words(N_("You are signed out.")), "info")
    return Redirect(path=f"{PREFIX}/login", status_code=303)


@get("/", name="bo:home", opt=roles(ALL_STAFF))
async def home(request: Request) -> Redirect:
    """Each role starts where its work is: admin and finance on the dashboard, collectors
    on their inbox (the dashboard is in their menu)."""
    role = staff(request).role
    if role in (Role.admin.value, Role.finance.value):
        return Redirect(path=f"{PREFIX}/dashboard", status_code=303)
    if role == Role.collector.value:
        return Redirect(path=f"{PREFIX}/feedback", status_code=303)
    return Redirect(path=f"{PREFIX}/customers", status_code=303)
