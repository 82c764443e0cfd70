"""/webhooks/stripe and the worker's apply step: signatures, events stored once and applied
once (also concurrently), injected failures rolled back alone and retried, out-of-order
events, processing then failed, refunds and disputes.

A delivery only stores the event; each test then runs the worker's apply step
(`events.apply_due`) where the webhook used to apply it at once. localstripe makes the
payments; events it does not emit are made here as real events signed with the webhook
secret. Tests that deliver events themselves point localstripe's own deliveries elsewhere
(`webhooks_to_nowhere`), so only the deliveries under test arrive.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from receivables.history import Actor, HistoryEvent
from receivables.ledger.allocations import allocate
from receivables.ledger.tables import Allocation, Item, ItemStatus, Payment
from receivables.money import Money
from receivables.payments import checkout, events, settlement
from receivables.payments.tables import (
    FinanceException,
    OnlinePayment,
    StripeDispute,
    StripeEvent,
)
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.stripe_emulator import (
    LiveApp,
    card,
    plain,
    sepa,
    sign,
    signed_event,
    wait_for,
)

TODAY = date.today()
CLERK = Actor.system("test clerk")


async def _invoices(*amounts: str):
    company = await make_company()
    customer = await make_customer(company)
    await make_contact(customer)
    items = [
        await make_item(customer, a, due=TODAY - timedelta(days=60 - 10 * n))
        for n, a in enumerate(amounts)
    ]
    return company, customer, items


async def _attempt(live: LiveApp, company, customer, items, method: str) -> OnlinePayment:
    """Start and confirm an attempt the way the portal does; returns it as stored."""
    gateway = live.gateway
    started = await checkout.start(
        company_id=company.id,
        customer_id=customer.id,
        item_ids=[i.id for i in items],
        actor=CLERK,
        gateway=gateway,
        on=TODAY,
    )
    await checkout.confirm(
        customer_id=customer.id,
        key=started.key,
        payment_method=method,
        actor=CLERK,
        gateway=gateway,
        on=TODAY,
    )
    return await OnlinePayment.objects().get(OnlinePayment.key == started.key)


async def _apply(live: LiveApp, *, now: datetime | None = None) -> events.Applied:
    """The worker's apply step (what the `stripe_events` job runs), with the app's gateway."""
    return await events.apply_all(live.gateway, now=now)


async def _stored(payload: bytes) -> StripeEvent:
    """This delivery's event as stored (by its id: localstripe may still be delivering an
    earlier test's events, which the apply step applies too)."""
    return await StripeEvent.objects().get(StripeEvent.event_id == json.loads(payload)["id"])


async def _delivered(live: LiveApp, payload: bytes, header: str) -> StripeEvent:
    """Deliver an event (stored, answered 200), apply what is due; the event afterwards."""
    answer = await live.deliver(payload, header)
    assert answer.status_code == 200 and answer.json()["result"] == "stored", answer.text
    await _apply(live)
    return await _stored(payload)


async def _intent(live: LiveApp, intent_id: str) -> dict:
    return plain(await live.stripe.v1.payment_intents.retrieve_async(intent_id))


async def _open(item) -> tuple[int, str]:
    row = await Item.objects().get(Item.id == item.id)
    return row.open_minor, row.status


async def _counts(payload: bytes) -> dict[str, int]:
    """Rows written so far; events counted by this delivery's id (localstripe may still be
    delivering an earlier test's events to the live app)."""
    return {
        "events": await StripeEvent.count().where(
            StripeEvent.event_id == json.loads(payload)["id"]
        ),
        "payments": await Payment.count(),
        "allocations": await Allocation.count(),
        "history": await HistoryEvent.count(),
        "exceptions": await FinanceException.count(),
    }


# ------------------------------------------------------------------ signatures


async def test_unsigned_tampered_stale_and_replayed_events_are_refused(live_app: LiveApp):
    live_app.webhooks_to_nowhere()
    company, customer, (invoice,) = await _invoices("90.00")
    op = await _attempt(
        live_app, company, customer, [invoice], await card(live_app.stripe, "4242424242424242")
    )
    intent = await _intent(live_app, op.intent_id)
    payload, good = live_app.event("payment_intent.succeeded", intent)
    before = await _counts(payload)
    now = int(time.time())
    tampered = payload.replace(b'"amount": 9000', b'"amount": 1')
    assert tampered != payload
    old = sign(payload, live_app.secret, now - 3600)  # a genuine delivery of an hour ago
    old_mac = old.split("v1=")[1]
    cases = {
        "unsigned": (payload, None),
        "wrong secret": (payload, sign(payload, "whsec_not_ours")),
        "tampered": (tampered, good),
        "stale": (payload, sign(payload, live_app.secret, now - 310)),
        "garbage header": (payload, "t=abc,v1=zz"),
        # The SDK reads the header as Stripe writes it: no whitespace around elements...
        "whitespace": (payload, good.replace(",", " , ")),
        # ...and a replay of the old one with a fresh t= added, in front or behind.
        "replay, fresh t first": (payload, f"v0=x, t={now},{old}"),
        "replay, fresh t last": (payload, f"{old}, t={now}"),
        "replay, fresh t, no space": (payload, f"t={now},t={now - 3600},v1={old_mac}"),
    }
    for name, (body, header) in cases.items():
        answer = await live_app.deliver(body, header)
        assert answer.status_code == 400, name
    assert await _counts(payload) == before  # nothing written, not even the event
    assert await _open(invoice) == (9000, "open")
    accepted = await live_app.deliver(payload, good)
    assert accepted.status_code == 200 and accepted.json()["result"] == "stored"
    await _apply(live_app)
    assert (await _stored(payload)).status == "processed"
    assert await _open(invoice) == (0, "paid")


# ------------------------------------------------------------------ once only


async def test_the_same_event_twice_applies_once(live_app: LiveApp):
    live_app.webhooks_to_nowhere()
    company, customer, (a, b) = await _invoices("100.00", "50.00")
    op = await _attempt(
        live_app, company, customer, [a, b], await card(live_app.stripe, "4242424242424242")
    )
    payload, header = live_app.event(
        "payment_intent.succeeded", await _intent(live_app, op.intent_id)
    )
    first = await live_app.deliver(payload, header)
    second = await live_app.deliver(payload, header)
    assert (first.json()["result"], second.json()["result"]) == ("stored", "duplicate")
    await _apply(live_app)
    event = await _stored(payload)
    assert (event.status, event.attempts) == ("processed", 1)
    assert await Payment.count() == 1 and await Allocation.count() == 2
    assert await _open(a) == (0, "paid") and await _open(b) == (0, "paid")
    # Delivered again once applied: answered, nothing stored or applied again.
    third = await live_app.deliver(payload, header)
    assert third.json()["result"] == "duplicate"
    await _apply(live_app)
    # Another event about the same payment (Stripe sends several) changes nothing either.
    other = live_app.event("payment_intent.succeeded", await _intent(live_app, op.intent_id))
    assert (await _delivered(live_app, *other)).status == "processed"
    assert await Payment.count() == 1 and await Allocation.count() == 2
    event = await _stored(payload)
    assert event.attempts == 1 and event.status == "processed"  # taken once, applied once


async def test_the_same_event_delivered_concurrently_applies_once(live_app: LiveApp):
    live_app.webhooks_to_nowhere()
    company, customer, items = await _invoices("100.00", "50.00", "25.00")
    op = await _attempt(
        live_app, company, customer, items, await card(live_app.stripe, "4242424242424242")
    )
    intent = await _intent(live_app, op.intent_id)
    payload, header = live_app.event("payment_intent.succeeded", intent)
    other = live_app.event("payment_intent.succeeded", intent)  # a second id, same payment
    answers = await asyncio.gather(
        *[live_app.deliver(payload, header) for _ in range(4)], live_app.deliver(*other)
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    results = sorted(a.json()["result"] for a in answers[:4])
    assert results == ["duplicate", "duplicate", "duplicate", "stored"]
    assert answers[4].json()["result"] == "stored"
    # Workers race too: two batches, and two `process` calls that take the event even when
    # a batch holds it (as a worker whose claim ran out would).
    gateway = live_app.gateway
    event_id = json.loads(payload)["id"]
    outcomes = await asyncio.gather(
        events.apply_due(gateway),
        events.apply_due(gateway),
        events.process(event_id, gateway),
        events.process(event_id, gateway),
    )
    batches, singles = outcomes[:2], outcomes[2:]
    ours = {event_id, json.loads(other[0])["id"]}
    assert not ours & {e for b in batches for e in b.errors}, [b.errors for b in batches]
    assert {o.result for o in singles} <= {"processed", "duplicate"}
    stored = await StripeEvent.objects().where(StripeEvent.object_id == op.intent_id)
    assert sorted(e.status for e in stored) == ["processed", "processed"]
    assert await Payment.count() == 1
    assert await Allocation.count() == 3
    assert sum(r["amount_minor"] for r in await Allocation.select(Allocation.amount_minor)) == 17500
    received = await HistoryEvent.count().where(HistoryEvent.kind == "payment.received")
    assert received == 1


# ------------------------------------------------------------------ failures


async def test_a_failure_while_applying_leaves_nothing_and_the_retry_succeeds(
    live_app: LiveApp, monkeypatch
):
    live_app.webhooks_to_nowhere()
    company, customer, (a, b) = await _invoices("100.00", "50.00")
    op = await _attempt(
        live_app, company, customer, [a, b], await card(live_app.stripe, "4242424242424242")
    )
    payload, header = live_app.event(
        "payment_intent.succeeded", await _intent(live_app, op.intent_id)
    )
    before = await _counts(payload)

    calls = []
    real = settlement._allocate

    async def allocate_then_break(*args, **kwargs):
        calls.append(args)
        await real(*args, **kwargs)  # both allocations are written, then the database "fails"
        assert await Allocation.count() == before["allocations"] + 2
        raise RuntimeError("injected failure after the allocations")

    monkeypatch.setattr(settlement, "_allocate", allocate_then_break)
    event = await _delivered(live_app, payload, header)
    assert len(calls) == 1
    after = await _counts(payload)
    assert after == {**before, "events": before["events"] + 1}  # only the event is kept
    assert event.status == "failed" and event.attempts == 1
    assert "injected failure" in event.last_error
    assert await _open(a) == (10000, "open") and await _open(b) == (5000, "open")
    assert (await OnlinePayment.objects().get(OnlinePayment.id == op.id)).status == "started"
    # Retried after its backoff, not before; a redelivery meanwhile changes nothing.
    assert event.next_attempt_at > datetime.now(UTC) + timedelta(seconds=20)
    await _apply(live_app)
    assert (await live_app.deliver(payload, header)).json()["result"] == "duplicate"
    assert (await _stored(payload)).attempts == 1 and len(calls) == 1

    monkeypatch.setattr(settlement, "_allocate", real)
    await _apply(live_app, now=event.next_attempt_at)  # the retry
    event = await _stored(payload)
    assert event.status == "processed" and event.attempts == 2 and event.last_error == ""
    assert await _open(a) == (0, "paid") and await _open(b) == (0, "paid")
    assert await Payment.count() == 1 and await Allocation.count() == 2


async def test_a_failing_event_is_rolled_back_alone_and_the_batch_goes_on(
    live_app: LiveApp, monkeypatch
):
    live_app.webhooks_to_nowhere()
    company, first, (a,) = await _invoices("100.00")
    second = await make_customer(company)
    b = await make_item(second, "70.00", due=TODAY - timedelta(days=30))
    method = await card(live_app.stripe, "4242424242424242")
    op_a = await _attempt(live_app, company, first, [a], method)
    op_b = await _attempt(
        live_app, company, second, [b], await card(live_app.stripe, "4242424242424242")
    )
    deliveries = [
        live_app.event("payment_intent.succeeded", await _intent(live_app, op.intent_id))
        for op in (op_a, op_b)
    ]
    for payload, header in deliveries:
        assert (await live_app.deliver(payload, header)).json()["result"] == "stored"

    real = settlement._allocate

    async def refuse_a(customer_id, payment_id, ref, currency, plan):
        if any(line.item.id == a.id for line, _ in plan):
            raise RuntimeError("injected failure on a")
        return await real(customer_id, payment_id, ref, currency, plan)

    monkeypatch.setattr(settlement, "_allocate", refuse_a)
    await _apply(live_app)  # both in one batch
    failed, applied = [await _stored(payload) for payload, _ in deliveries]
    assert failed.status == "failed" and "injected failure on a" in failed.last_error
    assert applied.status == "processed"
    assert await _open(a) == (10000, "open") and await _open(b) == (0, "paid")
    assert await Payment.count() == 1  # a's payment went with its savepoint
    assert (await OnlinePayment.objects().get(OnlinePayment.id == op_a.id)).status == "started"

    monkeypatch.setattr(settlement, "_allocate", real)
    await _apply(live_app, now=failed.next_attempt_at)
    assert (await _stored(deliveries[0][0])).status == "processed"
    assert await _open(a) == (0, "paid") and await Payment.count() == 2


class _CountingGateway:
    """The app's gateway, counting the PaymentIntents re-read from Stripe."""

    def __init__(self, real):
        self.real = real
        self.reads: list[str] = []

    async def payment_intent(self, intent_id: str) -> dict:
        self.reads.append(intent_id)
        return await self.real.payment_intent(intent_id)


async def test_a_final_intent_applies_from_its_signed_event_others_are_read_again(
    live_app: LiveApp,
):
    live_app.webhooks_to_nowhere()
    company, customer, (a, b) = await _invoices("100.00", "50.00")
    real = live_app.gateway
    gateway = _CountingGateway(real)
    paid = await _attempt(
        live_app, company, customer, [a], await card(live_app.stripe, "4242424242424242")
    )
    # As the bench sends it: succeeded, its charge and balance transaction expanded.
    signed = await real.payment_intent(paid.intent_id)
    assert signed["status"] == "succeeded"
    payload, header = live_app.event("payment_intent.succeeded", signed)
    assert (await live_app.deliver(payload, header)).json()["result"] == "stored"
    # Stripe's own events name the charge only: the fee and net must be read.
    bare = {**signed, "latest_charge": signed["latest_charge"]["id"]}
    other = live_app.event("payment_intent.succeeded", bare)
    assert (await live_app.deliver(*other)).json()["result"] == "stored"
    await events.apply_all(gateway)  # type: ignore[arg-type]
    assert gateway.reads == [paid.intent_id]  # the second event only
    assert (await _stored(payload)).status == (await _stored(other[0])).status == "processed"
    op = await OnlinePayment.objects().get(OnlinePayment.id == paid.id)
    assert op.status == "succeeded" and op.net_minor == 10000 and op.balance_transaction_id
    assert await _open(a) == (0, "paid") and await _open(b) == (5000, "open")


class _StuckGateway:
    """A Stripe that does not answer: the worker is stopped while it waits."""

    def __init__(self):
        self.reading = asyncio.Event()

    async def payment_intent(self, intent_id: str) -> dict:
        self.reading.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")


async def test_a_worker_stopped_in_the_middle_of_a_batch_gives_its_claim_back(
    live_app: LiveApp,
):
    live_app.webhooks_to_nowhere()
    intent = {"id": "pi_stuck", "object": "payment_intent", "status": "processing"}
    payload, header = live_app.event("payment_intent.processing", intent)
    assert (await live_app.deliver(payload, header)).json()["result"] == "stored"
    gateway = _StuckGateway()
    worker = asyncio.create_task(events.apply_due(gateway))  # type: ignore[arg-type]
    await asyncio.wait_for(gateway.reading.wait(), 10)
    taken = await _stored(payload)
    assert taken.attempts == 1  # claimed: other workers keep off it meanwhile
    assert taken.next_attempt_at > datetime.now(UTC) + timedelta(minutes=5)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    back = await _stored(payload)
    assert (back.status, back.attempts) == ("received", 0)
    assert back.next_attempt_at <= datetime.now(UTC)  # due again at once


async def test_an_error_reading_stripe_is_recorded_and_retried(live_app: LiveApp):
    live_app.webhooks_to_nowhere()
    payload, header = live_app.event(
        "payment_intent.succeeded", {"id": "pi_does_not_exist", "object": "payment_intent"}
    )
    event = await _delivered(live_app, payload, header)
    assert event.status == "failed" and "InvalidRequestError" in event.last_error
    assert event.attempts == 1 and event.next_attempt_at > datetime.now(UTC)


async def test_unknown_event_types_are_stored_and_ignored(live_app: LiveApp):
    payload, header = live_app.event("customer.created", {"id": "cus_1", "object": "customer"})
    answer = await live_app.deliver(payload, header)
    assert answer.json()["result"] == "ignored"
    stored = await StripeEvent.objects().get(StripeEvent.event_id == json.loads(payload)["id"])
    assert stored.status == "ignored"
    assert (await live_app.deliver(payload, header)).json()["result"] == "duplicate"
    await _apply(live_app)
    stored = await _stored(payload)
    assert (stored.status, stored.attempts) == ("ignored", 0)  # never the worker's business


# ------------------------------------------------------------------ processing, then failed


async def test_processing_then_failed_leaves_the_items_open(live_app: LiveApp):
    company, customer, (a, b) = await _invoices("100.00", "50.00")
    await Item.update({Item.status: ItemStatus.promised.value}).where(Item.id == b.id)
    # A SEPA debit: localstripe keeps it processing for 0.5 s, then fails it and sends
    # payment_intent.payment_failed itself. It never sends payment_intent.processing.
    method = await sepa(live_app.stripe, "DE62370400440532013001")
    op = await _attempt(live_app, company, customer, [a, b], method)
    intent = await _intent(live_app, op.intent_id)
    assert intent["status"] == "processing"
    processing = live_app.event("payment_intent.processing", intent)
    assert (await _delivered(live_app, *processing)).status == "processed"
    assert await _open(a) == (10000, "payment_in_progress")
    assert await _open(b) == (5000, "payment_in_progress")

    async def failed():
        await _apply(live_app)  # localstripe's own payment_failed, once it has arrived
        row = await OnlinePayment.objects().get(OnlinePayment.id == op.id)
        return row if row.status == "failed" else None

    row = await wait_for(failed)
    assert await _open(a) == (10000, "open")
    assert await _open(b) == (5000, "promised")  # its own status back, not just "open"
    assert await Payment.count() == 0 and await Allocation.count() == 0
    assert row.failure_message
    flagged = await FinanceException.objects().get(FinanceException.kind == "failed")
    assert flagged.online_payment == op.id and flagged.resolved_at is None


async def test_processing_then_succeeded_pays_the_items(live_app: LiveApp):
    company, customer, (a,) = await _invoices("100.00")
    method = await sepa(live_app.stripe, "FR1420041010050500013M02606")
    op = await _attempt(live_app, company, customer, [a], method)
    await _delivered(
        live_app,
        *live_app.event("payment_intent.processing", await _intent(live_app, op.intent_id)),
    )

    async def paid():
        await _apply(live_app)  # localstripe's own payment_intent.succeeded
        return await _open(a) == (0, "paid")

    await wait_for(paid)


# ------------------------------------------------------------------ refunds and disputes


async def _paid(live: LiveApp, *amounts: str):
    live.webhooks_to_nowhere()
    company, customer, items = await _invoices(*amounts)
    op = await _attempt(live, company, customer, items, await card(live.stripe, "4242424242424242"))
    await _delivered(
        live, *live.event("payment_intent.succeeded", await _intent(live, op.intent_id))
    )
    assert all([await _open(i) == (0, "paid") for i in items])
    return await OnlinePayment.objects().get(OnlinePayment.id == op.id), items


async def test_a_refund_reopens_the_items(live_app: LiveApp):
    op, (a, b) = await _paid(live_app, "100.00", "50.00")
    refund = await live_app.stripe.v1.refunds.create_async({"payment_intent": op.intent_id})
    refunded = await _delivered(live_app, *live_app.event("refund.created", plain(refund)))
    assert refunded.status == "processed"
    assert await _open(a) == (10000, "open") and await _open(b) == (5000, "open")
    payment = await Payment.objects().get(Payment.id == op.payment)
    assert (payment.amount_minor, payment.unapplied_minor) == (0, 0)  # nothing left as credit
    assert await Allocation.count().where(Allocation.reversed_at.is_null()) == 0
    op = await OnlinePayment.objects().get(OnlinePayment.id == op.id)
    assert op.refunded_minor == 15000
    # The same refund announced again (refund.updated) changes nothing.
    again = await _delivered(live_app, *live_app.event("refund.updated", plain(refund)))
    assert again.status == "processed"
    assert await _open(a) == (10000, "open") and await _open(b) == (5000, "open")


async def test_a_partial_refund_reopens_the_newest_item_first(live_app: LiveApp):
    op, (older, newer) = await _paid(live_app, "100.00", "50.00")
    refund = await live_app.stripe.v1.refunds.create_async(
        {"payment_intent": op.intent_id, "amount": 3000}
    )
    await _delivered(live_app, *live_app.event("refund.created", plain(refund)))
    assert await _open(older) == (0, "paid")
    assert await _open(newer) == (3000, "open")
    payment = await Payment.objects().get(Payment.id == op.payment)
    assert (payment.amount_minor, payment.unapplied_minor) == (12000, 0)


async def test_a_refund_event_before_the_success_event_is_harmless(live_app: LiveApp):
    live_app.webhooks_to_nowhere()
    company, customer, (a, b) = await _invoices("100.00", "50.00")
    op = await _attempt(
        live_app, company, customer, [a, b], await card(live_app.stripe, "4242424242424242")
    )
    success = live_app.event("payment_intent.succeeded", await _intent(live_app, op.intent_id))
    refund = await live_app.stripe.v1.refunds.create_async(
        {"payment_intent": op.intent_id, "amount": 5000}
    )
    await _delivered(
        live_app,
        *live_app.event(
            "charge.refunded", {"id": "ch_x", "object": "charge", "payment_intent": op.intent_id}
        ),
    )
    await _delivered(live_app, *live_app.event("refund.created", plain(refund)))
    await _delivered(live_app, *success)  # late
    assert await _open(a) == (0, "paid") and await _open(b) == (5000, "open")
    assert await Payment.count() == 1


async def test_disputes_are_read_from_stripe_whatever_order_their_events_arrive_in(
    live_app: LiveApp,
):
    """Each dispute event re-reads the dispute (`Dispute.retrieve`). localstripe has no
    Dispute API: the emulator answers that one call from what the test stores as Stripe's
    state (`Emulator.put_dispute`, tests/stripe_emulator.py)."""
    op, (a, b) = await _paid(live_app, "100.00", "50.00")
    intent = await _intent(live_app, op.intent_id)
    dispute = {
        "id": "dp_" + secrets.token_hex(6),
        "object": "dispute",
        "amount": 15000,
        "currency": "eur",
        "charge": intent["latest_charge"]["id"],
        "payment_intent": op.intent_id,
        "reason": "fraudulent",
        "status": "needs_response",
    }
    live_app.emulator.put_dispute(dispute)
    await _delivered(live_app, *live_app.event("charge.dispute.created", dispute))
    flagged = await FinanceException.objects().get(FinanceException.kind == "disputed")
    assert "fraudulent" in flagged.detail
    assert await _open(a) == (0, "paid")  # disputed is not lost

    # Lost at Stripe; its two last events stamped the same second, delivered out of order.
    live_app.emulator.put_dispute({**dispute, "status": "lost"})
    second = int(time.time())
    closed = signed_event(
        "charge.dispute.closed", {**dispute, "status": "lost"}, live_app.secret, created=second
    )
    updated = signed_event(
        "charge.dispute.updated",
        {**dispute, "status": "under_review"},
        live_app.secret,
        created=second,
    )
    await _delivered(live_app, *closed)
    await _delivered(live_app, *updated)  # the older state, arriving last
    assert (await StripeDispute.objects().first()).status == "lost"
    assert await _open(a) == (10000, "open") and await _open(b) == (5000, "open")
    lost = await HistoryEvent.count().where(HistoryEvent.kind == "payment.dispute_lost")
    assert lost == 1

    # Another payment's dispute is won: filed as won, its exception closed, money kept.
    op2, (c,) = await _paid(live_app, "80.00")
    intent2 = await _intent(live_app, op2.intent_id)
    won = {
        **dispute,
        "id": "dp_" + secrets.token_hex(6),
        "amount": 8000,
        "charge": intent2["latest_charge"]["id"],
        "payment_intent": op2.intent_id,
        "reason": "product_not_received",
    }
    live_app.emulator.put_dispute(won)
    await _delivered(live_app, *live_app.event("charge.dispute.created", won))
    live_app.emulator.put_dispute({**won, "status": "won"})
    await _delivered(live_app, *live_app.event("charge.dispute.closed", {**won, "status": "won"}))
    late = live_app.event("charge.dispute.updated", {**won, "status": "under_review"})
    await _delivered(live_app, *late)
    row = await StripeDispute.objects().get(StripeDispute.dispute_id == won["id"])
    assert row.status == "won"
    assert await _open(c) == (0, "paid")
    assert await HistoryEvent.count().where(HistoryEvent.kind == "payment.dispute_won") == 1
    exception = await FinanceException.objects().get(FinanceException.detail.like(f"%{won['id']}%"))
    assert exception.resolved_at is not None and "won" in exception.resolution
    assert await FinanceException.count().where(FinanceException.kind == "refund_failed") == 0


# ------------------------------------------------------------------ exceptions


async def test_paid_another_way_meanwhile_and_the_excess_are_flagged(live_app: LiveApp):
    live_app.webhooks_to_nowhere()
    company, customer, (a, b) = await _invoices("100.00", "50.00")
    op = await _attempt(
        live_app, company, customer, [a, b], await card(live_app.stripe, "4242424242424242")
    )
    # Before Stripe's event arrives, the ERP records a transfer that paid b.
    transfer = Payment(
        company=company.id,
        customer=customer.id,
        ref="VIR-1",
        received_on=TODAY,
        currency="EUR",
        amount_minor=5000,
        unapplied_minor=5000,
    )
    await transfer.save()
    await allocate(transfer.id, b.id, Money.from_minor(5000, "EUR"), CLERK)
    await _delivered(
        live_app,
        *live_app.event("payment_intent.succeeded", await _intent(live_app, op.intent_id)),
    )
    assert await _open(a) == (0, "paid")
    payment = await Payment.objects().get(
        Payment.id == (await OnlinePayment.objects().get(OnlinePayment.id == op.id)).payment
    )
    assert payment.unapplied_minor == 5000  # kept as credit
    kinds = {e.kind: e for e in await FinanceException.objects()}
    assert set(kinds) == {"already_paid", "overpayment"}
    assert kinds["overpayment"].amount_minor == 5000
    assert b.number in kinds["already_paid"].detail


async def test_a_payment_made_outside_the_portal_is_flagged_unallocated(live_app: LiveApp):
    live_app.webhooks_to_nowhere()
    company, customer, (a,) = await _invoices("100.00")
    intent = await live_app.stripe.v1.payment_intents.create_async(
        {
            "amount": 2500,
            "currency": "eur",
            "payment_method": await card(live_app.stripe, "4242424242424242"),
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": {"relance_company": company.code, "relance_customer": customer.ref},
        }
    )
    await _delivered(live_app, *live_app.event("payment_intent.succeeded", plain(intent)))
    payment = await Payment.objects().get(Payment.ref == intent.id)
    assert (payment.amount_minor, payment.unapplied_minor) == (2500, 2500)
    flagged = await FinanceException.objects().get(FinanceException.kind == "unallocated")
    assert flagged.customer == customer.id
    assert await _open(a) == (10000, "open")
    # A PaymentIntent of another system on the same Stripe account is none of ours.
    foreign = await live_app.stripe.v1.payment_intents.create_async(
        {
            "amount": 700,
            "currency": "eur",
            "payment_method": await card(live_app.stripe, "4242424242424242"),
            "payment_method_types": ["card"],
            "confirm": True,
        }
    )
    done = await _delivered(live_app, *live_app.event("payment_intent.succeeded", plain(foreign)))
    assert done.status == "processed"
    assert await OnlinePayment.count().where(OnlinePayment.intent_id == foreign.id) == 0


@pytest.mark.parametrize("missing", ["secret"])
async def test_webhooks_without_a_secret_are_unavailable(db, databases, missing):
    from app import create_app
    from receivables.settings import load_settings
    from tests.conftest import app_client

    settings = load_settings({"SECRET_KEY": "k" * 40, "BASE_URL": "http://testserver.local"})
    app = create_app(settings, engine=await databases.get(db))
    async with app_client(app) as http:
        answer = await http.post("/webhooks/stripe", content=b"{}")
    assert answer.status_code == 503
    assert await StripeEvent.count() == 0
