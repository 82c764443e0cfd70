"""The outbox: emails written in the caller's transaction, sent later by the worker.

Each message keeps its content (portal links redacted), a stable Message-ID and, once
sent, its threading headers and the SHA-256 and size of the exact bytes that left.

**Claims.** A worker claims a batch under a claim id of its own (`claimed_by`, new for
every batch, and `claimed_at`): FOR UPDATE SKIP LOCKED on Postgres, a guarded UPDATE on
SQLite. A claim older than STALE_CLAIM is taken back by whoever claims next. The batch
renews its claim (one UPDATE for all its messages still `sending`) whenever the last
renewal is older than RENEW_AFTER, and sends a message's DATA only when the message is
still under a claim renewed that recently: nobody else can take it back before the send
is long over (each SMTP command times out after SMTP_TIMEOUT). Every status change is
`UPDATE ... WHERE id = X AND claimed_by = <this batch> AND status = 'sending'`; when it
changes nothing, another worker took the message back: it is logged, never recorded twice.

**Marking.** A sent message is marked `sent` (with the SHA-256 and size of its bytes) by
one statement, on a connection the worker keeps for it (`_MarkConnection`), that runs while
the next message's MAIL FROM and RCPT TO are exchanged; the next DATA waits for it. A worker
killed at any moment thus leaves at most the message in flight unmarked (sent again once
its claim is stale: SMTP allows no better, the server may have taken it without our
knowing). Its `email.sent` history event (the proof, with the attachments' SHA-256) is
written off the sending path by the worker's `_Recorder`, RECORD_GROUP per transaction in
the background (Postgres) or after each batch (SQLite, one write lock); until then
`sent_event_pending` holds it, and a worker that stopped before writing it has it written
by the next `send_due` (`record_late_events`), each event exactly once.

**Bytes.** Built by `receivables.mail.mime` (no `email.message` object: a tenth of the
cost), ASCII with CRLF, so the SHA-256 kept is that of the bytes the server receives.

**Answers.** 4xx at MAIL, RCPT or DATA, a lost connection or a timeout: tried again with
exponential backoff (MAX_ATTEMPTS in all). 5xx at any stage: failed at once, with the
server's words (`550 5.1.1 <x@y>: user unknown`); the envelope is reset (RSET) and the
connection serves the next messages.

**Threading.** A message queued with `thread=True` answers (In-Reply-To, References) the
last message *sent* with the same `thread_key`: same kind, same customer, same recipient
addresses. Decided when it is sent, so a cancelled or failed message is never answered.

**Portal links.** Queued with `portal_token`, a message is stored with the token redacted
and sealed beside it (`receivables.mail.sealed_links`); the worker writes the working link
into the bytes it sends and empties the seal once the message is done with.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import formataddr, make_msgid, parseaddr
from typing import Any

import aiosmtplib
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine
from piccolo.query.functions.aggregate import Max

from receivables import clock, history
from receivables.db import atomic, current_engine, is_postgres
from receivables.history import Actor
from receivables.mail.mime import Part, message_bytes
from receivables.mail.sealed_links import SealBroken, redact, seal, stored_copy, unseal, with_token
from receivables.mail.tables import OutboxMessage, OutboxStatus
from receivables.settings import Settings

log = logging.getLogger("relance.mail")
MAX_ATTEMPTS = 8
BASE_BACKOFF_SECONDS = 30
STALE_CLAIM = timedelta(minutes=10)
RENEW_AFTER = timedelta(minutes=1)
"""A message is sent only under a claim renewed this recently (a tenth of STALE_CLAIM:
room for a slow send and for clocks a few minutes apart between workers)."""
SMTP_TIMEOUT = 30
RECORD_GROUP = 20
"""Sent events written per transaction (fewer statements per message than one each)."""
_SENT_COLUMNS = (
    OutboxMessage.sent_event_pending,
    OutboxMessage.attempts,
    OutboxMessage.last_error,
    OutboxMessage.sent_at,
    OutboxMessage.sent_sha256,
    OutboxMessage.sent_size,
    OutboxMessage.in_reply_to,
    OutboxMessage.references,
    OutboxMessage.sent_event,
)
"""What `_MARK_SENT` sets, in its order (besides status, claim and seal)."""
MAX_REFERENCES = 10


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


def _bare(line: str) -> str:
    if line.endswith(">") and "<" in line:  # "Name <addr>" as formataddr writes it
        return line[line.rindex("<") + 1 : -1]
    return parseaddr(line)[1]


def _addresses(to_addrs: str) -> list[str]:
    """The bare addresses of `Name <addr>` lines."""
    return [_bare(line) for line in to_addrs.splitlines() if line.strip()]


def thread_key(kind: str, customer_id: int, to_addrs: str) -> str:
    """Messages answer each other only within one kind, one customer, one set of recipients."""
    recipients = ",".join(sorted(a.lower() for a in _addresses(to_addrs)))
    return hashlib.sha256(f"{kind}\x1f{customer_id}\x1f{recipients}".encode()).hexdigest()


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
    portal_token: str = "",
    secret_key: str = "",
) -> OutboxMessage:
    """Write one email to the outbox (and its history event) in the caller's transaction.

    With `thread`, the message will answer the last one of the same kind sent to the same
    recipients of the customer (In-Reply-To, References), so reminders read as one
    conversation in each recipient's mailbox. A `portal_token` in the links of the message
    is stored redacted and sealed under `secret_key`; any other portal token in the text is
    redacted for good.
    """
    if not to:
        raise ValueError("an email needs at least one recipient")
    if portal_token and not secret_key:
        raise ValueError("a portal token is sealed under the secret key: pass secret_key")
    domain = (parseaddr(mail_from)[1].rpartition("@")[2] or "relance.local").strip()
    message_id = make_msgid(idstring=secrets.token_hex(8), domain=domain)
    to_addrs = "\n".join(r.header() for r in to)
    async with atomic():
        message = OutboxMessage(
            company=company_id,
            customer=customer_id,
            kind=kind,
            message_id=message_id,
            thread_key=thread_key(kind, customer_id, to_addrs)
            if thread and customer_id is not None
            else "",
            mail_from=one_line(mail_from),
            reply_to=one_line(reply_to),
            to_addrs=to_addrs,
            subject=stored_copy(one_line(subject), portal_token),
            text_body=stored_copy(text_body, portal_token),
            html_body=stored_copy(html_body, portal_token),
            sealed_token=seal(portal_token, secret_key, message_id) if portal_token else "",
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


def build_message(
    row: dict,
    *,
    token: str = "",
    date: datetime | None = None,
    in_reply_to: str = "",
    references: str = "",
    attachments: Sequence[Attachment] = (),
) -> bytes:
    """The exact bytes of the outbox row `row` as sent, its redacted link made to work with
    `token` (the unsealed `sealed_token`)."""
    return message_bytes(
        message_id=row["message_id"],
        date=date or clock.now(),
        mail_from=row["mail_from"],
        to=row["to_addrs"].splitlines(),
        reply_to=row["reply_to"],
        subject=with_token(row["subject"], token),
        in_reply_to=in_reply_to,
        references=references,
        text=with_token(row["text_body"], token),
        html=with_token(row["html_body"], token),
        attachments=[Part(a.safe_filename, a.content_type, a.content) for a in attachments],
    )


async def claim(claim_id: str, limit: int, now: datetime | None = None) -> list[dict]:
    """Take up to `limit` due messages under `claim_id`; nobody else gets them while the
    claim is fresh."""
    now = now or clock.now()
    async with atomic():
        # Messages claimed by a worker that died (or stalled) long ago go back to the queue.
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
                OutboxMessage.claimed_by: claim_id,
                OutboxMessage.claimed_at: now,
            }
        ).where(OutboxMessage.id.is_in(ids) & (OutboxMessage.status == OutboxStatus.queued.value))
        return (
            await OutboxMessage.select()
            .where(
                OutboxMessage.id.is_in(ids)
                & (OutboxMessage.claimed_by == claim_id)
                & (OutboxMessage.status == OutboxStatus.sending.value)
            )
            .order_by(OutboxMessage.id)
        )


def smtp_client(settings: Settings) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        use_tls=settings.smtp_tls == "tls",
        start_tls=True if settings.smtp_tls == "starttls" else False,
        timeout=SMTP_TIMEOUT,
    )


def refusal(exc: BaseException) -> tuple[str, bool]:
    """The server's answer in its own words, and whether it is permanent (5xx)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        answer = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        return answer, bool(codes) and all(500 <= c < 600 for c in codes)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}", 500 <= exc.code < 600
    return str(exc) or type(exc).__name__, False


def _references(previous_references: str, previous_id: str) -> str:
    ids = [*previous_references.split(), previous_id]
    if len(ids) > MAX_REFERENCES:  # the thread's first message and the latest ones
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return " ".join(ids)


class _TakenBack(Exception):
    """The message is no longer under this batch's claim."""


@dataclass(frozen=True)
class Outcome:
    """What becomes of a claimed message: its new status and columns, its history event."""

    status: OutboxStatus
    values: dict
    event: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _redacted(row: dict) -> dict:
    """For a message queued before links were sealed: its copy redacted once it is done."""
    values = {}
    for column in (OutboxMessage.subject, OutboxMessage.text_body, OutboxMessage.html_body):
        kept = row[column._meta.name]
        if redact(kept) != kept:
            values[column] = redact(kept)
    return values


def _mine(row: dict, claim_id: str):
    return (
        (OutboxMessage.id == row["id"])
        & (OutboxMessage.claimed_by == claim_id)
        & (OutboxMessage.status == OutboxStatus.sending.value)
    )


async def _lock_history(rows: Sequence[dict]) -> None:
    """The accounts' history chains first, as the history module asks of writers of shared
    rows (Postgres; a no-op on SQLite)."""
    await history.lock_accounts(
        [r["customer"] for r in rows if r["customer"] is not None],
        company_wide=[r["company"] for r in rows if r["customer"] is None],
    )


async def _finish(row: dict, claim_id: str, outcome: Outcome) -> bool:
    """Write the message's outcome (and its history event) if it is still ours."""
    values = {
        **outcome.values,
        OutboxMessage.status: outcome.status.value,
        OutboxMessage.claimed_by: "",
    }
    if outcome.status != OutboxStatus.queued:
        values.update(_redacted(row))
    async with atomic():
        if outcome.event:
            await _lock_history([row])
        changed = (
            await OutboxMessage.update(values)
            .where(_mine(row, claim_id))
            .returning(OutboxMessage.id)
        )
        if not changed:
            log.warning(
                "outbox message %s was taken back by another worker; %s not recorded",
                row["id"],
                outcome.status.value,
            )
            return False
        if outcome.event:
            await history.record(
                company_id=row["company"],
                actor=Actor.system("mail"),
                kind=outcome.event,
                customer_id=row["customer"],
                details={"outbox": row["id"], "message_id": row["message_id"], **outcome.details},
            )
    return True


def _retry(row: dict, error: str) -> Outcome:
    """Again later, with exponential backoff; failed once MAX_ATTEMPTS have been made."""
    attempts = row["attempts"] + 1
    if attempts >= MAX_ATTEMPTS:
        return _failed(row, f"gave up after {attempts} attempts: {error}")
    retry_at = clock.now() + timedelta(seconds=BASE_BACKOFF_SECONDS * 2 ** (attempts - 1))
    values = {
        OutboxMessage.attempts: attempts,
        OutboxMessage.last_error: error[:2000],
        OutboxMessage.next_attempt_at: retry_at,
    }
    return Outcome(OutboxStatus.queued, values)


def _failed(row: dict, error: str) -> Outcome:
    values = {
        OutboxMessage.attempts: row["attempts"] + 1,
        OutboxMessage.last_error: error[:2000],
        OutboxMessage.sealed_token: "",
    }
    return Outcome(OutboxStatus.failed, values, "email.failed", {"error": error[:500]})


async def record_sent_events(sent: Sequence[dict]) -> int:
    """Write the `email.sent` events of these sent messages (`id`, `company`, `customer`)
    that still wait for theirs, each exactly once (whoever clears the flag writes it; the
    others find it cleared); returns how many."""
    if not sent:
        return 0
    async with atomic():
        await _lock_history(sent)
        rows = (
            await OutboxMessage.update({OutboxMessage.sent_event_pending: False})
            .where(
                OutboxMessage.id.is_in([r["id"] for r in sent])
                & (OutboxMessage.sent_event_pending == True)  # noqa: E712
            )
            .returning(
                OutboxMessage.id,
                OutboxMessage.company,
                OutboxMessage.customer,
                OutboxMessage.message_id,
                OutboxMessage.sent_at,
                OutboxMessage.sent_event,
            )
        )
        # One INSERT for the group (`record_many`), in the order the messages were queued.
        await history.record_many(
            [
                history.Event(
                    r["company"],
                    Actor.system("mail"),
                    "email.sent",
                    customer_id=r["customer"],
                    details={
                        "outbox": r["id"],
                        "message_id": r["message_id"],
                        **json.loads(r["sent_event"] or "{}"),
                    },
                    at=r["sent_at"],
                )
                for r in sorted(rows, key=lambda r: r["id"])
            ]
        )
    return len(rows)


async def record_late_events(now: datetime | None = None) -> int:
    """The events of messages sent by a worker that stopped before writing them."""
    cutoff = (now or clock.now()) - RENEW_AFTER
    late = (
        await OutboxMessage.select(OutboxMessage.id, OutboxMessage.company, OutboxMessage.customer)
        .where(
            (OutboxMessage.sent_event_pending == True)  # noqa: E712
            & (OutboxMessage.sent_at < cutoff)
        )
        .order_by(OutboxMessage.id)
        .limit(500)
    )
    return await record_sent_events(late)


_MARK_SENT = (
    "UPDATE outbox_message SET status = 'sent', claimed_by = '', sealed_token = '', "
    "sent_event_pending = {}, attempts = {}, last_error = {}, sent_at = {}, sent_sha256 = {}, "
    'sent_size = {}, in_reply_to = {}, "references" = {}, sent_event = {} '
    "WHERE id = {} AND claimed_by = {} AND status = 'sending' RETURNING id"
)


def _numbered(sql: str) -> str:
    parts = sql.split("{}")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]


class _MarkConnection:
    """A connection of its own for a worker's marks: one autocommitted statement each, with
    no connection opened (SQLite) or pool round trip (Postgres) per message, and none taken
    from the pool the rest of the worker needs."""

    def __init__(self) -> None:
        self.engine = current_engine()
        self.connection: Any = None
        self.sql = ""

    async def open(self) -> None:
        if isinstance(self.engine, PostgresEngine):
            self.connection = await self.engine.get_new_connection()
            self.sql = _numbered(_MARK_SENT)
        elif isinstance(self.engine, SQLiteEngine):
            self.connection = await self.engine.get_connection()
            self.sql = _MARK_SENT.replace("{}", "?")
        else:
            raise NotImplementedError(type(self.engine).__name__)

    async def mark_sent(self, values: list) -> bool:
        if isinstance(self.engine, PostgresEngine):
            return bool(await self.connection.fetch(self.sql, *values))
        cursor = await self.connection.execute(self.sql, values)
        return bool(await cursor.fetchall())

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


class _Recorder:
    """Writes the `email.sent` events of a worker's sent messages, RECORD_GROUP per
    transaction, in the background while the worker goes on sending (Postgres), or after
    each batch (SQLite, where the marks would wait for its write lock)."""

    def __init__(self) -> None:
        self.waiting: list[dict] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, row: dict) -> None:
        self.waiting.append({k: row[k] for k in ("id", "company", "customer")})
        if len(self.waiting) >= RECORD_GROUP and is_postgres():
            self._start()

    def _start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(RECORD_GROUP))

    async def _run(self, group: int) -> None:
        # SQLite locks the whole file anyway: everything waiting in one transaction there.
        size = RECORD_GROUP if is_postgres() else len(self.waiting)
        while len(self.waiting) >= group or (group == 1 and self.waiting):
            ids, self.waiting = self.waiting[:size], self.waiting[size:]
            try:
                await record_sent_events(ids)
            except Exception:  # written later by `record_late_events`; sending goes on
                log.exception("history events of sent messages not written yet")

    async def flush(self) -> None:
        """A batch is over: on SQLite its events now; on Postgres full groups go on."""
        if not is_postgres():
            await self._run(1)

    async def close(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        await self._run(1)


async def _rset(client: aiosmtplib.SMTP) -> None:
    """Forget the refused envelope; the connection goes on with the next message."""
    if not client.is_connected:
        return
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


class _Batch:
    """One claimed batch, sent over one reused connection."""

    def __init__(
        self,
        claim_id: str,
        rows: list[dict],
        settings: Settings,
        claimed_at: datetime,
        recorder: _Recorder,
        marks: _MarkConnection,
    ):
        self.recorder = recorder
        self.marks = marks
        self.claim_id = claim_id
        self.rows = rows
        self.settings = settings
        self.mine = {r["id"] for r in rows}
        """Ids still under this claim and not yet dealt with."""
        self.confirmed_at = claimed_at
        self.threads: dict[str, tuple[str, str]] = {}
        """Thread key -> (Message-ID, References) of the last message sent in that thread."""
        self.marking: asyncio.Task[None] | None = None
        """The last sent message being marked; the next DATA waits for it."""
        self.in_flight: int | None = None
        """A message whose envelope or DATA went out and whose outcome is not yet known."""
        self.sent = 0
        self.unreachable = False

    async def send(self) -> int:
        client = smtp_client(self.settings)
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._defer_rest(f"cannot reach {self.settings.smtp_host}: {exc}")
            return 0
        try:
            await self._load_threads()
            for row in self.rows:
                if row["id"] not in self.mine:
                    continue
                await self._one(client, row)
                if not client.is_connected:
                    try:
                        await client.connect()
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        await self._settle()
                        await self._defer_rest(f"cannot reach {self.settings.smtp_host}: {exc}")
                        break
            await self._settle()
        finally:
            await self._release()
            await self.recorder.flush()
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        return self.sent

    async def _one(self, client: aiosmtplib.SMTP, row: dict) -> None:
        hooks = MESSAGE_KINDS.get(row["kind"])
        if hooks and hooks.cancel_reason and await self._cancelled(row, hooks):
            return
        attachments: list[Attachment] = []
        if hooks and hooks.attachments:
            try:
                attachments = await hooks.attachments(row, self.settings)
            except Exception as exc:  # a broken document must not stop the others
                log.exception("attachments of outbox message %s failed", row["id"])
                await self._outcome(row, _retry(row, f"attachments failed: {exc}"))
                return
        try:
            token = unseal(row["sealed_token"], self.settings.secret_key, row["message_id"])
        except SealBroken as exc:
            await self._outcome(row, _failed(row, f"{exc} (SECRET_KEY changed?)"))
            return
        in_reply_to, references = "", ""
        if row["thread_key"] in self.threads:
            in_reply_to, previous_references = self.threads[row["thread_key"]]
            references = _references(previous_references, in_reply_to)
        raw = build_message(
            row,
            token=token,
            in_reply_to=in_reply_to,
            references=references,
            attachments=attachments,
        )
        recipients = _addresses(row["to_addrs"])
        refused: dict[str, str] = {}
        self.in_flight = row["id"]
        try:
            size = [f"SIZE={len(raw)}"] if client.supports_extension("size") else []
            await client.mail(_bare(row["mail_from"]), options=size)
            rejections = []
            for address in recipients:
                try:
                    await client.rcpt(address)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    rejections.append(exc)
                    refused[address] = f"{exc.code} {exc.message}"
            if len(rejections) == len(recipients):
                raise aiosmtplib.SMTPRecipientsRefused(rejections)
            if not await self._still_mine(row):
                self.in_flight = None
                await _rset(client)
                return
            await client.data(raw)
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
            await _rset(client)
            answer, permanent = refusal(exc)
            await self._outcome(row, _failed(row, answer) if permanent else _retry(row, answer))
            return
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Timeouts and lost connections: whether the server kept it is unknown; again later.
            client.close()
            await self._outcome(row, _retry(row, refusal(exc)[0]))
            return
        self.sent += 1
        if row["thread_key"]:
            self.threads[row["thread_key"]] = (row["message_id"], references)
        sha256 = hashlib.sha256(raw).hexdigest()
        details: dict[str, Any] = {"sha256": sha256, "size": len(raw)}
        if refused:
            details["refused"] = refused
        if attachments:
            details["attachments"] = [
                {"filename": a.safe_filename, "sha256": a.sha256, "size": len(a.content)}
                for a in attachments
            ]
        values = {
            OutboxMessage.sent_event_pending: True,
            OutboxMessage.attempts: row["attempts"] + 1,
            OutboxMessage.last_error: ("refused by the server: " + "; ".join(refused.values()))
            if refused
            else "",
            OutboxMessage.sent_at: clock.now(),
            OutboxMessage.sent_sha256: sha256,
            OutboxMessage.sent_size: len(raw),
            OutboxMessage.in_reply_to: in_reply_to,
            OutboxMessage.references: references,
            OutboxMessage.sent_event: json.dumps(details, sort_keys=True),
        }
        # A message queued with its link sealed was stored redacted: no regex over its bodies.
        redacted = {} if row["sealed_token"] else _redacted(row)
        if redacted:
            values = {
                **values,
                **redacted,
                OutboxMessage.status: OutboxStatus.sent.value,
                OutboxMessage.claimed_by: "",
                OutboxMessage.sealed_token: "",
            }
        # Marked while the next message's envelope is exchanged; its DATA waits for it.
        self.mine.discard(row["id"])
        self.in_flight = None
        self.marking = asyncio.create_task(self._mark_sent(row, values))

    async def _mark_sent(self, row: dict, values: dict) -> None:
        """Sent: one statement, durable before the next DATA; the history event follows."""
        if len(values) > len(_SENT_COLUMNS):  # a copy to redact: the general path
            changed = bool(
                await OutboxMessage.update(values)
                .where(_mine(row, self.claim_id))
                .returning(OutboxMessage.id)
            )
        else:
            changed = await self.marks.mark_sent(
                [*(values[c] for c in _SENT_COLUMNS), row["id"], self.claim_id]
            )
        if not changed:
            log.warning("outbox message %s was sent but taken back meanwhile", row["id"])
            return
        self.recorder.add(row)

    async def _outcome(self, row: dict, outcome: Outcome) -> None:
        await self._settle()
        self.mine.discard(row["id"])
        self.in_flight = None
        await _finish(row, self.claim_id, outcome)

    async def _settle(self) -> None:
        """Wait for the previous message's mark (its failure stops the batch)."""
        if self.marking is not None:
            marking, self.marking = self.marking, None
            await marking

    async def _still_mine(self, row: dict) -> bool:
        await self._settle()
        if clock.now() - self.confirmed_at > RENEW_AFTER:
            await self._renew()
        return row["id"] in self.mine

    async def _renew(self) -> None:
        stamp = clock.now()
        kept = (
            await OutboxMessage.update({OutboxMessage.claimed_at: stamp})
            .where(
                (OutboxMessage.claimed_by == self.claim_id)
                & (OutboxMessage.status == OutboxStatus.sending.value)
            )
            .returning(OutboxMessage.id)
        )
        lost = self.mine - {r["id"] for r in kept}
        if lost:
            log.warning(
                "outbox claim %s: %d message(s) were taken back by another worker",
                self.claim_id,
                len(lost),
            )
        self.mine -= lost
        self.confirmed_at = stamp

    async def _cancelled(self, row: dict, hooks: MessageKind) -> bool:
        """Ask the message's kind whether it is still wanted; cancel it (with the reason) if
        not. True when the message is not to be sent (cancelled, or no longer ours)."""
        assert hooks.cancel_reason is not None
        await self._settle()
        try:
            async with atomic():
                await _lock_history([row])
                reason = await hooks.cancel_reason(row)
                if reason is None:
                    return False
                cancelled = {
                    OutboxMessage.status: OutboxStatus.cancelled.value,
                    OutboxMessage.last_error: reason[:2000],
                    OutboxMessage.claimed_by: "",
                    OutboxMessage.sealed_token: "",
                    **_redacted(row),
                }
                changed = (
                    await OutboxMessage.update(cancelled)
                    .where(_mine(row, self.claim_id))
                    .returning(OutboxMessage.id)
                )
                if not changed:
                    raise _TakenBack  # the kind's own changes are rolled back with it
                await history.record(
                    company_id=row["company"],
                    actor=Actor.system("mail"),
                    kind="email.cancelled",
                    customer_id=row["customer"],
                    details={
                        "outbox": row["id"],
                        "message_id": row["message_id"],
                        "reason": reason[:500],
                    },
                )
        except _TakenBack:
            log.warning("outbox message %s was taken back by another worker", row["id"])
        self.mine.discard(row["id"])
        return True

    async def _load_threads(self) -> None:
        keys = sorted({r["thread_key"] for r in self.rows if r["thread_key"]})
        if not keys:
            return
        latest = (
            await OutboxMessage.select(Max(OutboxMessage.id, alias="last"))
            .where(
                (OutboxMessage.status == OutboxStatus.sent.value)
                & OutboxMessage.thread_key.is_in(keys)
            )
            .group_by(OutboxMessage.thread_key)
        )
        if not latest:
            return
        rows = await OutboxMessage.select(
            OutboxMessage.thread_key, OutboxMessage.message_id, OutboxMessage.references
        ).where(OutboxMessage.id.is_in([r["last"] for r in latest]))
        for r in rows:
            self.threads[r["thread_key"]] = (r["message_id"], r["references"] or "")

    async def _defer_rest(self, error: str) -> None:
        """The server cannot be reached: every message left waits (with backoff)."""
        self.unreachable = True
        for row in self.rows:
            if row["id"] in self.mine:
                self.mine.discard(row["id"])
                await _finish(row, self.claim_id, _retry(row, error))

    async def _release(self) -> None:
        """Messages not tried (the batch stopped early) go back to the queue at once; one
        whose fate is unknown (stopped during its DATA) waits for its claim to go stale."""
        if self.marking is not None and not self.marking.done():
            await asyncio.gather(self.marking, return_exceptions=True)
        untried = sorted(self.mine - {self.in_flight})
        if not untried:
            return
        await OutboxMessage.update(
            {OutboxMessage.status: OutboxStatus.queued.value, OutboxMessage.claimed_by: ""}
        ).where(
            OutboxMessage.id.is_in(untried)
            & (OutboxMessage.claimed_by == self.claim_id)
            & (OutboxMessage.status == OutboxStatus.sending.value)
        )


async def send_due(settings: Settings, *, worker_id: str | None = None, batch: int = 50) -> int:
    """Send what is due, a claimed batch at a time over one reused connection; returns the
    number sent. Their history events are all written when it returns."""
    worker = (worker_id or f"{socket.gethostname()}:{os.getpid()}")[:80]
    await record_late_events()
    recorder = _Recorder()
    marks = _MarkConnection()
    sent = 0
    try:
        await marks.open()
        while True:
            claim_id = f"{worker}:{secrets.token_hex(6)}"
            claimed_at = clock.now()
            rows = await claim(claim_id, batch, claimed_at)
            if not rows:
                return sent
            run = _Batch(claim_id, rows, settings, claimed_at, recorder, marks)
            sent += await run.send()
            if run.unreachable:
                return sent
    finally:
        await recorder.close()
        await marks.close()


__all__ = [
    "Attachment",
    "MessageKind",
    "Outcome",
    "Recipient",
    "ascii_address",
    "build_message",
    "claim",
    "one_line",
    "queue_email",
    "record_late_events",
    "record_sent_events",
    "refusal",
    "register_kind",
    "send_due",
    "thread_key",
]
