"""Paying from the portal against localstripe, through the official SDK and the real webhook:
the selection, SetupIntent -> PaymentIntent, 3-D Secure, declines, credit notes, and the
items only marked paid once Stripe's signed event has been applied (by the worker's
`stripe_events` job, running beside the app as in the demo)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta

import httpx
import pytest

from receivables.access.portal_links import issue_link
from receivables.history import HistoryEvent
from receivables.ledger.tables import Allocation, Item, ItemKind, ItemStatus, Payment
from receivables.payments.tables import FinanceException, OnlinePayment, StripeEvent
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.stripe_emulator import LiveApp, card, wait_for

TODAY = date.today()


@pytest.fixture
async def stripe_worker(live_app: LiveApp) -> AsyncIterator[None]:
    """The worker's registered `stripe_events` job, run every 50 ms beside the live app."""
    from receivables.worker import JOBS

    job = next(j for j in JOBS if j.name == "stripe_events")
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await job.run(live_app.settings)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        await task  # a failing run fails the test here


async def _account(live: LiveApp, *amounts: str, currency: str = "EUR"):
    company = await make_company(currency=currency)
    customer = await make_customer(company)
    contact = await make_contact(customer)
    items = [
        await make_item(customer, amount, due=TODAY - timedelta(days=40 - 10 * n))
        for n, amount in enumerate(amounts)
    ]
    return company, customer, contact, items


@asynccontextmanager
async def _portal(live: LiveApp, customer, contact) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser-like session: the link opened, the pay page read for its CSRF token."""
    issued = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=live.settings.secret_key,
        base_url=live.url,
        days=30,
        issued_by="test",
    )
    async with live.http() as http:
        opened = await http.get(issued.url.removeprefix(live.url))
        assert opened.status_code == 303
        page = await http.get("/p/pay")
        assert page.status_code == 200
        csrf = re.search(r'data-csrf="([^"]+)"', page.text).group(1)
        yield http, csrf


async def _pay(http, csrf, live: LiveApp, items, number: str) -> tuple[dict, str]:
    started = await http.post(
        "/p/pay/start",
        data={"item": [str(i.id) for i in items]},
        headers={"x-csrftoken": csrf},
    )
    assert started.status_code == 200, started.text
    body = started.json()
    # What confirmCardSetup does in the browser: the card becomes a PaymentMethod.
    seti = body["client_secret"].split("_secret_")[0]
    method = await card(live.stripe, number)
    setup = await live.stripe.v1.setup_intents.confirm_async(seti, {"payment_method": method})
    if setup.status == "requires_action":  # 3-D Secure on the setup, completed
        setup = await live.stripe.v1.setup_intents.confirm_async(seti)
    assert setup.status == "succeeded"
    confirmed = await http.post(
        "/p/pay/confirm",
        data={"key": body["key"], "payment_method": method},
        headers={"x-csrftoken": csrf},
    )
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json(), body["key"]


async def _item(item_id: int) -> Item:
    return await Item.objects().get(Item.id == item_id)


async def test_pay_two_items_the_webhook_marks_them_paid(live_app: LiveApp, stripe_worker):
    _company, customer, contact, (old, newer, other) = await _account(
        live_app, "100.00", "50.00", "75.00"
    )
    async with _portal(live_app, customer, contact) as (http, csrf):
        answer, key = await _pay(http, csrf, live_app, [newer, old], "4242424242424242")
        assert answer["status"] == "succeeded"
        assert answer["next"] == f"/p/pay/done/{key}"

        async def paid():
            op = await OnlinePayment.objects().get(OnlinePayment.key == key)
            return op if op.status == "succeeded" else None

        op = await wait_for(paid)
        done = await http.get(answer["next"])
        assert "Payment received, thank you" in done.text

    assert op.received_minor == 15000 and op.currency == "EUR"
    assert op.fee_minor == 0 and op.net_minor == 15000  # localstripe charges no fee
    payment = await Payment.objects().get(Payment.id == op.payment)
    assert payment.ref == op.intent_id and payment.method == "card"
    assert (payment.amount_minor, payment.unapplied_minor) == (15000, 0)
    allocations = await Allocation.select(Allocation.item, Allocation.amount_minor).where(
        Allocation.payment == payment.id
    )
    assert sorted((a["item"], a["amount_minor"]) for a in allocations) == sorted(
        [(old.id, 10000), (newer.id, 5000)]
    )
    for item in (old, newer):
        row = await _item(item.id)
        assert (row.open_minor, row.status) == (0, ItemStatus.paid.value)
    assert (await _item(other.id)).open_minor == 7500
    event = await StripeEvent.objects().get(StripeEvent.object_id == op.intent_id)
    assert event.type == "payment_intent.succeeded" and event.status == "processed"
    kinds = {
        r["kind"]
        for r in await HistoryEvent.select(HistoryEvent.kind).where(
            HistoryEvent.customer == customer.id
        )
    }
    assert {"payment.card_started", "payment.received", "allocation.created"} <= kinds
    assert await FinanceException.count() == 0


async def test_an_invoiced_penalty_paid_by_card_is_settled_not_raised(
    live_app: LiveApp, stripe_worker
):
    """Penalties invoiced on request are items the customer may pay online: the card money
    settles them like an invoice (before, settlement took only invoices and raised the
    money as an overpayment)."""
    _company, customer, contact, (invoice,) = await _account(live_app, "100.00")
    penalty = await make_item(customer, "40.00", due=TODAY, kind=ItemKind.penalty)
    async with _portal(live_app, customer, contact) as (http, csrf):
        answer, key = await _pay(http, csrf, live_app, [invoice, penalty], "4242424242424242")
        assert answer["status"] == "succeeded"

        async def paid():
            op = await OnlinePayment.objects().get(OnlinePayment.key == key)
            return op if op.status == "succeeded" else None

        op = await wait_for(paid)
    for item in (invoice, penalty):
        row = await _item(item.id)
        assert (row.open_minor, row.status) == (0, ItemStatus.paid.value)
    payment = await Payment.objects().get(Payment.id == op.payment)
    assert (payment.amount_minor, payment.unapplied_minor) == (14000, 0)
    assert await FinanceException.count() == 0


async def test_result_page_never_marks_paid_by_itself(live_app: LiveApp, stripe_worker):
    _company, customer, contact, (invoice,) = await _account(live_app, "80.00")
    live_app.webhooks_to_nowhere()  # Stripe's word never arrives
    async with _portal(live_app, customer, contact) as (http, csrf):
        answer, key = await _pay(http, csrf, live_app, [invoice], "4242424242424242")
        assert answer["status"] == "succeeded"  # Stripe took the money...
        done = await http.get(answer["next"])
    assert "Your payment is being confirmed" in done.text  # ...the page still waits
    assert 'hx-trigger="every 2s"' in done.text
    row = await _item(invoice.id)
    assert (row.open_minor, row.status) == (8000, "open")
    assert await Payment.count() == 0


async def test_three_d_secure_completes_after_authentication(live_app: LiveApp, stripe_worker):
    _company, customer, contact, (invoice,) = await _account(live_app, "42.00")
    async with _portal(live_app, customer, contact) as (http, csrf):
        answer, key = await _pay(http, csrf, live_app, [invoice], "4000002500003155")
        assert answer["status"] == "requires_action"
        secret = answer["client_secret"]
        op = await OnlinePayment.objects().get(OnlinePayment.key == key)
        assert op.status == "requires_action"
        # What confirmCardPayment does in the browser once the customer passes 3-D Secure.
        async with httpx.AsyncClient(base_url=live_app.emulator.api_base) as bank:
            done = await bank.post(
                f"/v1/payment_intents/{op.intent_id}/_authenticate?success=true",
                json={"key": "pk_test_relance", "client_secret": secret},
            )
            assert done.json()["status"] == "succeeded"

        async def paid():
            return (await _item(invoice.id)).status == ItemStatus.paid.value

        await wait_for(paid)


async def test_failed_authentication_ends_the_attempt(live_app: LiveApp):
    _company, customer, contact, (invoice,) = await _account(live_app, "42.00")
    async with _portal(live_app, customer, contact) as (http, csrf):
        answer, key = await _pay(http, csrf, live_app, [invoice], "4000002500003155")
        op = await OnlinePayment.objects().get(OnlinePayment.key == key)
        async with httpx.AsyncClient(base_url=live_app.emulator.api_base) as bank:
            await bank.post(
                f"/v1/payment_intents/{op.intent_id}/_authenticate?success=false",
                json={"key": "pk_test_relance", "client_secret": answer["client_secret"]},
            )
        ended = await http.post(
            "/p/pay/authentication", data={"key": key}, headers={"x-csrftoken": csrf}
        )
    assert ended.json()["status"] == "declined"
    assert "authentication" in ended.json()["message"]
    op = await OnlinePayment.objects().get(OnlinePayment.key == key)
    assert op.status == "failed"
    assert (await _item(invoice.id)).open_minor == 4200


async def test_declined_card_is_shown_and_nothing_is_paid(live_app: LiveApp, stripe_worker):
    _company, customer, contact, (a, b) = await _account(live_app, "10.00", "20.00")
    async with _portal(live_app, customer, contact) as (http, csrf):
        answer, key = await _pay(http, csrf, live_app, [a, b], "4000000000000341")
        assert answer["status"] == "declined"
        assert answer["message"] == "Your card was declined."

        async def linked():  # localstripe's payment_failed event finds the attempt by metadata
            op = await OnlinePayment.objects().get(OnlinePayment.key == key)
            return op if op.intent_id else None

        op = await wait_for(linked)
        assert op.status == "failed"
        # The customer can retry at once: a new attempt with another card.
        answer2, key2 = await _pay(http, csrf, live_app, [a, b], "4242424242424242")
        assert answer2["status"] == "succeeded" and key2 != key

        async def paid():
            return (await _item(b.id)).status == ItemStatus.paid.value

        await wait_for(paid)
    assert await Payment.count() == 1
    assert await FinanceException.count() == 0  # a decline before any money is not an exception


async def test_credit_note_is_offset(live_app: LiveApp, stripe_worker):
    _company, customer, contact, (invoice,) = await _account(live_app, "100.00")
    note = await make_item(customer, "30.00", kind=ItemKind.credit_note, due=TODAY)
    async with _portal(live_app, customer, contact) as (http, csrf):
        answer, key = await _pay(http, csrf, live_app, [invoice, note], "4242424242424242")

    async def settled():
        return (await _item(invoice.id)).open_minor == 0

    await wait_for(settled)
    op = await OnlinePayment.objects().get(OnlinePayment.key == key)
    assert op.amount_minor == 7000 and op.received_minor == 7000
    assert (await _item(note.id)).open_minor == 0
    offset = await Payment.objects().get(Payment.method == "other")
    assert offset.amount_minor == 3000 and offset.unapplied_minor == 0


async def test_selection_is_checked(live_app: LiveApp):
    company, customer, contact, (invoice,) = await _account(live_app, "100.00")
    note = await make_item(customer, "150.00", kind=ItemKind.credit_note, due=TODAY)
    dollars = await make_item(customer, "10.00", currency="USD")
    stranger = await make_item(await make_customer(company), "10.00")
    async with _portal(live_app, customer, contact) as (http, csrf):
        for ids, words in (
            ([], "select at least one invoice"),
            ([note.id], "credit notes are deducted"),
            ([invoice.id, note.id], "nothing to pay"),
            ([invoice.id, dollars.id], "one currency at a time"),
            ([stranger.id], "can no longer be paid online"),
        ):
            answer = await http.post(
                "/p/pay/start", data={"item": [str(i) for i in ids]}, headers={"x-csrftoken": csrf}
            )
            assert answer.status_code == 400 and words in answer.json()["error"], answer.text
        refused = await http.post("/p/pay/start", data={"item": [str(invoice.id)]})
        assert refused.status_code == 403  # no CSRF token
    assert await OnlinePayment.count() == 0


async def test_pay_page_loads_stripe_under_its_own_policy(live_app: LiveApp):
    _company, customer, contact, (invoice,) = await _account(live_app, "100.00")
    async with _portal(live_app, customer, contact) as (http, _csrf):
        page = await http.get("/p/pay")
    csp = page.headers["content-security-policy"]
    origin = live_app.emulator.api_base
    assert f"script-src 'self' {origin}" in csp and f"connect-src 'self' {origin}" in csp
    assert f'src="{origin}/js.stripe.com/v3/"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert f'value="{invoice.id}"' in page.text and "checked" in page.text  # overdue: selected
    async with _portal(live_app, customer, contact) as (http, _csrf):
        swapped = await http.get(
            "/p/pay", params={"item": [str(invoice.id)]}, headers={"HX-Request": "true"}
        )
    assert swapped.headers["hx-redirect"] == f"/p/pay?item={invoice.id}"


def test_card_only_is_said_the_way_each_api_understands_it():
    """Stripe's current API refuses `payment_method_types` (400 since 2026-09-30.endive);
    localstripe knows nothing else."""
    from receivables.payments.gateway import StripeGateway
    from receivables.settings import load_settings

    base = {"SECRET_KEY": "k" * 40, "STRIPE_SECRET_KEY": "sk_live_x"}
    keys = {**base, "STRIPE_PUBLISHABLE_KEY": "pk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    real = StripeGateway(load_settings(keys))
    emulated = StripeGateway(load_settings({**keys, "STRIPE_API_BASE": "http://127.0.0.1:8420"}))
    assert real._cards_only() == {"allowed_payment_method_types": ["card"]}
    assert emulated._cards_only() == {"payment_method_types": ["card"]}
