"""The outbox against a real SMTP server (aiosmtpd): exactly once while claims expire and
workers overlap, refusals at MAIL, RCPT and DATA in the server's words on a connection that
goes on, retries, threading per recipient, the SHA-256 of the bytes received, no header
injection."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from aiosmtpd.smtp import SMTP

from receivables import clock
from receivables.history import Actor, HistoryEvent
from receivables.mail import outbox
from receivables.mail.outbox import (
    MessageKind,
    Recipient,
    queue_email,
    record_late_events,
    register_kind,
    send_due,
)
from receivables.mail.tables import OutboxMessage
from receivables.settings import load_settings
from tests.factories import make_company, make_customer
from tests.smtp import start_smtp


class Scripted:
    """An aiosmtpd handler that answers MAIL, RCPT or DATA as scripted (each answer once) and
    keeps every accepted message's exact bytes with the connection it came on."""

    def __init__(self) -> None:
        self.mail: dict[str, list[str]] = {}
        self.rcpt: dict[str, list[str]] = {}
        self.data: list[str] = []
        self.data_for: dict[str, str] = {}
        """Refused at DATA when the envelope names this recipient."""
        self.received: list[tuple[bytes, tuple]] = []
        self.on_data = None
        """An awaitable called with the message's bytes before it is accepted."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail.get(address):
            return self.mail[address].pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt.get(address):
            return self.rcpt[address].pop(0)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data:
            return self.data.pop(0)
        for address in envelope.rcpt_tos:
            if address in self.data_for:
                return self.data_for[address]
        raw = envelope.original_content or envelope.content
        if self.on_data is not None:
            await self.on_data(raw)
        self.received.append((raw, session.peer))
        return "250 OK"

    def messages(self):
        return [message_from_bytes(raw, policy=policy.default) for raw, _ in self.received]

    def ids(self) -> list[str]:
        return [m["Message-ID"].strip() for m in self.messages()]


@pytest.fixture
async def smtp():
    handler = Scripted()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="t"), "127.0.0.1", 0)
    handler.port = server.sockets[0].getsockname()[1]
    yield handler
    server.close()


async def _queue(company, customer, n=1, **kw):
    rows = []
    for i in range(n):
        to = kw.get("to") or [
            Recipient(kw.get("email", "ap@buyer.example"), kw.get("name", "Clerk"))
        ]
        rows.append(
            await queue_email(
                company_id=company.id,
                customer_id=customer.id,
                kind=kw.get("kind", "test"),
                mail_from=kw.get("mail_from", "Seller <ar@seller.example>"),
                to=to,
                subject=kw.get("subject", f"Statement {i}"),
                text_body="Hello",
                html_body="<p>Hello</p>",
                actor=Actor.system(),
                thread=kw.get("thread", False),
            )
        )
    return rows


def _settings(port: int):
    return load_settings({"SECRET_KEY": "s" * 40, "SMTP_PORT": str(port)})


async def _row(message) -> OutboxMessage:
    return await OutboxMessage.objects().get(OutboxMessage.id == message.id)


async def _events(kind: str, message) -> list[dict]:
    rows = await HistoryEvent.select(HistoryEvent.details).where(HistoryEvent.kind == kind)
    found = [json.loads(r["details"]) for r in rows]
    return [d for d in found if d.get("outbox") == message.id]


# ------------------------------------------------------------------ exactly once


async def test_sent_once_with_the_sha256_of_the_bytes_the_server_received(db, smtp):
    company = await make_company()
    customer = await make_customer(company)
    messages = await _queue(company, customer, 3)
    assert await send_due(_settings(smtp.port)) == 3
    assert await send_due(_settings(smtp.port)) == 0
    assert sorted(smtp.ids()) == sorted(m.message_id for m in messages)
    by_id = {
        m["Message-ID"].strip(): raw
        for m, (raw, _) in zip(smtp.messages(), smtp.received, strict=True)
    }
    for message in messages:
        row = await _row(message)
        raw = by_id[message.message_id]
        assert row.status == "sent" and row.attempts == 1 and row.claimed_by == ""
        assert row.sent_sha256 == hashlib.sha256(raw).hexdigest() and row.sent_size == len(raw)
        [event] = await _events("email.sent", message)
        assert event["sha256"] == row.sent_sha256 and event["size"] == len(raw)
        assert not row.sent_event_pending
    assert len({peer for _, peer in smtp.received}) == 1  # one connection for the batch


async def test_a_batch_outliving_its_claim_while_another_worker_runs_sends_each_once(
    db, smtp, monkeypatch
):
    """Worker A stalls after two messages (its clock jumps past the ten-minute claim) while
    worker B takes the batch back and sends the rest: A sends nothing more."""
    company = await make_company()
    customer = await make_customer(company)
    messages = await _queue(company, customer, 10, kind="slow")
    moved = {"by": timedelta(0)}
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + moved["by"])
    b_sent = []

    async def stall(row, settings):
        if row["id"] == messages[2].id and not moved["by"]:
            # A's second message is marked; A now stalls for eleven minutes, B runs meanwhile.
            for _ in range(1000):
                if (await _row(messages[1])).status == "sent":
                    break
                await asyncio.sleep(0.01)
            moved["by"] = timedelta(minutes=11)
            b = asyncio.create_task(
                send_due(settings, worker_id="B", batch=50), context=contextvars.Context()
            )
            b_sent.append(await b)
        return []

    register_kind("slow", MessageKind(attachments=stall))
    try:
        a_sent = await send_due(_settings(smtp.port), worker_id="A", batch=10)
    finally:
        outbox.MESSAGE_KINDS.pop("slow")
    assert (a_sent, b_sent) == (2, [8])
    received = Counter(smtp.ids())
    assert set(received) == {m.message_id for m in messages} and max(received.values()) == 1
    statuses = Counter(r["status"] for r in await OutboxMessage.select(OutboxMessage.status))
    assert statuses == {"sent": 10}
    sent_events = await HistoryEvent.count().where(HistoryEvent.kind == "email.sent")
    assert sent_events == 10


async def test_a_message_taken_back_during_its_own_send_is_recorded_once(
    db, smtp, monkeypatch, caplog
):
    """The limit SMTP sets: a single send that outlives the claim (the server holds DATA past
    ten minutes) may be delivered twice, but only the worker holding the claim records it;
    the other logs and records nothing."""
    company = await make_company()
    customer = await make_customer(company)
    [message] = await _queue(company, customer)
    moved = {"by": timedelta(0)}
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + moved["by"])
    settings = _settings(smtp.port)

    async def slow_server(raw):
        if not moved["by"]:
            moved["by"] = timedelta(minutes=11)
            assert await send_due(settings, worker_id="B") == 1

    smtp.on_data = slow_server
    with caplog.at_level(logging.WARNING, logger="relance.mail"):
        assert await send_due(settings, worker_id="A") == 1  # A's DATA did go through
    assert "taken back" in caplog.text
    assert smtp.ids() == [message.message_id] * 2
    assert len(await _events("email.sent", message)) == 1
    row = await _row(message)
    assert row.status == "sent" and row.attempts == 1


async def test_a_stale_claim_of_a_dead_worker_is_taken_back(db, smtp):
    company = await make_company()
    customer = await make_customer(company)
    messages = await _queue(company, customer, 3)
    rows = await outbox.claim("dead:1", 10)
    assert len(rows) == 3
    assert await send_due(_settings(smtp.port)) == 0  # a fresh claim is left alone
    await OutboxMessage.update(
        {OutboxMessage.claimed_at: datetime.now(UTC) - timedelta(minutes=11)}
    ).where(OutboxMessage.status == "sending")
    assert await send_due(_settings(smtp.port)) == 3
    assert sorted(smtp.ids()) == sorted(m.message_id for m in messages)


async def test_an_event_left_unwritten_by_a_stopped_worker_is_written_once(db, smtp, monkeypatch):
    company = await make_company()
    customer = await make_customer(company)
    [message] = await _queue(company, customer)

    async def stopped(sent):
        if sent:
            raise RuntimeError("the worker stopped here")
        return 0

    monkeypatch.setattr(outbox, "record_sent_events", stopped)
    assert await send_due(_settings(smtp.port)) == 1
    monkeypatch.undo()
    row = await _row(message)
    assert row.status == "sent" and row.sent_event_pending
    assert await _events("email.sent", message) == []
    assert await record_late_events() == 0  # its own worker may still write it
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert await record_late_events(later) == 1
    assert await record_late_events(later) == 0
    [event] = await _events("email.sent", message)
    assert event["sha256"] == row.sent_sha256
    assert not (await _row(message)).sent_event_pending


# ------------------------------------------------------------------ the server's answers


@pytest.mark.parametrize(
    ("stage", "answer"),
    [
        ("rcpt", "550 5.1.1 <gone@buyer.example>: user unknown"),
        ("mail", "553 5.7.1 <blocked@seller.example>: sender address rejected"),
        ("data", "554 5.7.1 message content rejected"),
    ],
)
async def test_5xx_fails_at_once_in_the_servers_words_and_the_connection_goes_on(
    db, smtp, stage, answer
):
    company = await make_company()
    customer = await make_customer(company)
    [before] = await _queue(company, customer, email="first@buyer.example")
    [refused] = await _queue(
        company, customer, email="gone@buyer.example", mail_from="Seller <blocked@seller.example>"
    )
    [after] = await _queue(company, customer, email="next@buyer.example")
    if stage == "rcpt":
        smtp.rcpt["gone@buyer.example"] = [answer]
    elif stage == "mail":
        smtp.mail["blocked@seller.example"] = [answer]
    else:
        smtp.data_for["gone@buyer.example"] = answer
    assert await send_due(_settings(smtp.port)) == 2
    row = await _row(refused)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, answer)
    assert row.sealed_token == "" and row.sent_sha256 == ""
    [failed] = await _events("email.failed", refused)
    assert failed["error"] == answer
    # The messages before and after it went, on the same connection (reset, not dropped).
    assert smtp.ids() == [before.message_id, after.message_id]
    assert len({peer for _, peer in smtp.received}) == 1
    assert await send_due(_settings(smtp.port)) == 0  # never tried again


@pytest.mark.parametrize(
    ("stage", "answer"),
    [
        ("rcpt", "450 4.2.1 <busy@buyer.example>: mailbox busy"),
        ("mail", "451 4.3.0 <ar@seller.example>: try again later"),
        ("data", "421 4.7.0 Try again later"),
    ],
)
async def test_4xx_is_retried_later_with_backoff(db, smtp, stage, answer):
    company = await make_company()
    customer = await make_customer(company)
    [message] = await _queue(company, customer, email="busy@buyer.example")
    if stage == "rcpt":
        smtp.rcpt["busy@buyer.example"] = [answer]
    elif stage == "mail":
        smtp.mail["ar@seller.example"] = [answer]
    else:
        smtp.data = [answer]
    assert await send_due(_settings(smtp.port)) == 0
    row = await _row(message)
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, answer)
    assert row.next_attempt_at > datetime.now(UTC) + timedelta(seconds=20)
    assert await send_due(_settings(smtp.port)) == 0  # not before its time
    await OutboxMessage.update(
        {OutboxMessage.next_attempt_at: datetime.now(UTC) - timedelta(seconds=1)}
    ).where(OutboxMessage.id == message.id)
    assert await send_due(_settings(smtp.port)) == 1
    assert smtp.ids() == [message.message_id]
    row = await _row(message)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_one_recipient_refused_among_several_is_told_and_the_others_get_it(db, smtp):
    company = await make_company()
    customer = await make_customer(company)
    [message] = await _queue(
        company,
        customer,
        to=[Recipient("ok@buyer.example", "Ok"), Recipient("gone@buyer.example", "Gone")],
    )
    smtp.rcpt["gone@buyer.example"] = ["550 5.1.1 <gone@buyer.example>: user unknown"]
    assert await send_due(_settings(smtp.port)) == 1
    row = await _row(message)
    assert row.status == "sent"
    assert row.last_error == "refused by the server: 550 5.1.1 <gone@buyer.example>: user unknown"
    [event] = await _events("email.sent", message)
    assert event["refused"] == {
        "gone@buyer.example": "550 5.1.1 <gone@buyer.example>: user unknown"
    }


async def test_an_unreachable_server_defers_the_batch(db):
    company = await make_company()
    customer = await make_customer(company)
    messages = await _queue(company, customer, 2)
    assert await send_due(_settings(1)) == 0  # nothing listens on port 1
    for message in messages:
        row = await _row(message)
        assert row.status == "queued" and row.attempts == 1 and "cannot reach" in row.last_error
        assert row.next_attempt_at > datetime.now(UTC)


# ------------------------------------------------------------------ threading


async def test_threads_are_per_recipient_and_answer_only_what_was_received(db, smtp):
    company = await make_company()
    customer = await make_customer(company)
    other = await make_customer(company, ref="C2", name="Other")

    async def reminder(to: str, who=customer):
        [m] = await _queue(company, who, email=to, kind="dunning", thread=True)
        return m

    julie_1 = await reminder("julie@buyer.example")
    paul_1 = await reminder("paul@buyer.example")
    julie_2 = await reminder("julie@buyer.example")
    assert await send_due(_settings(smtp.port)) == 3
    # A message that fails is not answered; another customer's message to the same address
    # is another conversation.
    smtp.rcpt["paul@buyer.example"] = ["550 5.1.1 <paul@buyer.example>: user unknown"]
    paul_2 = await reminder("paul@buyer.example")
    assert await send_due(_settings(smtp.port)) == 0
    paul_3 = await reminder("paul@buyer.example")
    julie_other = await reminder("julie@buyer.example", other)
    julie_3 = await reminder("julie@buyer.example")
    assert await send_due(_settings(smtp.port)) == 3

    got = {m["Message-ID"].strip(): m for m in smtp.messages()}

    def answers(message):
        header = got[message.message_id]["In-Reply-To"]
        return header.strip() if header else None

    assert answers(julie_1) is None and answers(paul_1) is None
    assert answers(julie_2) == julie_1.message_id
    assert answers(paul_3) == paul_1.message_id  # not the failed paul_2, never julie's
    assert answers(julie_other) is None
    assert answers(julie_3) == julie_2.message_id
    references = got[julie_3.message_id]["References"].split()
    assert references == [julie_1.message_id, julie_2.message_id]
    stored = await _row(julie_3)
    assert (stored.in_reply_to, stored.references.split()) == (julie_2.message_id, references)
    assert (await _row(paul_2)).status == "failed"


# ------------------------------------------------------------------ headers


async def test_crlf_in_names_and_subject_cannot_add_headers(db):
    server, rec, port = await start_smtp()
    try:
        company = await make_company()
        customer = await make_customer(company)
        await _queue(
            company,
            customer,
            name="Eve\r\nBcc: victim@evil.example",
            subject="Hi\r\nX-Injected: yes",
        )
        assert await send_due(_settings(port)) == 1
        msg = rec.messages[0]
        assert msg["Bcc"] is None and msg["X-Injected"] is None
        assert "victim@evil.example" in msg["To"] and msg["Subject"] == "Hi X-Injected: yes"
    finally:
        server.close()


async def test_words_that_are_not_ascii_arrive_as_written(db, smtp):
    company = await make_company()
    customer = await make_customer(company)
    await _queue(
        company,
        customer,
        mail_from="Atelier Lumière <ar@seller.example>",
        name="Zoé Dupré",
        subject="Relevé de compte : 1 200,00 € à régler — merci " * 3,
    )
    assert await send_due(_settings(smtp.port)) == 1
    [received] = smtp.messages()
    assert str(received["From"]) == "Atelier Lumière <ar@seller.example>"
    assert received["To"].addresses[0].display_name == "Zoé Dupré"
    assert received["Subject"] == " ".join(
        ("Relevé de compte : 1 200,00 € à régler — merci " * 3).split()
    )
    raw, _ = smtp.received[0]
    assert raw.isascii() and all(len(line) <= 998 for line in raw.split(b"\r\n"))
