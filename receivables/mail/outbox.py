"""The outbox: emails written in the caller's transaction, sent later by the worker.

Each message keeps its exact content, a stable Message-ID and its threading headers.
Sending claims messages (FOR UPDATE SKIP LOCKED on Postgres, a guarded UPDATE on SQLite)
so several workers never send one twice; 4xx answers are retried with exponential
backoff, 5xx answers mark the message failed with the server's words.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr

import aiosmtplib

from receivables import history
from receivables.db import atomic, is_postgres
from receivables.history import Actor
from receivables.mail.tables import OutboxMessage, OutboxStatus
from receivables.settings import Settings

log = logging.getLogger("relance.mail")
MAX_ATTEMPTS = 8
BASE_BACKOFF_SECONDS = 30
STALE_CLAIM = timedelta(minutes=10)


def one_line(text: str) -> str:
    """Header values never carry CR/LF: a name or subject cannot add a header."""
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


def ascii_address(email: str) -> str:
    """The address as SMTP without SMTPUTF8 carries it: an international domain in IDNA
    (punycode); a non-ASCII local part cannot be carried and raises ValueError."""
    local, _, domain = one_line(email).rpartition("@")
    if not local.isascii():
        raise ValueError(f"{email}: the part before @ must be ASCII")
    try:
        ascii_domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{email}: {exc}") from None
    return f"{local}@{ascii_domain}"


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""

    def header(self) -> str:
        return formataddr((one_line(self.name), ascii_address(self.email)))


@dataclass(frozen=True)
class Attachment:
    """A file rendered when the message is sent; its SHA-256 goes to the history."""

    filename: str
    content_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def safe_filename(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", one_line(self.filename))[:120] or "attachment"


@dataclass(frozen=True)
class MessageKind:
    """What the sender asks the code that queued messages of one kind, just before sending.

    `cancel_reason` runs in the transaction that cancels the message when it answers a
    reason (its own changes, such as cancelling the action behind it, commit with it);
    `attachments` renders the files to attach, at send time.
    """

    cancel_reason: Callable[[dict], Awaitable[str | None]] | None = None
    attachments: Callable[[dict, Settings], Awaitable[list[Attachment]]] | None = None


MESSAGE_KINDS: dict[str, MessageKind] = {}
"""Hooks by OutboxMessage.kind; filled by the modules that queue such messages."""


def register_kind(kind: str, hooks: MessageKind) -> None:
    MESSAGE_KINDS[kind] = hooks


async def queue_email(
    *,
    company_id: int,
    customer_id: int | None,
    kind: str,
    mail_from: str,
    to: list[Recipient],
    subject: str,
    text_body: str,
    html_body: str = "",
    reply_to: str = "",
    actor: Actor,
    thread: bool = False,
    details: dict | None = None,
) -> OutboxMessage:
    """Write one email to the outbox (and its history event) in the caller's transaction.

    With `thread`, the message answers the customer's previous message of the same kind
    (In-Reply-To, References), so reminders read as one conversation.
    """
    if not to:
        raise ValueError("an email needs at least one recipient")
    domain = (parseaddr(mail_from)[1].rpartition("@")[2] or "relance.local").strip()
    async with atomic():
        in_reply_to, references = "", ""
        if thread and customer_id is not None:
            previous = (
                await OutboxMessage.select(OutboxMessage.message_id, OutboxMessage.references)
                .where((OutboxMessage.customer == customer_id) & (OutboxMessage.kind == kind))
                .order_by(OutboxMessage.id, ascending=False)
                .first()
            )
            if previous:
                in_reply_to = previous["message_id"]
                references = " ".join(
                    p for p in (previous["references"], previous["message_id"]) if p
                )
        message = OutboxMessage(
            company=company_id,
            customer=customer_id,
            kind=kind,
            message_id=make_msgid(idstring=secrets.token_hex(8), domain=domain),
            in_reply_to=in_reply_to,
            references=references,
            mail_from=one_line(mail_from),
            reply_to=one_line(reply_to),
            to_addrs="\n".join(r.header() for r in to),
            subject=one_line(subject),
            text_body=text_body,
            html_body=html_body,
        )
        await message.save()
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="email.queued",
            customer_id=customer_id,
            details={
                "outbox": message.id,
                "message_id": message.message_id,
                "kind": kind,
                "to": [r.email for r in to],
                "subject": message.subject,
                **(details or {}),
            },
        )
    return message


def build_mime(row: dict, attachments: Sequence[Attachment] = ()) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = row["message_id"]
    msg["From"] = row["mail_from"]
    msg["To"] = ", ".join(row["to_addrs"].splitlines())
    if row["reply_to"]:
        msg["Reply-To"] = row["reply_to"]
    msg["Subject"] = row["subject"]
    msg["Date"] = datetime.now(UTC)
    if row["in_reply_to"]:
        msg["In-Reply-To"] = row["in_reply_to"]
        msg["References"] = row["references"] or row["in_reply_to"]
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row["text_body"])
    if row["html_body"]:
        msg.add_alternative(row["html_body"], subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.safe_filename,
        )
    return msg


def _addresses(to_addrs: str) -> list[str]:
    return [parseaddr(line)[1] for line in to_addrs.splitlines() if line.strip()]


async def claim(worker_id: str, limit: int, now: datetime | None = None) -> list[dict]:
    """Take up to `limit` due messages for this worker; nobody else gets them."""
    now = now or datetime.now(UTC)
    async with atomic():
        # Messages claimed by a worker that died long ago go back to the queue.
        await OutboxMessage.update(
            {OutboxMessage.status: OutboxStatus.queued.value, OutboxMessage.claimed_by: ""}
        ).where(
            (OutboxMessage.status == OutboxStatus.sending.value)
            & (OutboxMessage.claimed_at < now - STALE_CLAIM)
        )
        due = (
            OutboxMessage.select(OutboxMessage.id)
            .where(
                (OutboxMessage.status == OutboxStatus.queued.value)
                & (OutboxMessage.next_attempt_at <= now)
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if is_postgres():
            due = due.lock_rows("UPDATE", skip_locked=True)
        ids = [r["id"] for r in await due]
        if not ids:
            return []
        await OutboxMessage.update(
            {
                OutboxMessage.status: OutboxStatus.sending.value,
                OutboxMessage.claimed_by: worker_id,
                OutboxMessage.claimed_at: now,
            }
        ).where(OutboxMessage.id.is_in(ids) & (OutboxMessage.status == OutboxStatus.queued.value))
        return (
            await OutboxMessage.select()
            .where(
                OutboxMessage.id.is_in(ids)
                & (OutboxMessage.claimed_by == worker_id)
                & (OutboxMessage.status == OutboxStatus.sending.value)
            )
            .order_by(OutboxMessage.id)
        )


async def _mark(
    row: dict,
    status: OutboxStatus,
    error: str = "",
    retry_in: float | None = None,
    attachments: Sequence[Attachment] = (),
):
    now = datetime.now(UTC)
    values: dict = {
        OutboxMessage.status: status.value,
        OutboxMessage.attempts: row["attempts"] + 1,
        OutboxMessage.last_error: error[:2000],
        OutboxMessage.claimed_by: "",
    }
    if status == OutboxStatus.sent:
        values[OutboxMessage.sent_at] = now
    if retry_in is not None:
        values[OutboxMessage.next_attempt_at] = now + timedelta(seconds=retry_in)
    async with atomic():
        await OutboxMessage.update(values).where(OutboxMessage.id == row["id"])
        if status in (OutboxStatus.sent, OutboxStatus.failed):
            await history.record(
                company_id=row["company"],
                actor=Actor.system("mail"),
                kind=f"email.{status.value}",
                customer_id=row["customer"],
                details={
                    "outbox": row["id"],
                    "message_id": row["message_id"],
                    **({"error": error[:500]} if error else {}),
                    **(
                        {
                            "attachments": [
                                {
                                    "filename": a.safe_filename,
                                    "sha256": a.sha256,
                                    "size": len(a.content),
                                }
                                for a in attachments
                            ]
                        }
                        if attachments
                        else {}
                    ),
                },
            )


def smtp_client(settings: Settings) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        use_tls=settings.smtp_tls == "tls",
        start_tls=True if settings.smtp_tls == "starttls" else False,
        timeout=30,
    )


async def send_due(settings: Settings, *, worker_id: str | None = None, batch: int = 50) -> int:
    """Send what is due over one reused connection; returns the number sent."""
    worker_id = worker_id or f"{socket.gethostname()}:{secrets.token_hex(4)}"
    sent = 0
    while rows := await claim(worker_id, batch):
        client = smtp_client(settings)
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            for row in rows:
                await _retry_or_fail(row, f"cannot reach {settings.smtp_host}: {exc}")
            return sent
        try:
            for row in rows:
                hooks = MESSAGE_KINDS.get(row["kind"])
                if hooks and hooks.cancel_reason and await _cancelled(row, hooks, worker_id):
                    continue
                attachments: list[Attachment] = []
                if hooks and hooks.attachments:
                    try:
                        attachments = await hooks.attachments(row, settings)
                    except Exception as exc:  # a broken document must not stop the others
                        log.exception("attachments of outbox message %s failed", row["id"])
                        await _retry_or_fail(row, f"attachments could not be rendered: {exc}")
                        continue
                try:
                    await client.send_message(
                        build_mime(row, attachments),
                        sender=parseaddr(row["mail_from"])[1],
                        recipients=_addresses(row["to_addrs"]),
                    )
                except aiosmtplib.SMTPResponseException as exc:
                    answer = f"{exc.code} {exc.message}"
                    if 400 <= exc.code < 500:
                        await _retry_or_fail(row, answer)
                    else:
                        await _mark(row, OutboxStatus.failed, answer)
                    if not client.is_connected:
                        await client.connect()
                    continue
                except (aiosmtplib.SMTPException, OSError) as exc:
                    await _retry_or_fail(row, str(exc))
                    if not client.is_connected:
                        await client.connect()
                    continue
                await _mark(row, OutboxStatus.sent, attachments=attachments)
                sent += 1
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()
    return sent


async def _cancelled(row: dict, hooks: MessageKind, worker_id: str) -> bool:
    """Ask the message's kind whether it is still wanted; cancel it (with the reason) if not."""
    assert hooks.cancel_reason is not None
    async with atomic():
        reason = await hooks.cancel_reason(row)
        if reason is None:
            return False
        await OutboxMessage.update(
            {
                OutboxMessage.status: OutboxStatus.cancelled.value,
                OutboxMessage.last_error: reason[:2000],
                OutboxMessage.claimed_by: "",
            }
        ).where((OutboxMessage.id == row["id"]) & (OutboxMessage.claimed_by == worker_id))
        await history.record(
            company_id=row["company"],
            actor=Actor.system("mail"),
            kind="email.cancelled",
            customer_id=row["customer"],
            details={"outbox": row["id"], "message_id": row["message_id"], "reason": reason[:500]},
        )
    return True


async def _retry_or_fail(row: dict, error: str) -> None:
    attempts = row["attempts"] + 1
    if attempts >= MAX_ATTEMPTS:
        await _mark(row, OutboxStatus.failed, f"gave up after {attempts} attempts: {error}")
        return
    await _mark(
        row, OutboxStatus.queued, error, retry_in=BASE_BACKOFF_SECONDS * 2 ** (attempts - 1)
    )


__all__ = [
    "Attachment",
    "ascii_address",
    "MessageKind",
    "Recipient",
    "build_mime",
    "claim",
    "one_line",
    "queue_email",
    "register_kind",
    "send_due",
]
