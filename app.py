"""create_app(): the composition root, the only module that imports every face."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar, MediaType, Request, Response, get
from litestar.config.allowed_hosts import AllowedHostsConfig
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.template.config import TemplateConfig
from piccolo.engine.base import Engine

from receivables import db
from receivables.documents.pdf import stop_renderers
from receivables.errors import AllocationRefused, Conflict, InvalidInput, NotFound
from receivables.payments.gateway import StripeGateway, make_gateway
from receivables.settings import Settings, get_settings
from web.client_address import ClientAddressMiddleware
from web.deps import EngineDep, services
from web.filters import register_filters
from web.i18n import install_gettext, request_language
from web.middleware import access_log, security_headers

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("relance")


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/webhooks/")) or path == "/health"


def _error_page(request: Request, status: int, template: str, **context: Any) -> Response:
    if _wants_json(request):
        return Response(
            {"status_code": status, **context}, status_code=status, media_type=MediaType.JSON
        )
    return Template(
        template_name=template,
        context={"lang": request_language(request.headers, request.cookies), **context},
        status_code=status,
    )


def _http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if _wants_json(request):
        body: dict[str, Any] = {"status_code": status, "detail": exc.detail}
        if getattr(exc, "extra", None):
            body["extra"] = exc.extra
        return Response(body, status_code=status, headers=exc.headers)
    if status == 404:
        return _error_page(request, 404, "errors/404.html")
    if status >= 500:
        return _server_error(request, exc)
    return Template(
        template_name="errors/error.html",
        context={
            "status": status,
            "detail": exc.detail,
            "lang": request_language(request.headers, request.cookies),
        },
        status_code=status,
        headers=exc.headers,
    )


def _server_error(request: Request, exc: Exception) -> Response:
    ref = secrets.token_hex(4)
    log.error("unhandled error ref=%s path=%s", ref, web_path(request), exc_info=exc)
    return _error_page(request, HTTP_500_INTERNAL_SERVER_ERROR, "errors/500.html", error_ref=ref)


def _not_found(request: Request, exc: NotFound) -> Response:
    if _wants_json(request):
        return Response({"status_code": 404, "detail": f"not found: {exc}"}, status_code=404)
    return _error_page(request, 404, "errors/404.html")


def _invalid(request: Request, exc: InvalidInput) -> Response:
    problems = [
        {"field": p.field, "message": p.message, **({"line": p.line} if p.line else {})}
        for p in exc.problems
    ]
    if _wants_json(request):
        return Response(
            {"status_code": 400, "detail": "invalid input", "problems": problems}, status_code=400
        )
    return Template(
        template_name="errors/error.html",
        context={
            "status": 400,
            "detail": str(exc),
            "lang": request_language(request.headers, request.cookies),
        },
        status_code=400,
    )


def _conflict(request: Request, exc: Exception) -> Response:
    if _wants_json(request):
        return Response({"status_code": 409, "detail": str(exc)}, status_code=409)
    return Template(
        template_name="errors/error.html",
        context={
            "status": 409,
            "detail": str(exc),
            "lang": request_language(request.headers, request.cookies),
        },
        status_code=409,
    )


def web_path(request: Request) -> str:
    from web.middleware import redact_path

    return redact_path(request.url.path)


@get("/", name="home", include_in_schema=False)
async def home() -> Template:
    return Template(template_name="home.html", context={"page_title": "Welcome"})


@get("/health", name="health", media_type=MediaType.JSON, include_in_schema=False)
async def health(engine: EngineDep) -> Response:
    try:
        await engine.run_ddl("SELECT 1")
    except Exception as exc:  # the point of /health is to say so, not to crash
        log.warning("health check failed: %s", type(exc).__name__)
        return Response({"status": "error", "database": "unreachable"}, status_code=503)
    return Response({"status": "ok", "database": engine.engine_type})


def template_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(ROOT / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    register_filters(env)
    return install_gettext(env)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    gateway: StripeGateway | None = None,
    demo: bool = False,
) -> Litestar:
    """The web application built from `settings` alone (no environment read here): each face
    is made by its own factory, and the settings, the Stripe gateway and the database engine
    reach handlers through dependency injection (web/deps.py). With `engine` given the caller
    owns its lifetime (tests); `gateway` replaces the Stripe gateway (tests, fakes)."""
    import api
    import backoffice
    import portal
    import webhooks

    own_engine = engine is None
    engine = engine or db.make_engine(settings.database_url)
    db.use_engine(engine)
    gateway = gateway or make_gateway(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if own_engine:
            await db.start(engine, pool_size=settings.database_pool_size)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(stop_renderers)
            if own_engine:
                await db.stop(engine)

    app = Litestar(
        route_handlers=[
            home,
            health,
            api_docs,
            api.router(settings),
            portal.router(settings),
            backoffice.router(settings, demo=demo),
            webhooks.router(settings),
            create_static_files_router(
                path="/static", directories=[ROOT / "static"], include_in_schema=False
            ),
        ],
        lifespan=[lifespan],
        dependencies=services(settings, gateway, engine),
        template_config=TemplateConfig(
            instance=JinjaTemplateEngine.from_environment(template_environment())
        ),
        plugins=[HTMXPlugin()],
        middleware=[ClientAddressMiddleware(settings.trusted_proxies)],
        before_send=[security_headers, access_log],
        allowed_hosts=AllowedHostsConfig(allowed_hosts=settings.allowed_hosts),
        exception_handlers={
            HTTPException: _http_error,
            NotAuthorizedException: _http_error,
            PermissionDeniedException: _http_error,
            NotFound: _not_found,
            InvalidInput: _invalid,
            AllocationRefused: _conflict,
            Conflict: _conflict,
            HTTP_500_INTERNAL_SERVER_ERROR: _server_error,
        },
        openapi_config=_openapi(),
        debug=False,
        logging_config=None,
    )
    return app


def create_app_from_env() -> Litestar:
    """`relance serve`'s app factory: each server process reads the settings, sets up its
    logs and builds its app (its own database pool and PDF renderers)."""
    from web.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def _openapi():
    from litestar.openapi import OpenAPIConfig
    from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
    from litestar.openapi.spec import Components, SecurityScheme

    # The schema only: the browsable docs are /api/v1/docs, served with self-hosted assets
    # (Litestar's UI plugins load scripts from CDNs, which the CSP and offline machines refuse).
    return OpenAPIConfig(
        title="Relance API",
        version="1",
        description="Push customers, contacts, items and payments from your ERP; read statements.",
        path="/api/v1/schema",
        render_plugins=[JsonRenderPlugin(), YamlRenderPlugin()],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key from `relance apikey create` (rk_...).",
                )
            }
        ),
    )


@get("/api/v1/docs", name="api_docs", include_in_schema=False)
async def api_docs() -> Template:
    return Template(template_name="api_docs.html", context={"page_title": "API"})
