"""The outbox against a real SMTP server: exactly once, retries, failures, no header injection."""

from datetime import UTC, datetime, timedelta

from receivables.history import Actor
from receivables.mail.outbox import Recipient, queue_email, send_due
from receivables.mail.tables import OutboxMessage, OutboxStatus
from receivables.settings import load_settings
from tests.factories import make_company, make_customer
from tests.smtp import start_smtp


async def _queue(company, customer, n=1, **kw):
    rows = []
    for i in range(n):
        rows.append(
            await queue_email(
                company_id=company.id,
                customer_id=customer.id,
                kind=kw.get("kind", "test"),
                mail_from="Seller <ar@seller.example>",
                to=[Recipient(kw.get("email", "ap@buyer.example"), kw.get("name", "Clerk"))],
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


async def test_sent_once_and_threaded(db):
    server, rec, port = await start_smtp()
    try:
        company = await make_company()
        customer = await make_customer(company)
        first, second = await _queue(company, customer, 2, thread=True, kind="reminder")
        assert await send_due(_settings(port)) == 2
        assert await send_due(_settings(port)) == 0
        assert len(rec.messages) == 2
        assert rec.messages[1]["In-Reply-To"].strip() == first.message_id
        assert rec.messages[1]["Message-ID"].strip() == second.message_id
        statuses = {r["status"] for r in await OutboxMessage.select(OutboxMessage.status)}
        assert statuses == {OutboxStatus.sent.value}
    finally:
        server.close()


async def test_4xx_is_retried_later_and_5xx_fails_with_the_answer(db):
    server, rec, port = await start_smtp()
    try:
        company = await make_company()
        customer = await make_customer(company)
        [temp] = await _queue(company, customer)
        rec.answers = ["421 Try again later"]
        assert await send_due(_settings(port)) == 0
        row = await OutboxMessage.objects().get(OutboxMessage.id == temp.id)
        assert row.status == OutboxStatus.queued.value and "421" in row.last_error
        assert row.next_attempt_at > datetime.now(UTC)
        await OutboxMessage.update(
            {OutboxMessage.next_attempt_at: datetime.now(UTC) - timedelta(seconds=1)}
        ).where(OutboxMessage.id == temp.id)
        assert await send_due(_settings(port)) == 1 and len(rec.messages) == 1

        [perm] = await _queue(company, customer)
        rec.answers = ["550 No such user"]
        assert await send_due(_settings(port)) == 0
        row = await OutboxMessage.objects().get(OutboxMessage.id == perm.id)
        assert row.status == OutboxStatus.failed.value and row.last_error == "550 No such user"
        assert len(rec.messages) == 1
    finally:
        server.close()


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
