"""The lock order under fire: pairs of writers that deadlocked when the history lock came
after row locks, run from two processes (separate engines, one Postgres database) for many
rounds. Every round both sides start together (a barrier) on the same account; a side may
be refused for a business reason (the invoice was paid by the other), never by a deadlock,
and afterwards every amount, every chain and every seal still holds.

- webhook vs API payment: Stripe says a card paid invoice I while the ERP posts a transfer
  allocated to I (`events.process` against `upsert_payments`);
- run vs allocation: the daily run over accounts whose promises break (it reopens their
  invoices) while payments are allocated to those invoices;
- run vs import: the same run while an import changes those invoices and allocates a payment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from receivables.history import Actor, ActorKind
from tests.conftest import TEST_SECRET

ROUNDS = {"webhook-api": 300, "run-allocation": 200, "run-import": 150}
"""Rounds per pair. A webhook round races one webhook against one API payment; a run round
races the run over a company's accounts against allocations (or imports) on those accounts,
one after the other for as long as the run lasts."""
DEADLINE = 45.0
"""Seconds a pair may take; past it both sides stop where they are and report (a deadlock
costs Postgres's deadlock_timeout, 1 s, to detect: today's code does not finish in time)."""
ON = date.today()


def _is_deadlock(exc: BaseException | None) -> bool:
    while exc is not None:
        if "deadlock detected" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass
class Tally:
    rounds: int = 0
    ok: int = 0
    refused: int = 0
    deadlocks: int = 0
    errors: int = 0
    first_error: str = ""

    def failed(self, exc: BaseException) -> None:
        if _is_deadlock(exc):
            self.deadlocks += 1
        else:
            self.errors += 1
            self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"


class _Deadlocks(logging.Handler):
    """Deadlocks the run swallowed (a customer's savepoint rolled back, counted as failed)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and _is_deadlock(record.exc_info[1]):
            self.count += 1


class _Gateway:
    """Stripe as the webhook re-reads it: the intent of the round."""

    def __init__(self, intents: dict[str, dict[str, Any]]):
        self.intents = intents

    async def payment_intent(self, intent_id: str) -> dict[str, Any]:
        return self.intents[intent_id]


# ------------------------------------------------------------------ the two sides


async def _webhook(plan: dict[str, Any], r: int, tally: Tally) -> None:
    from receivables.errors import ReceivablesError
    from receivables.payments import events

    intent = plan["intents"][r]
    event = {
        "id": f"evt_hammer_{r}",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": {"id": intent["id"], "object": "payment_intent"}},
    }
    try:
        await events.store(event, json.dumps(event).encode())
        await events.process(event["id"], _Gateway({intent["id"]: intent}))  # type: ignore[arg-type]
        tally.ok += 1
    except ReceivablesError as exc:
        tally.failed(exc)


async def _api_payment(plan: dict[str, Any], r: int, tally: Tally) -> None:
    from receivables.errors import InvalidInput
    from receivables.ledger.records import PaymentRecord, upsert_payments

    record = PaymentRecord(
        ref=f"API-{r}",
        customer_ref=plan["customer_ref"],
        received_on=ON,
        amount=Decimal("100.00"),
        currency="EUR",
        item_number=plan["numbers"][r],
    )
    try:
        await upsert_payments([record], Actor(ActorKind.api, "erp"), company_code=plan["code"])
        tally.ok += 1
    except InvalidInput as exc:  # the webhook paid the invoice first: refused, nothing written
        if "open" not in str(exc):
            raise
        tally.refused += 1


async def _run(plan: dict[str, Any], r: int, tally: Tally) -> None:
    from receivables.dunning.run import run_dunning
    from receivables.settings import load_settings

    settings = load_settings({"SECRET_KEY": TEST_SECRET, "BASE_URL": "http://testserver.local"})
    report = await run_dunning(ON, settings, company_id=plan["company"], triggered_by="hammer")
    if report.failed:
        raise RuntimeError(f"{report.failed} account(s) failed in the run")
    if report.broken_promises != 4:
        raise RuntimeError(f"the run settled {report.broken_promises} promises, not 4")
    tally.ok += 1


async def _allocation(plan: dict[str, Any], r: int, tally: Tally) -> None:
    from receivables.errors import AllocationRefused
    from receivables.ledger.allocations import allocate
    from receivables.money import Money

    payment_id, item_id = random.choice(plan["pairs"][r])
    try:
        await allocate(payment_id, item_id, Money(Decimal("0.01"), "EUR"), Actor.system())
        tally.ok += 1
    except AllocationRefused:
        tally.refused += 1


async def _import(plan: dict[str, Any], r: int, tally: Tally) -> None:
    from receivables.ledger.imports import import_uploads

    n = tally.ok + tally.refused
    total = "101.00" if n % 2 else "100.50"  # each import changes every invoice
    items = "number,customer_ref,issue_date,due_date,currency,total\n" + "".join(
        f"{number},{ref},{ON - timedelta(days=70)},{ON - timedelta(days=40)},EUR,{total}\n"
        for number, ref in plan["items"][r]
    )
    number, ref = random.choice(plan["items"][r])
    payments = (
        "ref,customer_ref,received_on,amount,currency,item_number\n"
        f"IMP-{r}-{n},{ref},{ON},0.01,EUR,{number}\n"
    )
    report = await import_uploads(
        [("items.csv", items.encode()), ("payments.csv", payments.encode())],
        actor=Actor.system("import"),
        company_code=plan["code"],
    )
    if not report.written:
        raise RuntimeError(f"import refused: {report.problems[:2]}")
    tally.ok += 1


SIDES = {
    "webhook": _webhook,
    "api": _api_payment,
    "run": _run,
    "allocation": _allocation,
    "import": _import,
}
REPEATED = {"allocation", "import"}
"""Sides that repeat their transaction for as long as the other side's round lasts."""


def side_process(url: str, side: str, plan: dict[str, Any], sync: dict[str, Any]) -> None:
    """One side of a pair, in its own process with its own engine."""
    asyncio.run(_side(url, side, plan, sync))


async def _side(url: str, side: str, plan: dict[str, Any], sync: dict[str, Any]) -> None:
    from threading import BrokenBarrierError

    from receivables.db import make_engine, start, stop, use_engine

    engine = make_engine(url)
    use_engine(engine)
    await start(engine)
    swallowed = _Deadlocks()
    logging.getLogger("relance").addHandler(swallowed)
    barrier, done, results = sync["barrier"], sync["done"], sync["results"]
    tally = Tally()
    deadline = sync["deadline"]
    try:
        for r in range(plan["rounds"]):
            if time.time() > deadline:
                barrier.abort()
            if side == "run":
                await _activate(plan, r, "promised")
            barrier.wait(timeout=DEADLINE)
            while True:
                try:
                    await SIDES[side](plan, r, tally)
                except Exception as exc:
                    tally.failed(exc)
                if side not in REPEATED or done.is_set() or time.time() > deadline:
                    break
                await asyncio.sleep(random.uniform(0, 0.003))
            if side not in REPEATED:
                done.set()
            barrier.wait(timeout=DEADLINE)
            if side not in REPEATED:
                done.clear()  # before the next round's barrier: the other side waits there
            if side == "run":
                await _activate(plan, r, "cancelled")
            tally.rounds += 1
    except BrokenBarrierError:
        pass
    finally:
        await stop(engine)
        tally.deadlocks += swallowed.count
        results.put((side, tally.__dict__))


# ------------------------------------------------------------------ set-up and checks


async def _webhook_plan() -> dict[str, Any]:
    from receivables.payments.tables import OnlinePayment, OnlinePaymentItem
    from tests.factories import make_company, make_customer, make_item

    company = await make_company()
    customer = await make_customer(company)
    rounds = ROUNDS["webhook-api"]
    plan: dict[str, Any] = {
        "rounds": rounds,
        "code": company.code,
        "customer_ref": customer.ref,
        "numbers": [],
        "intents": [],
    }
    for r in range(rounds):
        item = await make_item(customer, "100.00", due=ON - timedelta(days=10))
        intent_id = f"pi_hammer_{r}"
        op = OnlinePayment(
            key=f"hammer-{r}",
            company=company.id,
            customer=customer.id,
            intent_id=intent_id,
            currency="EUR",
            amount_minor=10000,
            status=OnlinePayment.Status.processing.value,
        )
        await op.save()
        await OnlinePaymentItem(
            online_payment=op.id, item=item.id, kind="invoice", amount_minor=10000
        ).save()
        plan["numbers"].append(item.number)
        plan["intents"].append(
            {
                "id": intent_id,
                "object": "payment_intent",
                "status": "succeeded",
                "currency": "eur",
                "amount": 10000,
                "amount_received": 10000,
                "created": int(datetime.now(UTC).timestamp()),
                "metadata": {"relance_payment": op.key},
                "latest_charge": None,
            }
        )
    return plan


async def _run_plan(rounds: int) -> dict[str, Any]:
    """Per round 2 accounts with 2 overdue invoices each, whose promise broke before ON (the
    run reopens them), and a payment per account to allocate from."""
    from receivables.dunning.defaults import install_defaults
    from receivables.ledger.tables import ItemStatus
    from tests.factories import make_company, make_customer, make_item, make_payment

    company = await make_company()
    await install_defaults(company.id)
    plan: dict[str, Any] = {
        "rounds": rounds,
        "code": company.code,
        "company": company.id,
        "pairs": [],
        "items": [],
        "item_ids": [],
    }
    for _ in range(rounds):
        pairs, items = [], []
        for _ in range(2):
            customer = await make_customer(company)
            payment = await make_payment(customer, "100.00")
            for _ in range(2):
                item = await make_item(
                    customer,
                    "100.00",
                    due=ON - timedelta(days=40),
                    status=ItemStatus.cancelled.value,  # until its round (`_activate`)
                    promise_date=ON - timedelta(days=10),
                )
                items.append((item.number, customer.ref))
                pairs.append((payment.id, item.id))
        plan["pairs"].append(pairs)
        plan["items"].append(items)
        plan["item_ids"].append([item_id for _, item_id in pairs])
    return plan


async def _activate(plan: dict[str, Any], r: int, status: str) -> None:
    """A group's invoices wait cancelled until their round makes them promised (broken); after
    it they are cancelled again: the next run ends the escalation, and later runs no longer
    see them (each run stays the same size)."""
    from receivables.ledger.tables import Item

    await Item.update({Item.status: status}).where(Item.id.is_in(plan["item_ids"][r]))


async def _check_invariants() -> None:
    from receivables.history import verify
    from receivables.ledger.tables import Allocation, Item, Payment

    report = await verify()
    assert report.ok, [str(p) for p in report.problems[:5]]
    allocated: dict[tuple[str, int], int] = {}
    for a in await Allocation.select().where(Allocation.reversed_at.is_null()):
        for key in (("item", a["item"]), ("payment", a["payment"])):
            allocated[key] = allocated.get(key, 0) + a["amount_minor"]
    for item in await Item.select():
        assert item["open_minor"] == item["total_minor"] - allocated.get(("item", item["id"]), 0)
        assert 0 <= item["open_minor"] <= item["total_minor"]
    for payment in await Payment.select():
        used = allocated.get(("payment", payment["id"]), 0)
        assert payment["unapplied_minor"] == payment["amount_minor"] - used >= 0


def _hammer(url: str, sides: tuple[str, str], plan: dict[str, Any]) -> dict[str, Tally]:
    ctx = multiprocessing.get_context("spawn")
    sync = {
        "barrier": ctx.Barrier(2),
        "done": ctx.Event(),
        "results": ctx.Queue(),
        "deadline": time.time() + DEADLINE,
    }
    processes = [ctx.Process(target=side_process, args=(url, side, plan, sync)) for side in sides]
    for p in processes:
        p.start()
    tallies: dict[str, Tally] = {}
    try:
        while len(tallies) < len(sides):
            side, counts = sync["results"].get(timeout=DEADLINE + 30)
            tallies[side] = Tally(**counts)
    finally:
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    return tallies


PAIRS = {
    "webhook-api": ("webhook", "api"),
    "run-allocation": ("run", "allocation"),
    "run-import": ("run", "import"),
}


@pytest.mark.parametrize("pair", list(PAIRS))
async def test_no_deadlock_between_writers_of_one_account(pg_db, databases, pair):
    plan = await _webhook_plan() if pair == "webhook-api" else await _run_plan(ROUNDS[pair])
    started = time.monotonic()
    tallies = await asyncio.to_thread(_hammer, databases.urls["postgres"], PAIRS[pair], plan)
    took = time.monotonic() - started
    summary = {side: t.__dict__ for side, t in tallies.items()}
    print(f"\n{pair}: {plan['rounds']} rounds planned, {took:.1f} s: {summary}")
    assert sum(t.deadlocks for t in tallies.values()) == 0, summary
    assert sum(t.errors for t in tallies.values()) == 0, summary
    assert all(t.rounds == plan["rounds"] for t in tallies.values()), summary
    await _check_invariants()
