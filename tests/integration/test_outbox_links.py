"""Portal links in the outbox: the customer receives a working link, our stored copy never
holds one. Every link-bearing email (a dunning reminder, a statement sent from the account
page, a fresh link asked from the portal) is sent through a real SMTP server (the demo's
mail catcher, aiosmtpd); then no outbox row, no captured mail and no back-office page, for
any staff role, has a token that opens the portal, while the link the customer got does."""

# ruff: noqa: F811 - pytest fixtures imported from test_backoffice are parameters here

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import re
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from receivables.access.portal_links import issue_link, resolve_token
from receivables.access.tables import Role
from receivables.dunning.calls import send_statement_email
from receivables.dunning.defaults import install_defaults
from receivables.dunning.run import run_dunning
from receivables.dunning.tables import DunningAction, DunningActionMessage
from receivables.history import Actor, HistoryEvent
from receivables.ledger.tables import PayerProfile
from receivables.mail.capture import CaptureHandler
from receivables.mail.outbox import send_due
from receivables.mail.sealed_links import REDACTED
from receivables.mail.tables import CapturedMail, OutboxMessage
from receivables.portal.emails import PortalMail
from receivables.portal.fresh_links import send_fresh_links
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET, app_client, app_settings
from tests.factories import make_contact, make_customer, make_item
from tests.integration.test_backoffice import (  # noqa: F401 - fixtures
    backoffice_routes,
    bo_app,
    concrete,
    sign_in,
    world,
)
from web.mailing import TemplateComposer

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://testserver.local"
TODAY = date.today()
TOKEN = re.compile(r"/p/([A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{8,})")
MIGRATION = next(ROOT.glob("migrations/receivables_2026_11_29t20_48_20_*.py"))


class Catcher(CaptureHandler):
    """The demo's mail catcher, also keeping the exact bytes each customer received."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.raw.append(envelope.original_content or envelope.content)
        return await super().handle_DATA(server, session, envelope)

    def received(self) -> dict[str, tuple[bytes, str]]:
        """(bytes, plain text) by Message-ID."""
        out = {}
        for raw in self.raw:
            message = message_from_bytes(raw, policy=policy.default)
            text = message.get_body(("plain",)).get_content()
            out[message["Message-ID"].strip()] = (raw, text)
        return out


def settings_for(bo_app, port: int):
    base = app_settings(bo_app)
    return load_settings(
        {
            "SECRET_KEY": TEST_SECRET,
            "BASE_URL": BASE,
            "SMTP_PORT": str(port),
            "DOCUMENTS_DIR": str(base.documents_path),
        }
    )


async def tokens_that_open_the_portal(text: str) -> set[str]:
    return {t for t in TOKEN.findall(text) if await resolve_token(t, TEST_SECRET) is not None}


@pytest.fixture
async def sent(bo_app, world):
    """A reminder from the daily run, a statement from the account page and a fresh link
    asked from the portal, all sent to the demo's mail catcher."""
    catcher = Catcher()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(catcher, hostname="t"), "127.0.0.1", 0)
    settings = settings_for(bo_app, server.sockets[0].getsockname()[1])
    try:
        company = world.company
        await install_defaults(company.id)
        late = await make_customer(
            company,
            name="Café des Arts",
            ref="C0077",
            payer_profile=PayerProfile.negligent.value,
            collector=world.users["collector"].id,
        )
        lea = await make_contact(late, name="Léa Martin", email="lea@cafe.example")
        await make_item(late, "800.00", due=TODAY - timedelta(days=3), number="F-7001")
        report = await run_dunning(TODAY, settings)
        assert report.queued >= 1
        await send_statement_email(
            world.customer.id,
            "statement_before_due",
            (world.contact.id,),
            Actor.system("collector"),
            settings,
            TODAY,
        )
        old = await issue_link(
            customer=world.customer,
            contact=world.contact,
            secret_key=TEST_SECRET,
            base_url=BASE,
            days=60,
            issued_by="test",
        )
        mail = PortalMail(
            compose=TemplateComposer(ROOT / "templates"),
            mail_from=settings.smtp_from,
            base_url=BASE,
        )
        assert (
            await send_fresh_links(
                old.token, secret_key=TEST_SECRET, days=60, ip="198.51.100.9", mail=mail
            )
            == 1
        )
        queued = await OutboxMessage.select().where(OutboxMessage.sealed_token != "")
        assert {m["kind"] for m in queued} == {"dunning", "statement", "portal_link"}
        assert await send_due(settings) >= 3
    finally:
        server.close()
    action = await DunningAction.objects().get(DunningAction.customer == late.id)
    link = await DunningActionMessage.objects().get(DunningActionMessage.action == action.id)
    return {
        "catcher": catcher,
        "late": late,
        "lea": lea,
        "action": action,
        "reminder": await OutboxMessage.objects().get(OutboxMessage.id == link.message),
        "old_token": old.token,
    }


async def test_the_customer_gets_a_working_link_our_copy_is_redacted_and_hashed(bo_app, sent):
    received = sent["catcher"].received()
    rows = await OutboxMessage.objects().where(OutboxMessage.sealed_token == "")
    links = [r for r in rows if r.kind in ("dunning", "statement", "portal_link")]
    assert {r.kind for r in links} == {"dunning", "statement", "portal_link"}
    for row in links:
        raw, text = received[row.message_id]
        # What left is proven by the SHA-256 and size of its exact bytes.
        assert row.status == "sent"
        assert row.sent_sha256 == hashlib.sha256(raw).hexdigest() and row.sent_size == len(raw)
        # The customer's copy opens the portal; ours shows where the link was, redacted.
        assert await tokens_that_open_the_portal(text)
        assert f"/p/{REDACTED}" in row.text_body
        stored = " ".join([row.subject, row.text_body, row.html_body, row.sealed_token])
        assert TOKEN.findall(stored) == []
        for token in TOKEN.findall(text):
            assert token not in stored
    # The reminder's link, followed as the customer would: the statement, token-free.
    _, text = received[sent["reminder"].message_id]
    token = TOKEN.search(text).group(1)
    async with app_client(bo_app) as customer:
        opened = await customer.get(f"/p/{token}")
        assert opened.status_code == 303 and opened.headers["location"] == "/p/statement"
        page = await customer.get("/p/statement")
        assert page.status_code == 200 and "F-7001" in page.text


async def test_no_stored_row_holds_a_token_that_opens_the_portal(sent):
    texts = []
    for row in await OutboxMessage.select():
        texts += [row["subject"], row["text_body"], row["html_body"], row["sealed_token"]]
    for row in await CapturedMail.select():
        texts += [row["subject"], row["raw"]]
    for row in await HistoryEvent.select(HistoryEvent.details):
        texts.append(row["details"])
    received = {t for _, text in sent["catcher"].received().values() for t in TOKEN.findall(text)}
    assert received and sent["old_token"] not in received
    everything = "\n".join(texts)
    assert not (received & set(TOKEN.findall(everything)))
    assert all(token not in everything for token in received)
    assert await tokens_that_open_the_portal(everything) == set()


@pytest.mark.parametrize("role", [r.value for r in Role])
async def test_no_back_office_page_shows_a_working_link_to_any_role(bo_app, world, sent, role):
    received = {t for _, text in sent["catcher"].received().values() for t in TOKEN.findall(text)}
    captured = [r["id"] for r in await CapturedMail.select(CapturedMail.id)]
    ids = {
        **world.ids,
        "customer_id": sent["late"].id,
        "contact_id": sent["lea"].id,
        "action_id": sent["action"].id,
        "message_id": sent["reminder"].id,
    }
    pages = {
        concrete(path, ids)
        for method, path, _ in backoffice_routes(bo_app)
        if method == "GET" and not path.endswith(("/export", ".pdf", "/proof"))
    }
    for row in await OutboxMessage.select(OutboxMessage.id):
        pages |= {f"/backoffice/emails/{row['id']}", f"/backoffice/emails/{row['id']}/html"}
    for mail_id in captured:
        pages |= {f"/backoffice/mail/{mail_id}", f"/backoffice/mail/{mail_id}/html"}
    pages.add(f"/backoffice/customers/{world.customer.id}")
    shown = []
    statuses = {}
    async with app_client(bo_app) as client:
        await sign_in(client, world.users[role].email)
        for page in sorted(pages):
            r = await client.get(page)
            shown.append(r.text)
            statuses[page] = r.status_code
            for token in received:
                assert token not in r.text, (role, page)
        # The reminder is there to read, its link redacted.
        email = await client.get(f"/backoffice/emails/{sent['reminder'].id}")
        assert email.status_code == 200 and f"/p/{REDACTED}" in email.text
        assert sent["reminder"].sent_sha256 in email.text
    # Every role reads these (the crawl is not a tour of refusals).
    read = [
        f"/backoffice/customers/{sent['late'].id}",
        f"/backoffice/customers/{world.customer.id}",
        f"/backoffice/agenda/{sent['action'].id}",
        *(f"/backoffice/mail/{mail_id}" for mail_id in captured),
    ]
    assert {page: statuses[page] for page in read} == {page: 200 for page in read}
    assert await tokens_that_open_the_portal("\n".join(shown)) == set()


async def test_a_changed_secret_key_fails_the_message_instead_of_sending_a_dead_link(bo_app, world):
    catcher = Catcher()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(catcher, hostname="t"), "127.0.0.1", 0)
    try:
        settings = settings_for(bo_app, server.sockets[0].getsockname()[1])
        await install_defaults(world.company.id)
        [message_id] = await send_statement_email(
            world.customer.id,
            "statement_before_due",
            (world.contact.id,),
            Actor.system("collector"),
            settings,
            TODAY,
        )
        other = load_settings(
            {"SECRET_KEY": "another-secret-" + "y" * 32, "SMTP_PORT": str(settings.smtp_port)}
        )
        await send_due(other)
    finally:
        server.close()
    row = await OutboxMessage.objects().get(OutboxMessage.id == message_id)
    assert row.status == "failed" and "cannot be unsealed" in row.last_error
    assert row.sealed_token == "" and row.message_id not in catcher.received()


async def test_a_message_queued_before_links_were_sealed_is_sent_then_redacted(bo_app, world):
    """Rows written before this change hold the link in clear: the customer still gets it, and
    our copy is redacted once sent; the migration redacts those already done."""
    issued = await issue_link(
        customer=world.customer,
        contact=world.contact,
        secret_key=TEST_SECRET,
        base_url=BASE,
        days=60,
        issued_by="test",
    )
    legacy = OutboxMessage(
        company=world.company.id,
        customer=world.customer.id,
        kind="dunning",
        message_id="<legacy.1@seller.example>",
        mail_from="ar@seller.example",
        to_addrs=f"Julie <{world.contact.email}>",
        subject="Reminder",
        text_body=f"Pay here: {issued.url}\n",
        html_body=f'<a href="{issued.url}">Pay</a>',
    )
    await legacy.save()
    done = OutboxMessage(
        company=world.company.id,
        customer=world.customer.id,
        kind="dunning",
        message_id="<legacy.2@seller.example>",
        mail_from="ar@seller.example",
        to_addrs=f"Julie <{world.contact.email}>",
        subject="Reminder",
        text_body=f"Pay here: {issued.url}\n",
        status="sent",
    )
    await done.save()
    catcher = Catcher()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(catcher, hostname="t"), "127.0.0.1", 0)
    try:
        settings = settings_for(bo_app, server.sockets[0].getsockname()[1])
        assert await send_due(settings) == 4  # with the world's three other messages
    finally:
        server.close()
    _, text = catcher.received()[legacy.message_id]
    assert issued.url in text
    row = await OutboxMessage.objects().get(OutboxMessage.id == legacy.id)
    assert row.status == "sent" and issued.token not in row.text_body + row.html_body
    assert f"/p/{REDACTED}" in row.text_body
    spec = importlib.util.spec_from_file_location("outbox_migration", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    await migration.redact_done_messages()
    row = await OutboxMessage.objects().get(OutboxMessage.id == done.id)
    assert issued.token not in row.text_body and f"/p/{REDACTED}" in row.text_body
