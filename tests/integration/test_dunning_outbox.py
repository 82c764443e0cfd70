"""Dunning emails through the outbox to a real SMTP server (aiosmtpd).

Retries and failures, attachments rendered at send time with their SHA-256 in the history,
a worker process killed after claiming, two worker processes sharing 500 messages on
Postgres, template text that looks like code, and names that try to add headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pypdf import PdfReader

from receivables.dunning.defaults import install_defaults
from receivables.dunning.message_templates import save_template
from receivables.dunning.run import run_dunning
from receivables.dunning.tables import DunningAction, MessageTemplate
from receivables.history import Actor, HistoryEvent
from receivables.ledger.tables import PayerProfile
from receivables.mail.outbox import Recipient, queue_email, send_due
from receivables.mail.tables import OutboxMessage, OutboxStatus
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.smtp import Recorder, start_smtp

ROOT = Path(__file__).resolve().parents[2]
TODAY = date.today()


def settings_for(port: int, documents: Path | None = None, url: str = ""):
    env = {"SECRET_KEY": TEST_SECRET, "BASE_URL": "http://testserver.local", "SMTP_PORT": str(port)}
    if documents:
        env["DOCUMENTS_DIR"] = str(documents)
    if url:
        env["DATABASE_URL"] = url
    return load_settings(env)


async def reminder_world(profile=PayerProfile.negligent, contact_name="Julie Lambert", **kw):
    """One customer 3 days late (first reminder, automatic) or as the profile says."""
    company = await make_company(
        name="Atelier Lumière SAS",
        penalty_policy="france",
        penalty_margin_bp=1000,
        compensation_minor=4000,
        address="12 rue des Ateliers\n69002 Lyon\nFrance",
    )
    await install_defaults(company.id)
    customer = await make_customer(
        company,
        name="Brasserie du Port",
        ref="C0042",
        payer_profile=profile.value,
        address="3 quai du Port\n13002 Marseille",
        **kw,
    )
    contact = await make_contact(customer, name=contact_name, email="julie@brasserie.example")
    return company, customer, contact


async def move_retry_to_now(message_id: int) -> None:
    await OutboxMessage.update(
        {OutboxMessage.next_attempt_at: datetime.now(UTC) - timedelta(seconds=1)}
    ).where(OutboxMessage.id == message_id)


async def test_421_is_retried_then_sent_once_with_attachments_and_their_sha256(db, tmp_path):
    documents = tmp_path / "documents"
    stored = documents / "invoices" / "F-2001.pdf"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"%PDF-1.4\n% the ERP's own invoice\n%%EOF\n")
    server, rec, port = await start_smtp()
    try:
        _company, customer, _contact = await reminder_world(PayerProfile.dispute_prone)
        # Dispute-prone payers get the statement and the invoices ten days before the due date.
        await make_item(
            customer,
            "1500.00",
            due=TODAY + timedelta(days=10),
            number="F-2001",
            pdf_path="invoices/F-2001.pdf",
        )
        await make_item(customer, "250.00", due=TODAY + timedelta(days=20), number="F-2002")
        report = await run_dunning(TODAY, settings_for(port, documents))
        assert (report.created, report.queued) == (1, 1)
        [message] = await OutboxMessage.objects()

        rec.answers = ["421 4.7.0 Try again later"]
        assert await send_due(settings_for(port, documents)) == 0
        row = await OutboxMessage.objects().get(OutboxMessage.id == message.id)
        assert (row.status, row.attempts) == ("queued", 1) and row.last_error.startswith("421")
        assert row.next_attempt_at > datetime.now(UTC)  # backoff, not an immediate retry
        assert await send_due(settings_for(port, documents)) == 0 and rec.messages == []

        await move_retry_to_now(message.id)
        assert await send_due(settings_for(port, documents)) == 1
        assert await send_due(settings_for(port, documents)) == 0
        [received] = rec.messages
        assert received["Message-ID"].strip() == message.message_id
        files = {
            part.get_filename(): part.get_payload(decode=True)
            for part in received.iter_attachments()
        }
        assert sorted(files) == ["F-2001.pdf", "F-2002.pdf", f"statement-C0042-{TODAY}.pdf"]
        assert files["F-2001.pdf"] == stored.read_bytes()  # the ERP's PDF, as stored
        statement = PdfReader(io.BytesIO(files[f"statement-C0042-{TODAY}.pdf"]))
        words = " ".join(page.extract_text() for page in statement.pages)
        assert "Brasserie du Port" in words and "F-2001" in words and "F-2002" in words
        copy = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(files["F-2002.pdf"])).pages)
        assert "F-2002" in copy and "250.00" in copy

        sent = await HistoryEvent.objects().get(HistoryEvent.kind == "email.sent")
        kept = {a["filename"]: a for a in json.loads(sent.details)["attachments"]}
        assert {name: kept[name]["sha256"] for name in kept} == {
            name: hashlib.sha256(content).hexdigest() for name, content in files.items()
        }
        assert (await OutboxMessage.objects().get(OutboxMessage.id == message.id)).attempts == 2
    finally:
        server.close()


async def test_550_fails_at_once_without_retry_and_keeps_the_answer(db):
    server, rec, port = await start_smtp()
    try:
        _company, customer, _ = await reminder_world()
        await make_item(customer, "300.00", due=TODAY - timedelta(days=3), number="F-3001")
        await run_dunning(TODAY, settings_for(port))
        [message] = await OutboxMessage.objects()
        rec.answers = ["550 5.1.1 <julie@brasserie.example>: mailbox unavailable"]
        assert await send_due(settings_for(port)) == 0
        row = await OutboxMessage.objects().get(OutboxMessage.id == message.id)
        assert row.status == OutboxStatus.failed.value and row.attempts == 1
        assert row.last_error == "550 5.1.1 <julie@brasserie.example>: mailbox unavailable"
        await move_retry_to_now(message.id)
        assert await send_due(settings_for(port)) == 0
        assert rec.messages == [] and rec.answers == []  # never tried again
        failed = await HistoryEvent.objects().get(HistoryEvent.kind == "email.failed")
        assert "mailbox unavailable" in json.loads(failed.details)["error"]
    finally:
        server.close()


async def test_template_text_that_looks_like_code_is_sent_as_plain_text(db):
    server, rec, port = await start_smtp()
    try:
        company, customer, _ = await reminder_world()
        await make_item(customer, "300.00", due=TODAY - timedelta(days=3), number="F-4001")
        template = await MessageTemplate.objects().get(
            (MessageTemplate.company == company.id)
            & (MessageTemplate.code == "reminder_1")
            & (MessageTemplate.language == "en")
        )
        body = "Hello #ContactName {{ ''.__class__ }} {% if 1 %}x{% endif %} ${7*7} #OverdueAmount"
        await save_template(
            template.id,
            name=template.name,
            subject="{{ 7*7 }} #CustomerName",
            body=body,
            actor=Actor.system("admin"),
        )
        await run_dunning(TODAY, settings_for(port))
        assert await send_due(settings_for(port)) == 1
        [received] = rec.messages
        text = received.get_body(("plain",)).get_content()
        html = received.get_body(("html",)).get_content()
        assert (
            "Hello Julie Lambert {{ ''.__class__ }} {% if 1 %}x{% endif %} ${7*7} €300.00" in text
        )
        assert "<class" not in text and "49" not in text
        assert "{{ &#x27;&#x27;.__class__ }} {% if 1 %}x{% endif %} ${7*7}" in html
        assert received["Subject"] == "{{ 7*7 }} Brasserie du Port"
    finally:
        server.close()


async def test_a_contact_name_with_crlf_cannot_add_a_header(db):
    server, rec, port = await start_smtp()
    try:
        company, customer, _ = await reminder_world(
            contact_name="Eve\r\nBcc: victim@evil.example\r\nX-Injected: yes"
        )
        await make_item(customer, "300.00", due=TODAY - timedelta(days=3), number="F-5001")
        template = await MessageTemplate.objects().get(
            (MessageTemplate.company == company.id)
            & (MessageTemplate.code == "reminder_1")
            & (MessageTemplate.language == "en")
        )
        await save_template(
            template.id,
            name=template.name,
            subject="For #ContactName: #OverdueAmount",
            body=template.body,
            actor=Actor.system("admin"),
        )
        await run_dunning(TODAY, settings_for(port))
        assert await send_due(settings_for(port)) == 1
        [received] = rec.messages
        assert received["Bcc"] is None and received["X-Injected"] is None
        assert received["Subject"] == "For Eve Bcc: victim@evil.example X-Injected: yes: €300.00"
        assert received["To"].addresses[0].addr_spec == "julie@brasserie.example"
        assert "victim@evil.example" not in [a.addr_spec for a in received["To"].addresses]
    finally:
        server.close()


# ------------------------------------------------------------------ worker processes

WORKER = """
import asyncio, sys
import receivables.dunning
from receivables import db
from receivables.mail.outbox import send_due
from receivables.settings import load_settings

async def main():
    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    db.use_engine(engine)
    await db.start(engine)
    try:
        print(await send_due(settings, worker_id=sys.argv[1], batch=int(sys.argv[2])), flush=True)
    finally:
        await db.stop(engine)

asyncio.run(main())
"""


async def worker_process(name: str, port: int, url: str, batch: int = 50):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SECRET_KEY": TEST_SECRET,
        "SMTP_PORT": str(port),
        "DATABASE_URL": url,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        name,
        str(batch),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


class Hanging(Recorder):
    """Accepts `accept_first` messages, then holds the next one's DATA forever."""

    def __init__(self, accept_first: int) -> None:
        super().__init__()
        self.accept_first = accept_first
        self.stuck = asyncio.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        if len(self.messages) >= self.accept_first:
            self.stuck.set()
            await asyncio.Event().wait()
        return await super().handle_DATA(server, session, envelope)


async def queue_many(company, customer, n: int) -> list[str]:
    ids = []
    for i in range(n):
        message = await queue_email(
            company_id=company.id,
            customer_id=customer.id,
            kind="statement",
            mail_from="Seller <ar@seller.example>",
            to=[Recipient(f"ap{i}@buyer.example", "AP")],
            subject=f"Statement {i}",
            text_body=f"Statement number {i}",
            actor=Actor.system(),
        )
        ids.append(message.message_id)
    return ids


async def test_a_worker_killed_after_claiming_is_resumed_without_a_duplicate(db, databases):
    recorder = Hanging(accept_first=2)
    loop = asyncio.get_running_loop()
    from aiosmtpd.smtp import SMTP

    server = await loop.create_server(lambda: SMTP(recorder, hostname="t"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        company = await make_company()
        customer = await make_customer(company)
        expected = await queue_many(company, customer, 6)
        proc = await worker_process("doomed", port, databases.urls[db], batch=10)
        await asyncio.wait_for(recorder.stuck.wait(), 60)
        proc.send_signal(signal.SIGKILL)  # dies in the middle of the third message's DATA
        await proc.wait()
        statuses = Counter(r["status"] for r in await OutboxMessage.select(OutboxMessage.status))
        assert statuses == {"sent": 2, "sending": 4}
        # A worker started now leaves another's fresh claim alone ...
        recorder.accept_first = 10**6
        resumed = await worker_process("heir", port, databases.urls[db])
        out, err = await resumed.communicate()
        assert out.decode().strip() == "0", err.decode()[-2000:]
        # ... and takes it back once the claim is stale (ten minutes without news).
        await OutboxMessage.update(
            {OutboxMessage.claimed_at: datetime.now(UTC) - timedelta(minutes=11)}
        ).where(OutboxMessage.status == "sending")
        resumed = await worker_process("heir", port, databases.urls[db])
        out, err = await resumed.communicate()
        assert out.decode().strip() == "4", err.decode()[-2000:]
        received = [m["Message-ID"].strip() for m in recorder.messages]
        assert sorted(received) == sorted(expected) and len(set(received)) == 6
    finally:
        server.close()


async def test_two_worker_processes_on_postgres_deliver_500_messages_exactly_once(pg_db, databases):
    server, rec, port = await start_smtp()
    try:
        company = await make_company()
        customer = await make_customer(company)
        expected = await queue_many(company, customer, 500)
        url = databases.urls["postgres"]
        workers = [await worker_process(f"w{i}", port, url, batch=20) for i in range(2)]
        results = [await w.communicate() for w in workers]
        counts = [int(out.decode().strip() or 0) for out, _ in results]
        assert sum(counts) == 500, [err.decode()[-1500:] for _, err in results]
        assert all(c > 0 for c in counts), counts  # both took a share
        received = Counter(m["Message-ID"].strip() for m in rec.messages)
        assert len(rec.messages) == 500 and set(received) == set(expected)
        assert max(received.values()) == 1
        statuses = Counter(r["status"] for r in await OutboxMessage.select(OutboxMessage.status))
        assert statuses == {"sent": 500}
    finally:
        server.close()


async def test_a_reminder_to_a_customer_blocked_meanwhile_is_cancelled(db):
    server, rec, port = await start_smtp()
    try:
        _company, customer, _ = await reminder_world()
        await make_item(customer, "300.00", due=TODAY - timedelta(days=3), number="F-6001")
        await run_dunning(TODAY, settings_for(port))
        from receivables.ledger.account_changes import block_account

        await block_account(customer.id, "cheque bounced", Actor.system("collector"))
        assert await send_due(settings_for(port)) == 0 and rec.messages == []
        [message] = await OutboxMessage.objects()
        assert message.status == "cancelled"
        assert message.last_error == "account blocked: cheque bounced"
        action = await DunningAction.objects().first()
        # Blocking is not an item change: the step keeps its place and is not rebuilt.
        assert action.status == "cancelled" and action.cycle_key is not None
        assert (await run_dunning(TODAY, settings_for(port))).created == 0
    finally:
        server.close()
