"""Mail as it left and as it arrived: outbox messages (the content sent to a customer, its
portal link redacted, with the SHA-256 of the exact bytes sent) and, in the demo, what the
local SMTP server captured (links redacted too). No page here shows a working portal token.

An HTML body is shown in a sandboxed <iframe> whose document comes from its own URL with
its own policy: no scripts, no network, inline styles only (mail is written that way), and
framable by the back office alone. The sandbox keeps the frame same-origin (nothing can run
in it) so the back office's script can size it to the whole mail.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from backoffice.pages import is_demo, render
from backoffice.security import ALL_STAFF, roles
from receivables.errors import NotFound
from receivables.i18n import N_
from receivables.ledger.tables import Customer
from receivables.mail.captured import get_captured, list_captured
from receivables.mail.sealed_links import redact
from receivables.mail.tables import OUTBOX_STATUS_LABELS, OutboxMessage

FRAMED_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; "
        "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"
    ),
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


_DOCTYPE = re.compile(r"\s*<!doctype[^>]*>", re.IGNORECASE)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


def _framed(html: str) -> Response:
    # Links open in a new tab (the frame itself never navigates); still no script, no form.
    # The doctype comes first, so the mail renders in standards mode as a mail program shows
    # it (a <base> written before the doctype threw the frame into quirks mode).
    body = html or "<p>(no HTML part)</p>"
    if doctype := _DOCTYPE.match(body):
        body = body[doctype.end() :]
    base = '<base target="_blank">'
    head = _HEAD.search(body)
    body = body[: head.end()] + base + body[head.end() :] if head else base + body
    return Response(
        content="<!doctype html>\n" + body,
        media_type="text/html; charset=utf-8",
        headers=FRAMED_HEADERS,
    )


async def _message(message_id: int) -> OutboxMessage:
    """The stored copy, links redacted once more on the way out (rows written before links
    were sealed are redacted by the worker and the migration; this is the last guard)."""
    message = await OutboxMessage.objects().get(OutboxMessage.id == message_id)
    if message is None:
        raise NotFound(f"email {message_id}")
    message.subject = redact(message.subject)
    message.text_body = redact(message.text_body)
    message.html_body = redact(message.html_body)
    message.sealed_token = ""
    return message


@get("/emails/{message_id:int}", name="bo:email", opt=roles(ALL_STAFF))
async def email_view(request: Request, message_id: FromPath[int]) -> Template:
    message = await _message(message_id)
    customer = (
        await Customer.objects().get(Customer.id == message.customer) if message.customer else None
    )
    return await render(
        request,
        "backoffice/mail/email.html",
        page_title=message.subject,
        message=message,
        status_labels=OUTBOX_STATUS_LABELS,
        customer=customer,
        recipients=[
            str(make_header(decode_header(line))) for line in message.to_addrs.splitlines()
        ],
    )


@get("/emails/{message_id:int}/html", name="bo:email-html", opt=roles(ALL_STAFF))
async def email_html(message_id: FromPath[int]) -> Response:
    return _framed((await _message(message_id)).html_body)


def _demo_only(request: Request) -> None:
    if not is_demo(request):
        raise NotFoundException()


@get("/mail", name="bo:mail", opt=roles(ALL_STAFF))
async def captured_list(request: Request, page: FromQuery[int] = 1) -> Template:
    _demo_only(request)
    messages, has_next = await list_captured(page)
    return await render(
        request,
        "backoffice/mail/list.html",
        page_title=N_("Captured mail"),
        messages=messages,
        page=max(1, page),
        has_next=has_next,
    )


@get("/mail/{mail_id:int}", name="bo:mail-message", opt=roles(ALL_STAFF))
async def captured_message(request: Request, mail_id: FromPath[int]) -> Template:
    _demo_only(request)
    mail = await get_captured(mail_id)
    return await render(request, "backoffice/mail/message.html", page_title=mail.subject, mail=mail)


@get("/mail/{mail_id:int}/html", name="bo:mail-html", opt=roles(ALL_STAFF))
async def captured_html(request: Request, mail_id: FromPath[int]) -> Response:
    _demo_only(request)
    return _framed((await get_captured(mail_id)).html)


ROUTES = [email_view, email_html, captured_list, captured_message, captured_html]
