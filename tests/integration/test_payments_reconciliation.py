"""Payouts against their balance transactions, and the finance pages that show them.

localstripe makes real charges (with real balance transactions) and real payouts, and signs
the payout events itself; what it lacks is Stripe's list of the transactions a payout carries
(`GET /v1/balance_transactions?payout=...`). That one call is supplied here from real
localstripe objects: the payout names its transactions in its metadata.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta

from receivables.access.staff import create_user
from receivables.history import Actor
from receivables.payments import checkout, events
from receivables.payments.gateway import StripeGateway
from receivables.payments.tables import (
    FinanceException,
    OnlinePayment,
    PayoutTransaction,
    StripePayout,
)
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.stripe_emulator import LiveApp, card, plain, wait_for

TODAY = date.today()


class PayoutListing(StripeGateway):
    """The real gateway, plus the payout -> transactions listing localstripe does not have."""

    async def payout_transactions(self, payout_id: str) -> list[dict]:
        payout = await self.payout(payout_id)
        ids = [t for t in (payout.get("metadata") or {}).get("txns", "").split(",") if t]
        found = [plain(await self.client.v1.balance_transactions.retrieve_async(t)) for t in ids]
        own = {
            "id": payout["balance_transaction"],
            "type": "payout",
            "amount": -payout["amount"],
            "fee": 0,
            "net": -payout["amount"],
            "currency": payout["currency"],
            "source": payout_id,
        }
        return [*found, own]


async def _paid(live: LiveApp, *amounts: str) -> list[OnlinePayment]:
    company = await make_company()
    customer = await make_customer(company)
    await make_contact(customer)
    gateway = live.gateway
    done = []
    for n, amount in enumerate(amounts):
        item = await make_item(customer, amount, due=TODAY - timedelta(days=10 + n))
        started = await checkout.start(
            company_id=company.id,
            customer_id=customer.id,
            item_ids=[item.id],
            actor=Actor.system("test"),
            gateway=gateway,
            on=TODAY,
        )
        await checkout.confirm(
            customer_id=customer.id,
            key=started.key,
            payment_method=await card(live.stripe, "4242424242424242"),
            actor=Actor.system("test"),
            gateway=gateway,
            on=TODAY,
        )

        async def settled(key=started.key):
            await events.apply_all(gateway)  # the worker's step, once localstripe delivered
            op = await OnlinePayment.objects().get(OnlinePayment.key == key)
            return op if op.status == "succeeded" else None

        done.append(await wait_for(settled))
    return done


async def _payout(live: LiveApp, amount: int, payments: list[OnlinePayment]) -> StripePayout:
    created = await live.stripe.v1.payouts.create_async(
        {
            "amount": amount,
            "currency": "eur",
            "status": "paid",
            "metadata": {"txns": ",".join(p.balance_transaction_id for p in payments)},
        }
    )

    async def checked():
        await events.apply_all(live.gateway)
        row = await StripePayout.objects().get(StripePayout.payout_id == created.id)
        return row if row and row.checked_at else None

    return await wait_for(checked)


async def test_payouts_that_add_up_and_one_that_does_not(live_app: LiveApp):
    live_app.gateway = PayoutListing(live_app.settings)  # the worker steps below use it
    first, second, third = await _paid(live_app, "120.00", "30.50", "9.99")
    assert first.balance_transaction_id.startswith("txn_")

    good = await _payout(live_app, 15050, [first, second])
    assert good.balanced and good.transactions == 3
    assert good.transactions_net_minor == 15050
    linked = await OnlinePayment.select(OnlinePayment.id).where(OnlinePayment.payout == good.id)
    assert {r["id"] for r in linked} == {first.id, second.id}
    assert await PayoutTransaction.count().where(PayoutTransaction.payout == good.id) == 3
    assert await FinanceException.count() == 0

    bad = await _payout(live_app, 1099, [third])  # one euro more than it carries
    assert not bad.balanced
    flagged = await FinanceException.objects().get(FinanceException.kind == "payout_mismatch")
    assert flagged.payout == bad.id and flagged.amount_minor == 100
    assert "difference €1.00" in flagged.detail

    # Finance sees it all.
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
        payouts = await http.get("/backoffice/finance/payouts")
        assert "Adds up" in payouts.text and "Off by €1.00" in payouts.text
        detail = await http.get(f"/backoffice/finance/payouts/{good.id}")
        assert first.charge_id in detail.text
        listing = await http.get("/backoffice/finance")
        assert first.intent_id[:18] in listing.text and good.payout_id in listing.text
        exceptions = await http.get("/backoffice/finance/exceptions")
        assert "Payout mismatch" in exceptions.text
        csrf = re.search(r'name="_csrf_token" value="([^"]+)"', exceptions.text).group(1)
        resolved = await http.post(
            f"/backoffice/finance/exceptions/{flagged.id}/resolve",
            data={"_csrf_token": csrf, "note": "bank fee booked by hand"},
        )
        assert resolved.status_code == 303
        assert (await FinanceException.objects().get(FinanceException.id == flagged.id)).resolved_at
        export = await http.get(
            "/backoffice/finance/export",
            params={"format": "csv", "date_from": str(TODAY), "date_to": str(TODAY)},
        )
        assert export.status_code == 200
        text = export.content.decode("utf-8-sig")
        assert "120.00" in text and "30.50" in text and good.payout_id in text
        # The workbook, read back: written to a temporary file in a thread, streamed, removed.
        import glob
        import io
        import tempfile

        from openpyxl import load_workbook

        book = await http.get(
            "/backoffice/finance/export",
            params={"format": "xlsx", "date_from": str(TODAY), "date_to": str(TODAY)},
        )
        assert book.status_code == 200
        assert 'filename="payments-' in book.headers["content-disposition"]
        sheet = load_workbook(io.BytesIO(book.content)).active
        cells = [str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None]
        assert good.payout_id in cells and any(c.startswith("120") for c in cells)
        for _ in range(50):  # removed by a background task once the body is sent
            if not glob.glob(f"{tempfile.gettempdir()}/relance-export-*"):
                break
            await asyncio.sleep(0.1)
        assert not glob.glob(f"{tempfile.gettempdir()}/relance-export-*")
