"""The customer list and the customer account: figures, filters, changes with their history,
portal links, the timeline with emails' exact content, captured mail, users, payments."""
# ruff: noqa: F811 - pytest fixtures imported from test_backoffice are parameters here

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

import receivables.history
from receivables.access.portal_links import resolve_token
from receivables.access.tables import PortalLink, StaffUser
from receivables.db import current_engine
from receivables.history import HistoryEvent
from receivables.ledger import customer_list
from receivables.ledger.customer_list import CustomerFilters, Sort, list_customers
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import Contact, Customer, Item, ItemStatus, PayerProfile
from tests.conftest import TEST_SECRET, app_client, app_settings
from tests.factories import make_contact, make_customer, make_item, make_payment
from tests.integration.test_backoffice import (  # noqa: F401 - fixtures
    CSRF_IN_PAGE,
    bo_app,
    make_staff,
    sign_in,
    world,
)

TODAY = date.today()


def days(n: int) -> date:
    return TODAY + timedelta(days=n)


# ------------------------------------------------------------------ the list


@pytest.fixture
async def book(world):
    """Six customers with known figures, beside the world's Brasserie du Port."""
    c = world.company
    hugo = await make_staff("collector", "hugo@seller.example", "Hugo Bernard")
    rows = {
        "alpha": await make_customer(
            c, name="Alpha Logistics", ref="A-1", payer_profile="bad_payer"
        ),
        "beta": await make_customer(c, name="Beta Bakery", ref="B-2", collector=hugo.id),
        "gamma": await make_customer(c, name="Gamma Garage", ref="G-3", blocked=True),
        "delta": await make_customer(c, name="Delta Dental", ref="D-4"),
        "omega": await make_customer(c, name="Omega Optics", ref="O-9", currency="GBP"),
        "zeta": await make_customer(c, name="Zeta Zinc", ref="Z-5"),
    }
    await make_contact(rows["delta"], email="payables@delta-dental.example")
    await make_item(rows["alpha"], "5000.00", due=days(-10))
    await make_item(rows["alpha"], "700.00", due=days(20))
    await make_item(rows["beta"], "800.00", due=days(-95))
    await make_item(rows["gamma"], "2000.00", due=days(-45))
    await make_item(rows["delta"], "100.00", due=days(5))
    await make_item(rows["omega"], "900.00", due=days(-30), currency="GBP")
    await make_item(rows["omega"], "4000.00", due=days(-200), currency="EUR")
    # Paid and cancelled invoices count for nothing.
    paid = await make_item(rows["zeta"], "9999.00", due=days(-300))
    await Item.update({Item.open_minor: 0, Item.status: ItemStatus.paid.value}).where(
        Item.id == paid.id
    )
    await make_item(rows["zeta"], "8888.00", due=days(-300), status=ItemStatus.cancelled.value)
    rows["hugo"] = hugo
    return rows


def names(page) -> list[str]:
    return [r.name for r in page.rows]


async def test_list_sorts_by_overdue_amount_and_oldest_due(book, world):
    page = await list_customers(CustomerFilters(sort=Sort.overdue), TODAY)
    # Brasserie (world): 1200 + 300.50 past due, both on hold (its answers wait for a
    # collector), so nothing overdue: it comes after the ranked ones, by name. Omega ranks by
    # its overdue in the company's currency (EUR 4000); its GBP 900 is shown beside it.
    assert names(page)[:5] == [
        "Alpha Logistics",
        "Omega Optics",
        "Gamma Garage",
        "Beta Bakery",
        "Brasserie du Port",
    ]
    alpha = page.rows[0]
    assert [str(m) for m in alpha.overdue_amounts] == ["5000.00 EUR"]
    assert [str(m) for m in alpha.open_amounts] == ["5700.00 EUR"]
    omega = next(r for r in page.rows if r.name == "Omega Optics")
    assert sorted(str(m) for m in omega.overdue_amounts) == ["4000.00 EUR", "900.00 GBP"]
    assert omega.days_late == 200 and omega.oldest_due == days(-200)
    zeta = next(r for r in page.rows if r.name == "Zeta Zinc")
    assert zeta.overdue_amounts == [] and zeta.oldest_due is None
    brasserie = next(r for r in page.rows if r.name == "Brasserie du Port")
    assert brasserie.pending_feedback == 2 and brasserie.overdue_amounts == []

    by_age = await list_customers(CustomerFilters(sort=Sort.oldest_due), TODAY)
    assert names(by_age)[:4] == ["Omega Optics", "Beta Bakery", "Gamma Garage", "Brasserie du Port"]
    assert names(by_age)[-1] == "Zeta Zinc"  # nothing open: last
    by_name = await list_customers(CustomerFilters(sort=Sort.name), TODAY)
    assert names(by_name) == sorted(names(by_name))
    assert next(r for r in by_name.rows if r.name == "Alpha Logistics").days_late == 10


async def test_list_search_and_filters(book, world):
    async def find(**kw) -> list[str]:
        return sorted(names(await list_customers(CustomerFilters(**kw), TODAY)))

    assert await find(q="bakery") == ["Beta Bakery"]
    assert await find(q="G-3") == ["Gamma Garage"]
    assert await find(q="delta-dental.example") == ["Delta Dental"]
    assert await find(q="100%") == []  # LIKE wildcards are literal
    assert await find(collector_id=book["hugo"].id) == ["Beta Bakery"]
    assert await find(collector_id=world.users["collector"].id) == ["Brasserie du Port"]
    assert "Alpha Logistics" in await find(unassigned=True)
    assert await find(payer_profile=PayerProfile.bad_payer.value) == ["Alpha Logistics"]
    assert await find(blocked=True) == ["Gamma Garage"]
    assert "Gamma Garage" not in await find(blocked=False)
    assert await find(overdue_days=90) == ["Beta Bakery", "Omega Optics"]
    # Brasserie's late invoices are on hold (answers pending): not overdue.
    assert await find(overdue_days=30) == ["Beta Bakery", "Gamma Garage", "Omega Optics"]
    assert await find(pending_feedback=True) == ["Brasserie du Port"]
    assert await find(q="a", blocked=False, overdue_days=0, sort=Sort.name) == [
        "Alpha Logistics",
        "Beta Bakery",
        "Omega Optics",
    ]


async def test_list_pages_cost_the_same_number_of_queries(world, monkeypatch):
    engine = current_engine()
    calls = []
    original = type(engine).run_querystring

    async def counting(self, querystring, in_pool=True):
        calls.append(str(querystring)[:40])
        return await original(self, querystring, in_pool=in_pool)

    monkeypatch.setattr(type(engine), "run_querystring", counting)

    async def queries(**kw) -> int:
        calls.clear()
        await list_customers(CustomerFilters(**kw), TODAY)
        return len(calls)

    async def add(n: int) -> None:
        for k in range(n):
            customer = await make_customer(world.company, name=f"Bulk {k:03d}")
            await make_item(customer, f"{10 + k}.00", due=days(-1 - k))

    # The world's answers hold Brasserie's invoices; released, every customer here is ranked.
    await Item.update({Item.pending_answer: ""}).where(Item.pending_answer != "")
    await add(2 * customer_list.PAGE_SIZE)
    before = {(s, p): await queries(sort=s, page=p) for s in Sort for p in (1, 2, 3)}
    await add(2 * customer_list.PAGE_SIZE)
    after = {(s, p): await queries(sort=s, page=p) for s in Sort for p in (1, 2, 3)}
    # Full pages cost the same whatever the number of customers; none costs more than six.
    assert {k: v for k, v in after.items() if k[1] < 3} == {
        k: v for k, v in before.items() if k[1] < 3
    }
    assert max(after.values()) <= 6 and max(before.values()) <= 6
    # 4 pages of bulk customers plus the world's own one: page 5 holds that single customer.
    last = await list_customers(CustomerFilters(sort=Sort.name, page=5), TODAY)
    assert len(last.rows) == 1 and not last.has_next
    first = await list_customers(CustomerFilters(sort=Sort.name), TODAY)
    assert first.has_next and len(first.rows) == customer_list.PAGE_SIZE


async def test_list_pages_follow_each_other_without_gap_or_repeat(world):
    """The ranked part, then the customers with nothing overdue, across page boundaries."""
    for k in range(70):
        customer = await make_customer(world.company, name=f"Paged {k:03d}")
        if k % 2:
            await make_item(customer, f"{100 + k}.00", due=days(-5))
        else:
            await make_item(customer, "10.00", due=days(30))
    everyone = {c["id"] for c in await Customer.select(Customer.id)}
    for sort in Sort:
        seen: list[int] = []
        page = 1
        while True:
            result = await list_customers(CustomerFilters(sort=sort, page=page), TODAY)
            seen += [r.id for r in result.rows]
            if not result.has_next:
                break
            page += 1
        assert len(seen) == len(set(seen)) == len(everyone), sort
        assert set(seen) == everyone
    ranked = await list_customers(CustomerFilters(sort=Sort.overdue), TODAY)
    amounts = [r.overdue.get("EUR") for r in ranked.rows if r.overdue.get("EUR")]
    assert [m.amount for m in amounts] == sorted((m.amount for m in amounts), reverse=True)


async def test_list_page_with_htmx_fragment(bo_app, book, world):
    async with app_client(bo_app) as client:
        await sign_in(client, world.users["viewer"].email)
        page = await client.get("/backoffice/customers", params={"q": "dental"})
        assert page.status_code == 200 and "Delta Dental" in page.text
        assert "Alpha Logistics" not in page.text and 'value="dental"' in page.text
        fragment = await client.get(
            "/backoffice/customers",
            params={"overdue_days": "90", "sort": "oldest_due"},
            headers={"HX-Request": "true", "HX-Target": "customer-results"},
        )
        assert "<html" not in fragment.text
        assert fragment.text.index("Omega Optics") < fragment.text.index("Beta Bakery")
        empty = await client.get("/backoffice/customers", params={"q": "no such customer"})
        assert "No customer matches these filters" in empty.text


# ------------------------------------------------------------------ the account


async def test_account_page_shows_the_statement_from_the_statement_service(bo_app, world):
    await make_payment(world.customer, "50.00")
    statement = await build_statement(world.customer.id, TODAY)
    totals = statement.totals["EUR"]
    async with app_client(bo_app) as client:
        await sign_in(client, world.users["viewer"].email)
        page = await client.get(f"/backoffice/customers/{world.customer.id}")
    assert page.status_code == 200
    text = page.text
    for figure in (totals.overdue, totals.not_due, totals.open):
        assert figure.format("en_GB") in text
    assert [i.number for i in statement.invoices] == re.findall(
        r'<tr id="item-\d+"[^>]*>\s*<td><a class="strong" href="/backoffice/items/\d+">([^<]+)</a>',
        text,
    )
    assert "Brasserie du Port" in text and "C0042" in text and "Collector Person" in text
    assert "Default for negligent" not in text and "Default for good payer" in text
    assert "answer to review" in text  # the pending answers are flagged on their items
    assert "julie@brasserie.example" in text
    assert "VIR" not in text or "Payment not yet applied" in text
    # A viewer sees no forms that change the account.
    assert "/block" not in text and "/contacts/new" not in text and "/portal-links" not in text


async def test_contacts_are_added_and_edited_with_their_history(bo_app, world):
    url = f"/backoffice/customers/{world.customer.id}"
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post(
            f"{url}/contacts",
            data={"name": "Marc Morel", "email": "not an email", "role": "CFO"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 422
        assert 'value="Marc Morel"' in r.text and 'value="CFO"' in r.text
        assert 'id="f-email-error"' in r.text
        r = await client.post(
            f"{url}/contacts",
            data={
                "name": "Marc Morel",
                "email": "Marc@Brasserie.example",
                "receives_reminders": "1",
            },
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303 and r.headers["location"] == f"{url}#contacts"
        marc = await Contact.objects().get(Contact.email == "marc@brasserie.example")
        assert marc.receives_reminders
        r = await client.post(
            f"{url}/contacts",
            data={"email": "marc@brasserie.example"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 422 and "already a contact here" in r.text
        # Choose who receives reminders: one click.
        r = await client.post(
            f"{url}/contacts/{marc.id}/reminders",
            data={"receives_reminders": ""},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303
        assert not (await Contact.objects().get(Contact.id == marc.id)).receives_reminders
        page = await client.get(url)
        assert "marc@brasserie.example no longer receives reminders." in page.text
    kinds = [
        e["kind"] for e in await HistoryEvent.select(HistoryEvent.kind).order_by(HistoryEvent.id)
    ]
    assert kinds[-2:] == ["contact.added", "contact.updated"]


async def test_every_account_change_is_undone_when_its_history_fails(bo_app, world, monkeypatch):
    url = f"/backoffice/customers/{world.customer.id}"

    async def broken(**kwargs):
        raise RuntimeError("history unavailable")

    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        monkeypatch.setattr(receivables.history, "record", broken)
        attempts = [
            (f"{url}/block", {"reason": "late"}),
            (f"{url}/contacts", {"email": "new@brasserie.example"}),
            (f"{url}/assign", {"collector": "", "payer_profile": "bad_payer"}),
            (
                f"/backoffice/items/{world.items[2].id}/status",
                {"status": "disputed", "dispute_reason": "price", "comment": "x"},
            ),
            (f"{url}/portal-links", {"contact": str(world.contact.id)}),
            (f"{url}/portal-links/{world.ids['link_id']}/revoke", {}),
        ]
        for path, data in attempts:
            r = await client.post(path, data=data, headers={"x-csrftoken": token})
            assert r.status_code == 500, path
        monkeypatch.undo()
    customer = await Customer.objects().get(Customer.id == world.customer.id)
    assert not customer.blocked and customer.payer_profile == "good_payer"
    assert customer.collector == world.users["collector"].id
    assert await Contact.count().where(Contact.customer == world.customer.id) == 1
    item = await Item.objects().get(Item.id == world.items[2].id)
    assert item.status == "open" and item.comment == ""
    assert await PortalLink.count() == 1
    assert (await PortalLink.objects().first()).revoked_at is None


async def test_block_and_unblock_with_a_reason(bo_app, world):
    url = f"/backoffice/customers/{world.customer.id}"
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post(f"{url}/block", data={"reason": "  "}, headers={"x-csrftoken": token})
        assert r.status_code == 422 and 'id="f-reason-error"' in r.text
        r = await client.post(
            f"{url}/block",
            data={"reason": "Three invoices 60 days late"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303
        page = await client.get(url)
        assert "Account blocked" in page.text and "Three invoices 60 days late" in page.text
        r = await client.post(
            f"{url}/block", data={"reason": "again"}, headers={"x-csrftoken": token}
        )
        page = await client.get(r.headers["location"])
        assert "already blocked" in page.text
        r = await client.post(
            f"{url}/unblock", data={"reason": "Paid"}, headers={"x-csrftoken": token}
        )
        assert r.status_code == 303
    customer = await Customer.objects().get(Customer.id == world.customer.id)
    assert not customer.blocked and customer.blocked_reason == ""
    blocked = await HistoryEvent.objects().get(HistoryEvent.kind == "account.blocked")
    assert '"reason":"Three invoices 60 days late"' in blocked.details
    assert await HistoryEvent.count().where(HistoryEvent.kind == "account.unblocked") == 1
    listed = await list_customers(CustomerFilters(blocked=True), TODAY)
    assert listed.rows == []


async def test_collectors_set_item_statuses(bo_app, world):
    item = world.items[2]
    url = f"/backoffice/items/{item.id}"
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post(
            f"{url}/status",
            data={"status": "promised", "promise_date": "", "comment": "called Julie"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 422
        assert "a promise to pay needs its date" in r.text and "called Julie" in r.text
        r = await client.post(
            f"{url}/status",
            data={"status": "disputed", "dispute_reason": "nonsense"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 422 and 'id="f-dispute_reason-error"' in r.text
        promise = days(12)
        r = await client.post(
            f"{url}/status",
            data={
                "status": "promised",
                "promise_date": promise.isoformat(),
                "comment": "called Julie",
            },
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303
        assert r.headers["location"] == f"/backoffice/customers/{world.customer.id}#item-{item.id}"
        page = await client.get(r.headers["location"])
        assert "F-1003: status set to promise to pay." in page.text
    row = await Item.objects().get(Item.id == item.id)
    assert (row.status, row.promise_date, row.comment) == ("promised", promise, "called Julie")
    event = await HistoryEvent.objects().get(HistoryEvent.kind == "item.status_changed")
    assert event.item == item.id and '"to":"promised"' in event.details


async def test_portal_links_are_listed_issued_once_and_revoked(bo_app, world):
    url = f"/backoffice/customers/{world.customer.id}"
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post(
            f"{url}/portal-links",
            data={"contact": str(world.contact.id)},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        issued = re.search(r'value="(http://testserver.local/p/([^"]+))"', r.text)
        assert issued and "data-copy" in r.text
        token_value = issued.group(2)
        link = await resolve_token(token_value, TEST_SECRET)
        assert link is not None and link.customer == world.customer.id
        assert link.issued_by == world.users["collector"].email
        page = await client.get(url)
        assert token_value not in page.text  # shown once, never again
        assert page.text.count("Revoke</button>") == 2
        r = await client.post(
            f"{url}/portal-links/{link.id}/revoke", headers={"x-csrftoken": token}
        )
        assert r.status_code == 303
        assert await resolve_token(token_value, TEST_SECRET) is None
        r = await client.post(
            f"{url}/portal-links/{link.id}/revoke", headers={"x-csrftoken": token}
        )
        page = await client.get(r.headers["location"])
        assert "already revoked" in page.text
    kinds = {e["kind"] for e in await HistoryEvent.select(HistoryEvent.kind)}
    assert {"portal_link.issued", "portal_link.revoked"} <= kinds


async def test_timeline_by_kind_and_emails_with_their_exact_content(bo_app, world):
    url = f"/backoffice/customers/{world.customer.id}"
    async with app_client(bo_app) as client:
        await sign_in(client, world.users["viewer"].email)
        page = await client.get(url)
        assert "Customer promises to pay on" in page.text
        assert "Email “Your statement” to julie@brasserie.example" in page.text
        emails = await client.get(
            url, params={"kind": "email"}, headers={"HX-Request": "true", "HX-Target": "timeline"}
        )
        assert "<html" not in emails.text
        assert "Your statement" in emails.text and "Customer promises" not in emails.text
        answers = await client.get(url, params={"kind": "comment"})
        assert (
            "Customer says it is paid" in answers.text
            and "Email “Your statement”" not in answers.text
        )
        view = re.search(r'href="(/backoffice/emails/(\d+))"', emails.text)
        message = await client.get(view.group(1))
        assert "Dear Julie,\nplease find your statement." in message.text
        assert f'src="/backoffice/emails/{view.group(2)}/html"' in message.text
        html = await client.get(f"{view.group(1)}/html")
        assert html.text.endswith("<p>Dear Julie,</p><p>please find your statement.</p>")
        csp = html.headers["content-security-policy"]
        assert "sandbox" in csp and "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
        assert html.headers["x-frame-options"] == "SAMEORIGIN"


async def test_timeline_pages_back_through_older_events(bo_app, world):
    for n in range(60):
        await receivables.history.record(
            company_id=world.company.id,
            actor=receivables.history.Actor.system(),
            kind="call.logged",
            customer_id=world.customer.id,
            details={"outcome": f"call {n}"},
        )
    async with app_client(bo_app) as client:
        await sign_in(client, world.users["viewer"].email)
        page = await client.get(
            f"/backoffice/customers/{world.customer.id}", params={"kind": "call"}
        )
        first = re.findall(r"call (\d+)</blockquote>", page.text)
        assert first[0] == "59" and len(first) == 50
        older = re.search(r'hx-get="([^"]+before=\d+)"', page.text).group(1).replace("&amp;", "&")
        more = await client.get(older, headers={"HX-Request": "true", "HX-Target": "tl-more"})
        rest = re.findall(r"call (\d+)</blockquote>", more.text)
        assert rest == [str(n) for n in range(9, -1, -1)] and "<ol" not in more.text


# ------------------------------------------------------------------ mail, users, payments


async def test_captured_mail_is_listed_and_rendered_as_received(bo_app, world, db, databases):
    async with app_client(bo_app) as client:
        await sign_in(client, world.users["viewer"].email)
        listing = await client.get("/backoffice/mail")
        assert "Your statement" in listing.text and "julie@brasserie.example" in listing.text
        message = await client.get(f"/backoffice/mail/{world.ids['mail_id']}")
        assert "Plain words" in message.text
        html = await client.get(f"/backoffice/mail/{world.ids['mail_id']}/html")
        assert (
            "<p>Rich words</p>" in html.text
            and "sandbox" in html.headers["content-security-policy"]
        )
        # Standards mode: the doctype first, the <base> for links after it.
        assert html.text.startswith('<!doctype html>\n<base target="_blank">')
    # Outside the demo there is no mail catcher, so no such page.
    from app import create_app

    app = create_app(app_settings(bo_app), engine=await databases.get(db), demo=False)
    async with app_client(app) as client:
        await sign_in(client, world.users["viewer"].email)
        assert (await client.get("/backoffice/mail")).status_code == 404
        page = await client.get("/backoffice/customers")
        assert "Captured mail" not in page.text


async def test_admins_manage_users(bo_app, world):
    async with app_client(bo_app) as admin:
        token = await sign_in(admin, world.users["admin"].email)
        r = await admin.post(
            "/backoffice/users",
            data={
                "name": "Nina Fischer",
                "email": "nina@",
                "role": "collector",
                "password": "short",
            },
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 422 and 'value="Nina Fischer"' in r.text
        assert 'id="f-email-error"' in r.text and 'id="f-password-error"' in r.text
        r = await admin.post(
            "/backoffice/users",
            data={
                "name": "Nina Fischer",
                "email": "nina@seller.example",
                "role": "collector",
                "password": "a long enough password",
            },
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303
        nina = await StaffUser.objects().get(StaffUser.email == "nina@seller.example")
        async with app_client(bo_app) as nina_client:
            await sign_in(nina_client, nina.email, "a long enough password")
            r = await admin.post(
                f"/backoffice/users/{nina.id}/role",
                data={"role": "viewer"},
                headers={"x-csrftoken": token},
            )
            assert r.status_code == 303
            # Her next request runs with her new role.
            nina_token = CSRF_IN_PAGE.search((await nina_client.get("/backoffice/customers")).text)
            r = await nina_client.post(
                f"/backoffice/customers/{world.customer.id}/block",
                data={"reason": "x"},
                headers={"x-csrftoken": nina_token.group(1)},
            )
            assert r.status_code == 403
            r = await admin.post(
                f"/backoffice/users/{nina.id}/active",
                data={"active": "0"},
                headers={"x-csrftoken": token},
            )
            assert r.status_code == 303
            assert (await nina_client.get("/backoffice/customers")).status_code == 303
        # An admin cannot lock themselves out.
        me = world.users["admin"].id
        r = await admin.post(
            f"/backoffice/users/{me}/active", data={"active": "0"}, headers={"x-csrftoken": token}
        )
        page = await admin.get(r.headers["location"])
        assert "cannot deactivate your own account" in page.text
        assert (await StaffUser.objects().get(StaffUser.id == me)).active


async def test_finance_sees_payments(bo_app, world):
    await make_payment(world.customer, "120.00", ref="VIR-0001")
    async with app_client(bo_app) as client:
        await sign_in(client, world.users["finance"].email)
        page = await client.get("/backoffice/payments")
        assert "VIR-0001" in page.text and "€120.00" in page.text
        only = await client.get("/backoffice/payments", params={"unapplied": "1"})
        assert "VIR-0001" in only.text
