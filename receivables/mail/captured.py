"""Reading the demo's captured mail: the list, and one message parsed as its recipient gets it,
its portal links redacted (staff never see a working customer link)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage

from receivables.errors import NotFound
from receivables.mail.sealed_links import redact
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
    shown = [CapturedSummary(**{**r, "subject": redact(r["subject"])}) for r in rows[:PAGE]]
    return shown, len(rows) > PAGE


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


def redacted_copy(raw: bytes) -> str:
    """The message as kept by the demo's mail catcher: its portal links redacted in the
    subject and in every text part (decoded, so an encoding cannot hide a token)."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    changed = False
    subject = str(message.get("Subject", ""))
    if redact(subject) != subject:
        message.replace_header("Subject", redact(subject))
        changed = True
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        assert isinstance(part, EmailMessage)
        text = _part_text(part)
        if redact(text) != text:
            part.set_content(redact(text), subtype=part.get_content_subtype(), charset="utf-8")
            changed = True
    if not changed:
        return raw.decode("utf-8", errors="replace")
    return message.as_bytes().decode("utf-8", errors="replace")


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
    headers = [
        (name, redact(str(message[name]))) for name in SHOWN_HEADERS if message[name] is not None
    ]
    return ParsedMail(
        id=row.id,
        received_at=row.received_at,
        headers=headers,
        subject=redact(str(message["Subject"] or row.subject)),
        text=redact(_part_text(text_part)) if isinstance(text_part, EmailMessage) else "",
        html=redact(_part_text(html_part)) if isinstance(html_part, EmailMessage) else "",
        attachments=attachments,
    )
