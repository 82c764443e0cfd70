"""Customer pages behind a signed link: parse, call a service, render."""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import MutableScopeHeaders
from litestar.di import Provide
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from portal.access import (
    PORTAL_HEADERS,
    BadForm,
    NoVisit,
    TooManyAttempts,
    ask_fresh_link,
    choose_page_language,
    current_visit,
    form_expired,
    open_link,
    too_many,
    visit_ended,
)
from portal.answers import answer_form, answer_submit
from portal.pages import invoice_pdf, statement_page, statement_pdf, statement_spreadsheet
from portal.pay import ROUTES as pay_routes
from receivables.settings import Settings


def portal_headers(app: ASGIApp) -> ASGIApp:
    """Every portal answer, errors included: no Referer leaves, nothing is cached."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in PORTAL_HEADERS.items():
                    headers[name] = value
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def router(settings: Settings) -> Router:
    """The face for `create_app`: handlers take the settings and the Stripe gateway by
    injection (web/deps.py), the visit from this router's own dependency."""
    del settings  # nothing in the face's shape depends on them today
    return Router(
        path="/p",
        route_handlers=[
            statement_page,
            statement_pdf,
            statement_spreadsheet,
            invoice_pdf,
            answer_form,
            answer_submit,
            choose_page_language,
            open_link,
            ask_fresh_link,
            *pay_routes,
        ],
        dependencies={"visit": Provide(current_visit)},
        middleware=[portal_headers],
        exception_handlers={
            NoVisit: visit_ended,
            BadForm: form_expired,
            TooManyAttempts: too_many,
        },
        include_in_schema=False,
    )
