"""Reading the demo's captured mail: the list, and one message parsed as its recipient gets it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import message_from_string, policy
from email.message import EmailMessage

from receivables.errors import NotFound
from receivables.mail.tables import CapturedMail

PAGE = 50


@dataclass(frozen=True)
class CapturedSummary:
    id: int
    received_at: datetime
    mail_from: str
    rcpt_to: str
    subject: str


@dataclass(frozen=True)
class ParsedMail:
    id: int
    received_at: datetime
    headers: list[tuple[str, str]]
    subject: str
    text: str
    html: str
    attachments: list[tuple[str, str, int]]
    """(file name, content type, size in bytes)."""


SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To")


async def list_captured(page: int = 1) -> tuple[list[CapturedSummary], bool]:
    """Newest first; returns the page and whether there is another after it."""
    page = max(1, page)
    rows = (
        await CapturedMail.select(
            CapturedMail.id,
            CapturedMail.received_at,
            CapturedMail.mail_from,
            CapturedMail.rcpt_to,
            CapturedMail.subject,
        )
        .order_by(CapturedMail.id, ascending=False)
        .limit(PAGE + 1)
        .offset((page - 1) * PAGE)
    )
    return [CapturedSummary(**r) for r in rows[:PAGE]], len(rows) > PAGE


def parse(raw: str) -> EmailMessage:
    message = message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _part_text(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


async def get_captured(mail_id: int) -> ParsedMail:
    row = await CapturedMail.objects().get(CapturedMail.id == mail_id)
    if row is None:
        raise NotFound(f"captured mail {mail_id}")
    message = parse(row.raw)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    attachments = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        attachments.append(
            (
                part.get_filename() or "(unnamed)",
                part.get_content_type(),
                len(payload) if isinstance(payload, bytes) else 0,
            )
        )
    headers = [(name, str(message[name])) for name in SHOWN_HEADERS if message[name] is not None]
    return ParsedMail(
        id=row.id,
        received_at=row.received_at,
        headers=headers,
        subject=str(message["Subject"] or row.subject),
        text=_part_text(text_part) if isinstance(text_part, EmailMessage) else "",
        html=_part_text(html_part) if isinstance(html_part, EmailMessage) else "",
        attachments=attachments,
    )
