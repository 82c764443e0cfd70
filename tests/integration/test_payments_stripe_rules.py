"""Stripe's own rules on the card path, against localstripe: each currency's amount as Stripe
receives it (read back from the PaymentIntent), its minimum and maximum refused before any
call with what to do instead, and attempts settled by Stripe, not by a clock (a webhook
outage of two hours cannot charge an invoice twice; an abandoned 3-D Secure step is shown to
the customer, canceled at Stripe, and listed for finance)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta

import httpx

from receivables import clock
from receivables.access.portal_links import issue_link
from receivables.access.staff import create_user
from receivables.history import Actor, HistoryEvent
from receivables.ledger.tables import Item
from receivables.payments import checkout
from receivables.payments.tables import OnlinePayment
from receivables.worker import JOBS
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.stripe_emulator import LiveApp, card, plain

TODAY = date.today()
CLERK = Actor.system("test clerk")

# Invoice amount -> the integer Stripe must receive (its unit, not CLDR's minor unit).
SPECIAL = {
    "HUF": ("10000", 1_000_000),  # two-decimal to Stripe, 0 digits in CLDR
    "IDR": ("150000", 15_000_000),  # likewise
    "ISK": ("5000", 500_000),  # two-decimal to Stripe, a multiple of 100
    "TWD": ("1000.50", 100_050),  # two-decimal charges (zero-decimal payouts only)
    "JPY": ("5000", 5_000),  # zero-decimal
    "UGX": ("50000", 50_000),  # on Stripe's zero-decimal list
    "KWD": ("12.340", 12_340),  # three-decimal, last digit 0
    "EUR": ("12.34", 1_234),
}


async def _account(amount: str, currency: str = "EUR", due_days: int = 20):
    company = await make_company(currency=currency)
    customer = await make_customer(company)
    contact = await make_contact(customer)
    item = await make_item(customer, amount, due=TODAY - timedelta(days=due_days))
    return company, customer, contact, item


@asynccontextmanager
async def _portal(live: LiveApp, customer, contact) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    issued = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=live.settings.secret_key,
        base_url=live.url,
        days=30,
        issued_by="test",
    )
    async with live.http() as http:
        assert (await http.get(issued.url.removeprefix(live.url))).status_code == 303
        page = await http.get("/p/pay")
        csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
        yield http, csrf


async def _charge(live: LiveApp, company, customer, items, number: str) -> OnlinePayment:
    """What the portal does: start, the card set up (confirmCardSetup), confirm."""
    gateway = live.gateway
    started = await checkout.start(
        company_id=company.id,
        customer_id=customer.id,
        item_ids=[i.id for i in items],
        actor=CLERK,
        gateway=gateway,
        on=TODAY,
    )
    seti = started.setup_client_secret.split("_secret_")[0]
    method = await card(live.stripe, number)
    setup = await live.stripe.v1.setup_intents.confirm_async(seti, {"payment_method": method})
    if setup.status == "requires_action":
        await live.stripe.v1.setup_intents.confirm_async(seti)
    await checkout.confirm(
        customer_id=customer.id,
        key=started.key,
        payment_method=method,
        actor=CLERK,
        gateway=gateway,
        on=TODAY,
    )
    return await OnlinePayment.objects().get(OnlinePayment.key == started.key)


async def _intent(live: LiveApp, intent_id: str) -> dict:
    return plain(await live.stripe.v1.payment_intents.retrieve_async(intent_id))


async def test_each_currency_reaches_stripe_in_its_unit(live_app: LiveApp):
    live_app.webhooks_to_nowhere()
    received = {}
    for currency, (amount, _expected) in SPECIAL.items():
        company, customer, _contact, item = await _account(amount, currency)
        op = await _charge(live_app, company, customer, [item], "4242424242424242")
        intent = await _intent(live_app, op.intent_id)
        assert intent["currency"] == currency.lower()
        received[currency] = intent["amount"]
    assert received == {currency: expected for currency, (_, expected) in SPECIAL.items()}


OUTSIDE = [  # (invoice, currency, what the customer is told)
    ("0.40", "EUR", ["0.50", "Add more invoices", "bank transfer"]),
    ("0.29", "GBP", ["0.30", "Add more invoices", "bank transfer"]),
    ("49", "JPY", ["50", "Add more invoices", "bank transfer"]),
    ("1000000.00", "EUR", ["999,999.99", "Pay fewer invoices", "bank transfer"]),
    ("100000000", "JPY", ["99,999,999", "Pay fewer invoices", "bank transfer"]),
    ("1000000", "HUF", ["999,999", "Pay fewer invoices", "bank transfer"]),
]


async def test_amounts_outside_stripe_limits_are_refused_before_stripe(live_app: LiveApp):
    for amount, currency, words in OUTSIDE:
        _company, customer, contact, item = await _account(amount, currency)
        async with _portal(live_app, customer, contact) as (http, csrf):
            refused = await http.post(
                "/p/pay/start", data={"item": [str(item.id)]}, headers={"x-csrftoken": csrf}
            )
            assert refused.status_code == 400, (amount, currency)
            message = refused.json()["error"]
            for word in words:
                assert word in message, message
            assert await OnlinePayment.count() == 0  # nothing stored, nothing sent to Stripe
            page = await http.get("/p/pay")  # no lockout: still offered
            assert f'value="{item.id}"' in page.text


async def test_a_webhook_outage_of_two_hours_cannot_charge_an_invoice_twice(
    live_app: LiveApp, monkeypatch
):
    live_app.webhooks_to_nowhere()  # the endpoint is unreachable: no event arrives
    since = int(time.time()) - 1  # the session's emulator holds earlier tests' intents too
    company, customer, contact, item = await _account("240.00")
    op = await _charge(live_app, company, customer, [item], "4242424242424242")
    assert (await _intent(live_app, op.intent_id))["status"] == "succeeded"
    assert op.status == "started"  # nothing told us yet
    other = await make_customer(company)  # another customer, who never comes back
    other_item = await make_item(other, "60.00", due=TODAY - timedelta(days=5))
    other_op = await _charge(live_app, company, other, [other_item], "4242424242424242")
    job = next(j for j in JOBS if j.name == "quiet_attempts")
    await job.run(live_app.settings)  # within the window: Stripe is not asked yet
    assert (await OnlinePayment.objects().get(OnlinePayment.id == other_op.id)).status == "started"
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(hours=2))
    await job.run(live_app.settings)  # the worker asks Stripe about quiet attempts
    assert (await Item.objects().get(Item.id == other_item.id)).status == "paid"
    assert (await OnlinePayment.objects().get(OnlinePayment.id == op.id)).status == "succeeded"

    async with _portal(live_app, customer, contact) as (http, csrf):
        # Opening the page read the quiet attempt from Stripe: paid, not released.
        page = await http.get("/p/pay")
        assert f'value="{item.id}"' not in page.text
        again = await http.post(
            "/p/pay/start", data={"item": [str(item.id)]}, headers={"x-csrftoken": csrf}
        )
        assert again.status_code == 400 and "can no longer be paid" in again.json()["error"]
    row = await Item.objects().get(Item.id == item.id)
    assert (row.open_minor, row.status) == (0, "paid")
    op = await OnlinePayment.objects().get(OnlinePayment.id == op.id)
    assert op.status == "succeeded" and op.received_minor == 24000
    listed = await live_app.stripe.v1.payment_intents.list_async({"limit": 100})
    ours = [
        i
        async for i in listed.auto_paging_iter()
        if i.created >= since
        and (plain(i).get("metadata") or {}).get("relance_customer") == customer.ref
    ]
    assert [i.status for i in ours] == ["succeeded"]  # one intent, charged once


async def test_an_abandoned_3d_secure_step_is_shown_canceled_at_stripe_and_released(
    live_app: LiveApp,
):
    live_app.webhooks_to_nowhere()
    company, customer, contact, item = await _account("75.00")
    op = await _charge(live_app, company, customer, [item], "4000002500003155")
    assert op.status == "requires_action"
    assert [s.key for s in await checkout.stuck([company.id])] == [op.key]  # finance sees it

    async with _portal(live_app, customer, contact) as (http, csrf):
        page = await http.get("/p/pay")
        assert "waiting for your bank's confirmation" in page.text
        assert f'value="{item.id}"' not in page.text  # not payable twice meanwhile
        result = await http.get(f"/p/pay/done/{op.key}")  # the result page says so too
        assert "waiting for your bank's confirmation" in result.text
        assert "Finish or cancel it" in result.text
        finish = await http.post(
            "/p/pay/finish", data={"key": op.key}, headers={"x-csrftoken": csrf}
        )
        assert finish.json()["status"] == "requires_action" and finish.json()["client_secret"]
        canceled = await http.post(
            "/p/pay/cancel", data={"key": op.key, "_csrf_token": csrf}, follow_redirects=False
        )
        assert canceled.status_code == 303 and canceled.headers["location"].endswith("canceled")
        page = await http.get(canceled.headers["location"])
        assert "its invoices can be paid again" in page.text
        assert f'value="{item.id}"' in page.text
    assert (await _intent(live_app, op.intent_id))["status"] == "canceled"
    op = await OnlinePayment.objects().get(OnlinePayment.id == op.id)
    assert op.status == "canceled"
    assert await checkout.stuck([company.id]) == []
    kinds = [e["kind"] for e in await HistoryEvent.select(HistoryEvent.kind)]
    assert "payment.card_canceled" in kinds

    # Abandoned again: finance sees it, with its age and state, and cancels it at Stripe.
    again = await _charge(live_app, company, customer, [item], "4000002500003155")
    assert again.status == "requires_action"
    await create_user("fin@seller.example", "Fin Ance", "finance", "long enough password")
    async with live_app.http() as http:
        page = await http.get("/backoffice/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
        await http.post(
            "/backoffice/login",
            data={
                "email": "fin@seller.example",
                "password": "long enough password",
                "_csrf_token": token,
            },
        )
        listing = await http.get("/backoffice/finance/attempts")
        assert listing.status_code == 200
        assert again.intent_id in listing.text and "0 min" in listing.text
        assert "Waiting for the bank" in listing.text and "€75.00" in listing.text
        csrf = re.search(r'name="_csrf_token" value="([^"]+)"', listing.text).group(1)
        canceled = await http.post(
            f"/backoffice/finance/attempts/{again.id}/cancel", data={"_csrf_token": csrf}
        )
        assert canceled.status_code == 303
        after = await http.get("/backoffice/finance/attempts")
        assert "Canceled at Stripe" in after.text and again.intent_id not in after.text
    assert (await _intent(live_app, again.intent_id))["status"] == "canceled"
    assert (await Item.objects().get(Item.id == item.id)).status == "open"
