"""The way into the portal: dead links alike, mail scanners harmless, token-free pages,
headers, cookies, CSRF, rate limits, fresh links to the contacts on file, no token in logs."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime, timedelta

from receivables.access.portal_links import _b64, _signature, resolve_token, revoke
from receivables.access.tables import PortalLink
from receivables.history import HistoryEvent
from receivables.ledger.tables import Contact, Item
from receivables.mail.sealed_links import unseal
from receivables.mail.tables import OutboxMessage
from receivables.portal.tables import Feedback, PortalSession
from tests.conftest import app_client
from tests.factories import make_contact
from tests.integration.test_portal_support import *  # noqa: F403 (fixtures)
from tests.integration.test_portal_support import csrf_of, hx, make_account, open_visit

CSRF_FIELD = re.compile(r'name="_csrf_token" value="[^"]+"')


def _normalised(html: str) -> str:
    return CSRF_FIELD.sub('name="_csrf_token" value=""', html)


async def _dead_links(settings) -> dict[str, str]:
    """One token of each kind of dead link (and the account they belong to)."""
    expired = await make_account(settings)
    await PortalLink.update(
        {PortalLink.expires_at: datetime.now(UTC) - timedelta(minutes=1)}
    ).where(PortalLink.customer == expired.customer.id)
    revoked = await make_account(settings)
    link = await PortalLink.objects().get(PortalLink.customer == revoked.customer.id)
    assert await revoke(link.id)
    live = await make_account(settings)
    body, _, sig = live.token.partition(".")
    tampered = f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{sig}"
    unknown_body = _b64(b"\x01" * 24)
    unknown = f"{unknown_body}.{_signature(settings.secret_key, unknown_body)}"
    return {
        "tampered": tampered,
        "unknown": unknown,
        "expired": expired.token,
        "revoked": revoked.token,
    }


async def test_dead_links_get_the_same_page_and_status(pclient, portal_settings):
    tokens = await _dead_links(portal_settings)
    answers = {kind: await pclient.get(f"/p/{token}") for kind, token in tokens.items()}
    statuses = {kind: r.status_code for kind, r in answers.items()}
    assert set(statuses.values()) == {404}, statuses
    bodies = {_normalised(r.text) for r in answers.values()}
    assert len(bodies) == 1, "a dead link's page must not tell which kind of dead it is"
    page = answers["revoked"].text
    assert "This link no longer works" in page and "Email me a new link" in page
    assert '<form method="post"' in page and 'type="email"' not in page
    for r in answers.values():
        assert "relance_portal=" not in r.headers.get("set-cookie", "")
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
    assert await PortalSession.count() == 0


async def test_two_scanner_gets_then_the_customer_still_gets_in(db, portal_settings, databases):
    from app import create_app

    account = await make_account(portal_settings)
    app = create_app(portal_settings, engine=await databases.get(db))
    for _ in range(2):  # a mail scanner: no cookies kept between fetches
        async with app_client(app) as scanner:
            r = await scanner.get(account.path, headers={"user-agent": "SafeLinks-Scanner/1"})
            assert r.status_code == 303
    async with app_client(app) as customer:
        page = await open_visit(customer, account)
    assert "Buyer Ltd" in page.text and account.items["late"].number in page.text
    link = await PortalLink.objects().get(PortalLink.customer == account.customer.id)
    assert link.revoked_at is None
    assert await resolve_token(account.token, portal_settings.secret_key) is not None
    opened = await HistoryEvent.select(HistoryEvent.details).where(
        (HistoryEvent.kind == "portal.link_opened") & (HistoryEvent.customer == account.customer.id)
    )
    assert len(opened) == 3
    assert sum("SafeLinks-Scanner/1" in row["details"] for row in opened) == 2
    assert all("203.0.113.7" in row["details"] for row in opened)


async def test_exchange_redirects_to_token_free_pages_with_strict_headers(pclient, portal_settings):
    account = await make_account(portal_settings)
    r = await pclient.get(account.path)
    assert r.status_code == 303
    assert r.headers["location"] == "/p/statement"
    assert account.token not in r.headers["location"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("relance_portal=")
    assert account.token not in cookie
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "path=/p", "samesite=lax"} <= flags
    assert "secure" not in flags  # BASE_URL is http here
    page = await pclient.get("/p/statement")
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert account.token not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # Every other portal answer carries the same headers, errors included.
    for path in ("/p/statement.xlsx", "/p/answer?item=999999"):
        other = await pclient.get(path)
        assert other.headers["referrer-policy"] == "no-referrer", path
        assert other.headers["cache-control"] == "no-store", path


async def test_secure_cookie_under_https(db, portal_settings, databases):
    from app import create_app

    https = dataclasses.replace(portal_settings, base_url="https://pay.example.com")
    account = await make_account(https)
    app = create_app(https, engine=await databases.get(db))
    async with app_client(app) as client:
        r = await client.get(account.path, headers={"host": "pay.example.com"})
    assert r.status_code == 303
    assert "secure" in {p.strip().lower() for p in r.headers["set-cookie"].split(";")}


async def _snapshot() -> dict[str, list]:
    return {
        "items": await Item.select().order_by(Item.id),
        "links": await PortalLink.select().order_by(PortalLink.id),
        "feedback": await Feedback.select().order_by(Feedback.id),
        "outbox": await OutboxMessage.select().order_by(OutboxMessage.id),
        "contacts": await Contact.select().order_by(Contact.id),
    }


async def test_gets_change_nothing_but_history(pclient, portal_settings):
    account = await make_account(portal_settings)
    before = await _snapshot()
    sessions_before = await PortalSession.count()
    await open_visit(pclient, account)
    item = account.items["late"]
    for path in (
        "/p/statement?show=overdue&sort=open&order=desc",
        "/p/statement.xlsx",
        "/p/statement.pdf",
        f"/p/invoices/{item.id}/pdf",
        f"/p/answer?item={item.id}",
    ):
        r = await pclient.get(path)
        assert r.status_code == 200, path
    await pclient.get("/p/statement", headers=hx())
    assert await _snapshot() == before
    assert await PortalSession.count() == sessions_before + 1
    kinds = [
        r["kind"]
        for r in await HistoryEvent.select(HistoryEvent.kind)
        .where(HistoryEvent.customer == account.customer.id)
        .order_by(HistoryEvent.id)
    ]
    assert kinds == [
        "portal.link_opened",
        "portal.statement_viewed",
        "portal.statement_viewed",
        "portal.document_downloaded",
        "portal.document_downloaded",
        "portal.document_downloaded",
    ]


async def test_revoking_the_link_ends_the_visit(pclient, portal_settings):
    account = await make_account(portal_settings)
    await open_visit(pclient, account)
    link = await PortalLink.objects().get(PortalLink.customer == account.customer.id)
    await revoke(link.id)
    r = await pclient.get("/p/statement")
    assert r.status_code == 401 and "Your visit has ended" in r.text
    fragment = await pclient.get("/p/statement?show=overdue", headers=hx())
    assert fragment.status_code == 401 and fragment.headers["hx-refresh"] == "true"
    assert (await pclient.get("/p/statement.pdf")).status_code == 401


async def test_no_visit_without_cookie_and_foreign_items_are_hidden(pclient, portal_settings):
    assert (await pclient.get("/p/statement")).status_code == 401
    mine = await make_account(portal_settings)
    theirs = await make_account(portal_settings)
    await open_visit(pclient, mine)
    other = theirs.items["late"]
    assert (await pclient.get(f"/p/invoices/{other.id}/pdf")).status_code == 404
    form = await pclient.get(f"/p/answer?item={other.id}")
    assert other.number not in form.text
    assert "can no longer be answered" in form.text


async def test_portal_posts_need_the_session_csrf_token(pclient, portal_settings):
    account = await make_account(portal_settings)
    page = await open_visit(pclient, account)
    item = account.items["late"].id
    answer = {"item": str(item), "kind": "question", "text": "Where is the delivery note?"}
    assert (await pclient.post("/p/answer", data=answer)).status_code == 403
    wrong = await pclient.post("/p/answer", data={**answer, "_csrf_token": "0" * 40})
    assert wrong.status_code == 403
    assert (await pclient.post("/p/language", data={"language": "fr"})).status_code == 403
    assert await Feedback.count() == 0
    token = csrf_of(page.text)
    ok = await pclient.post("/p/answer", data=answer, headers=hx(**{"x-csrftoken": token}))
    assert ok.status_code == 200
    assert await Feedback.count() == 1


async def test_language_follows_contact_then_switch(pclient, portal_settings):
    account = await make_account(portal_settings, contact_language="fr", locale="en_GB")
    page = await open_visit(pclient, account)
    assert '<html lang="fr">' in page.text and "Relevé de compte" in page.text
    switched = await pclient.post(
        "/p/language", data={"language": "en", "_csrf_token": csrf_of(page.text)}
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/p/statement"
    english = await pclient.get("/p/statement")
    assert '<html lang="en">' in english.text and "Statement of account" in english.text


async def test_link_attempts_are_rate_limited(pclient, portal_settings):
    tokens = await _dead_links(portal_settings)
    statuses = [(await pclient.get(f"/p/{tokens['unknown']}")).status_code for _ in range(31)]
    assert statuses[:30] == [404] * 30
    assert statuses[30] == 429
    limited = await pclient.get(f"/p/{tokens['expired']}")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.headers["referrer-policy"] == "no-referrer"


async def _ask_fresh_link(client, token: str):
    page = await client.get(f"/p/{token}")
    assert page.status_code == 404
    return await client.post(f"/p/{token}", data={"_csrf_token": csrf_of(page.text)})


async def test_fresh_links_go_to_the_contacts_on_file_only(pclient, portal_settings):
    tokens = await _dead_links(portal_settings)
    expired_link = await PortalLink.objects().get(PortalLink.token_hash.is_not_null())
    account_contacts = await Contact.objects().where(Contact.customer == expired_link.customer)
    second = await make_contact(
        (await expired_link.get_related(PortalLink.customer)), email="second@buyer.example"
    )
    answers = {}
    for kind in ("unknown", "tampered", "expired"):
        answers[kind] = await _ask_fresh_link(pclient, tokens[kind])
    assert {r.status_code for r in answers.values()} == {200}
    assert len({_normalised(r.text) for r in answers.values()}) == 1
    assert "If this link belongs to an account" in answers["unknown"].text
    mails = await OutboxMessage.select().where(OutboxMessage.kind == "portal_link")
    recipients = sorted(m["to_addrs"] for m in mails)
    expected = sorted(
        f"{c.name} <{c.email}>" for c in [*account_contacts, second] if c.receives_reminders
    )
    assert recipients == expected
    for mail in mails:
        url = unseal(mail["sealed_token"], portal_settings.secret_key, mail["message_id"])
        link = await resolve_token(url, portal_settings.secret_key)
        assert link is not None and link.customer == expired_link.customer
        assert link.message_ref == mail["message_id"] and link.issued_by.startswith("portal")
    # Asking again straight away sends nothing more (and says the same).
    again = await _ask_fresh_link(pclient, tokens["expired"])
    assert again.status_code == 200
    assert await OutboxMessage.count().where(OutboxMessage.kind == "portal_link") == len(mails)


async def test_fresh_link_form_needs_its_token_and_is_rate_limited(pclient, portal_settings):
    tokens = await _dead_links(portal_settings)
    refused = await pclient.post(f"/p/{tokens['expired']}", data={"_csrf_token": "x"})
    assert refused.status_code == 403
    assert await OutboxMessage.count() == 0
    # The refused attempt counted: four more pass, the sixth within ten minutes does not.
    statuses = [(await _ask_fresh_link(pclient, tokens["unknown"])).status_code for _ in range(4)]
    assert statuses == [200] * 4
    page = await pclient.get(f"/p/{tokens['unknown']}")
    limited = await pclient.post(
        f"/p/{tokens['unknown']}", data={"_csrf_token": csrf_of(page.text)}
    )
    assert limited.status_code == 429


async def test_tokens_never_reach_the_logs(pclient, portal_settings, caplog):
    caplog.set_level(logging.DEBUG)
    account = await make_account(portal_settings)
    tokens = await _dead_links(portal_settings)
    await open_visit(pclient, account)
    await pclient.get(f"/p/{tokens['tampered']}")
    await _ask_fresh_link(pclient, tokens["expired"])
    # The test's HTTP client logs the URLs it fetches (a browser's history would too):
    # what matters is what the server writes.
    text = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    for token in (account.token, *tokens.values()):
        assert token not in text
        assert token.split(".")[0] not in text
    details = " ".join(r["details"] for r in await HistoryEvent.select(HistoryEvent.details))
    assert account.token not in details and tokens["expired"] not in details
