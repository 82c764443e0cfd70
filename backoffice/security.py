"""Who may do what in the back office: the session, sign-in, roles and CSRF.

Everything here hangs off the back-office Router, so the rest of the app is untouched:

- the session is Litestar's encrypted cookie (AES-GCM, key derived from SECRET_KEY),
  HttpOnly, SameSite=Lax, Secure under an https BASE_URL, scoped to /backoffice; the
  expiry is sealed inside it (sliding, SESSION_IDLE) and the sign-in time caps it
  (SESSION_MAX);
- `requires_staff` loads the signed-in user on every request (a deactivated user or a
  changed password ends the session at once);
- `requires_role` reads the roles each handler declares in `opt` (`roles(...)` below)
  and refuses a handler that declares none: forgetting is a 403, never an open door;
- `requires_csrf` compares the session's token with the `x-csrftoken` header (htmx sends
  it from `hx-headers` on <body>) or the `_csrf_token` form field, on every unsafe method.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.session.base import SessionMiddleware
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.response import Redirect
from litestar.types import ASGIApp, Receive, Scope, Send

from receivables.access.tables import Role, StaffUser
from receivables.settings import Settings

PREFIX = "/backoffice"
LOGIN_PATH = f"{PREFIX}/login"
COOKIE = "relance_staff"
SESSION_IDLE = 8 * 3600
SESSION_MAX = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrftoken"
CSRF_FIELD = "_csrf_token"

ALL_STAFF = frozenset(r.value for r in Role)
WORKERS = frozenset({Role.admin.value, Role.collector.value})
"""Work customers and feedback: change contacts, statuses, blocks, links; validate answers."""
FINANCE = frozenset({Role.admin.value, Role.finance.value})
ADMINS = frozenset({Role.admin.value})


def roles(allowed: frozenset[str]) -> dict[str, Any]:
    """`opt` for a handler: the roles that may call it."""
    return {"roles": allowed}


PUBLIC: dict[str, Any] = {"public": True}


# ------------------------------------------------------------------ session


def session_key(secret_key: str) -> bytes:
    """The AES-256 key of the session cookie, derived so it is never SECRET_KEY itself."""
    return hashlib.sha256(b"relance/staff-session/v1\x00" + secret_key.encode()).digest()


def session_config(settings: Settings) -> CookieBackendConfig:
    if len(settings.secret_key) < 32:
        raise RuntimeError("the back office needs SECRET_KEY (32 characters or more)")
    return CookieBackendConfig(
        secret=session_key(settings.secret_key),
        key=COOKIE,
        path=PREFIX,
        max_age=SESSION_IDLE,
        httponly=True,
        samesite="lax",
        secure=settings.https,
    )


class StaffSessionMiddleware:
    """Litestar's session middleware with the cookie's key and flags from the settings the
    face is built with (`backoffice.router(settings)` mounts it through DefineMiddleware).
    Made on the first request, so an app without a usable SECRET_KEY still serves its other
    faces and the back office alone refuses."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._session: SessionMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._session is None:
            config = session_config(self.settings)
            self._session = SessionMiddleware(app=self.app, backend=config._backend_class(config))
        await self._session(scope, receive, send)


def password_fingerprint(user: StaffUser) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, made on first need."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def sign_in(request: Request, user: StaffUser) -> None:
    """A fresh session for the user: nothing of the anonymous one survives but its flashes."""
    flashes = request.session.get("flash", [])
    request.clear_session()
    request.set_session(
        {
            "uid": user.id,
            "fp": password_fingerprint(user),
            "at": int(time.time()),
            "csrf": secrets.token_urlsafe(32),
            "flash": flashes,
        }
    )


def sign_out(request: Request) -> None:
    request.clear_session()


def flash(request: Request, text: str, level: str = "success") -> None:
    request.session.setdefault("flash", []).append({"level": level, "text": text})


def pop_flashes(request: Request) -> list[dict[str, str]]:
    return request.session.pop("flash", None) or []


# ------------------------------------------------------------------ guards


async def load_staff(connection: ASGIConnection) -> StaffUser | None:
    """The signed-in, active user of this session (cached on the connection)."""
    if "staff" in connection.state:
        return connection.state.staff
    user = None
    session = connection.scope.get("session") or {}
    uid = session.get("uid") if isinstance(session, dict) else None
    signed_at = session.get("at", 0) if isinstance(session, dict) else 0
    if isinstance(uid, int) and time.time() - signed_at < SESSION_MAX:
        found = await StaffUser.objects().get(
            (StaffUser.id == uid) & (StaffUser.active == True)  # noqa: E712
        )
        if found is not None and hmac.compare_digest(
            str(session.get("fp", "")), password_fingerprint(found)
        ):
            user = found
    connection.state.staff = user
    return user


async def requires_staff(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if handler.opt.get("public"):
        return
    if await load_staff(connection) is None:
        raise NotAuthorizedException("Sign in to continue.")


async def requires_role(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if handler.opt.get("public"):
        return
    allowed = handler.opt.get("roles") or frozenset()
    user = await load_staff(connection)
    if user is None or user.role not in allowed:
        raise PermissionDeniedException("Your role does not allow this.")


async def requires_csrf(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    session = connection.scope.get("session") or {}
    expected = session.get("csrf") if isinstance(session, dict) else None
    sent = connection.headers.get(CSRF_HEADER)
    if not sent and isinstance(connection, Request):
        content_type = connection.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await connection.form()).get(CSRF_FIELD)
    if not expected or not sent or not hmac.compare_digest(str(sent), str(expected)):
        raise PermissionDeniedException(
            "This form has expired or did not come from this site. Reload the page and try again.",
            extra={"csrf": True},
        )


# ------------------------------------------------------------------ redirects


def safe_next(target: str | None) -> str:
    """A back-office path to return to after sign-in; anything else goes to the start page."""
    default = f"{PREFIX}/"
    if not target or len(target) > 2000 or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or target.startswith("//"):
        return default
    # No dot segments, plain or percent-encoded: /backoffice/../p/... must not climb out.
    lowered = parts.path.lower()
    if any(s in (".", "..") for s in parts.path.split("/")) or any(
        e in lowered for e in ("%2e", "%2f", "%5c")
    ):
        return default
    if not (parts.path == PREFIX or parts.path.startswith(PREFIX + "/")):
        return default
    if parts.path.startswith((LOGIN_PATH, f"{PREFIX}/logout")):
        return default
    return target


def login_url(next_path: str | None = None) -> str:
    if not next_path or next_path in (PREFIX, f"{PREFIX}/"):
        return LOGIN_PATH
    return f"{LOGIN_PATH}?{urlencode({'next': next_path})}"


def to_login(request: Request, exc: NotAuthorizedException) -> Response:
    """Anonymous (or expired): go and sign in, then come back (htmx: a full navigation).

    A refused POST is not replayed after sign-in: it returns to the page it came from."""
    htmx = getattr(request, "htmx", None)
    if request.method in SAFE_METHODS:
        current = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        referer = urlsplit(request.headers.get("referer", ""))
        current = referer.path + (f"?{referer.query}" if referer.query else "")
    if htmx and htmx.current_url_abs_path:
        current = htmx.current_url_abs_path
    target = login_url(safe_next(current))
    if htmx:
        return Response(content="", status_code=401, headers={"HX-Redirect": target})
    return Redirect(path=target, status_code=303)
