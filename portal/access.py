"""The way in: a signed link exchanged for a visit, dead links, fresh links, the language.

GET /p/{token} never consumes the link: it opens a short visit (cookie on /p) and
redirects to token-free pages: the statement, or the allowed page its `next` names (see
`receivables.portal.deep_links`). Every dead link (tampered, unknown, expired, revoked)
gets the same page and status, whose form asks for fresh links for the account's own
contacts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from receivables.access.rate_limits import RateLimit, client_bucket
from receivables.i18n import LANGUAGES, locale_for, translator
from receivables.portal.deep_links import landing
from receivables.portal.emails import PortalMail
from receivables.portal.fresh_links import send_fresh_links
from receivables.portal.sessions import SESSION_HOURS, Visit, csrf_ok, exchange_link, visit_for
from receivables.portal.sessions import set_language as remember_language
from receivables.settings import Settings
from web.client_address import client_ip
from web.deps import SettingsDep
from web.i18n import LANGUAGE_COOKIE, request_language
from web.mailing import TemplateComposer

ROOT = Path(__file__).resolve().parent.parent
SESSION_COOKIE = "relance_portal"
FORM_COOKIE = "relance_portal_form"
# Per client address, in the database: they hold across every web process.
LINK_LIMIT = RateLimit("portal.link", limit=30, window_seconds=60)
"""Link openings: slows guessing."""
RESEND_LIMIT = RateLimit("portal.fresh_link", limit=5, window_seconds=600)
"""Fresh-link requests: slows mail bombing (each account also gets at most one per 15 min)."""
PORTAL_HEADERS = {
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-robots-tag": "noindex, nofollow",
}


class NoVisit(Exception):
    """No live visit behind this request (no cookie, ended, or its link is dead)."""


class BadForm(Exception):
    """A portal POST without its CSRF token."""


@dataclass
class TooManyAttempts(Exception):
    retry_after: float


def portal_mail(settings: Settings) -> PortalMail:
    return PortalMail(
        compose=TemplateComposer(ROOT / "templates"),
        mail_from=settings.smtp_from,
        base_url=settings.base_url,
    )


def browser_language(request: Request) -> str:
    """Pages without an account (dead links): the language last chosen, else the browser's."""
    return request_language(request.headers, request.cookies)


@lru_cache(maxsize=32)
def babel_locale(code: str) -> Locale:
    """Parsed once: Babel re-parses a locale string on every call (half the cost of a row)."""
    return Locale.parse(code)


def page_context(language: str, company_locale: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "t": translator(language),
        "lang": language,
        "locale": babel_locale(locale_for(language, company_locale)),
        "languages": LANGUAGES,
        **extra,
    }


async def current_visit(request: Request, settings: SettingsDep) -> Visit:
    """Dependency: the live visit behind the session cookie, or the 'visit ended' page."""
    visit = await visit_for(request.cookies.get(SESSION_COOKIE), settings.secret_key)
    if visit is None:
        raise NoVisit()
    return visit


def require_csrf(request: Request, visit: Visit, form: Any) -> None:
    supplied = request.headers.get("x-csrftoken") or form.get("_csrf_token")
    if not csrf_ok(visit, supplied):
        raise BadForm()


def _form_token(secret_key: str, nonce: str) -> str:
    mac = hmac.new(secret_key.encode(), b"portal-form:" + nonce.encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def _cookie(settings: Settings, key: str, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        path="/p",
        httponly=True,
        samesite="lax",
        secure=settings.https,
        max_age=max_age,
    )


def _dead_link_page(
    request: Request, settings: Settings, *, sent: bool = False, status: int = 404
) -> Template:
    nonce = secrets.token_urlsafe(16)
    return Template(
        template_name="portal/link_invalid.html",
        context=page_context(
            browser_language(request),
            form_token=_form_token(settings.secret_key, nonce),
            sent=sent,
        ),
        status_code=status,
        cookies=[_cookie(settings, FORM_COOKIE, nonce, 3600)],
    )


@get("/{token:str}", name="portal:open", include_in_schema=False)
async def open_link(request: Request, token: FromPath[str], settings: SettingsDep) -> Response:
    ip = client_ip(request)
    if (wait := await LINK_LIMIT.hit(client_bucket(ip))) is not None:
        raise TooManyAttempts(wait)
    raw = await exchange_link(
        token,
        secret_key=settings.secret_key,
        ip=ip,
        user_agent=request.headers.get("user-agent", ""),
    )
    if raw is None:
        return _dead_link_page(request, settings)
    return Redirect(
        path=landing(request.query_params.get("next")),
        status_code=303,
        cookies=[_cookie(settings, SESSION_COOKIE, raw, SESSION_HOURS * 3600)],
    )


@post("/{token:str}", name="portal:fresh-link", include_in_schema=False, status_code=200)
async def ask_fresh_link(request: Request, token: FromPath[str], settings: SettingsDep) -> Response:
    """Same answer whatever the token: never tells whether an account exists."""
    ip = client_ip(request)
    if (wait := await RESEND_LIMIT.hit(client_bucket(ip))) is not None:
        raise TooManyAttempts(wait)
    form = await request.form()
    nonce = request.cookies.get(FORM_COOKIE, "")
    supplied = str(form.get("_csrf_token") or "")
    if not nonce or not hmac.compare_digest(_form_token(settings.secret_key, nonce), supplied):
        raise BadForm()
    await send_fresh_links(
        token,
        secret_key=settings.secret_key,
        days=settings.portal_link_days,
        ip=ip,
        mail=portal_mail(settings),
    )
    return _dead_link_page(request, settings, sent=True, status=200)


@post("/language", name="portal:language", include_in_schema=False)
async def choose_page_language(
    request: Request, visit: NamedDependency[Visit], settings: SettingsDep
) -> Redirect:
    form = await request.form()
    require_csrf(request, visit, form)
    kept = await remember_language(visit, str(form.get("language") or ""))
    back = str(form.get("next") or "/p/statement")
    if not back.startswith("/p/") or back.startswith("//"):
        back = "/p/statement"
    # Also for the pages a visit does not reach: a dead link, an error page.
    cookie = Cookie(
        key=LANGUAGE_COOKIE,
        value=kept,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.https,
        max_age=365 * 24 * 3600 if kept else 0,
    )
    return Redirect(path=back, status_code=303, cookies=[cookie])


def visit_ended(request: Request, _exc: Exception) -> Response:
    headers = {"HX-Refresh": "true"} if request.headers.get("hx-request") else None
    return Template(
        template_name="portal/visit_ended.html",
        context=page_context(browser_language(request)),
        status_code=401,
        headers=headers,
    )


def form_expired(request: Request, _exc: Exception) -> Response:
    return Template(
        template_name="portal/form_expired.html",
        context=page_context(browser_language(request)),
        status_code=403,
    )


def too_many(request: Request, exc: Exception) -> Response:
    wait = int(getattr(exc, "retry_after", 60)) + 1
    return Template(
        template_name="portal/too_many.html",
        context=page_context(browser_language(request), wait=wait),
        status_code=429,
        headers={"Retry-After": str(wait)},
    )
