"""Stripe webhook throughput on Postgres: events applied per second, 4 concurrent deliverers.

    python bench/webhooks.py [--payments 300] [--deliverers 4] [--copies 2]

A fresh Postgres database, localstripe on a free local port, and `relance serve` in its own
process (one web process, as in production). N card payments are made through the SDK (real
PaymentIntents in localstripe); each one's `payment_intent.succeeded` event is signed with
the webhook secret and delivered `--copies` times, shuffled, by `--deliverers` concurrent
clients, so duplicates race each other. Each delivery is verified, stored, re-reads its
PaymentIntent from localstripe and, once per event, allocates in one transaction.

Prints deliveries/s, events applied/s, latency percentiles, and checks that every payment
was applied exactly once. Figures, not assertions: the machine's noise moves them.
"""

# ruff: noqa: ASYNC210, ASYNC220, ASYNC240, ASYNC251  (orchestration: blocking is fine here)

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import httpx

from receivables import db
from receivables.history import Actor
from receivables.ledger.tables import Allocation, Company, Customer, Item, Payment
from receivables.money import to_minor
from receivables.payments import checkout
from receivables.payments.emulator import free_port, start_emulator
from receivables.payments.gateway import StripeGateway
from receivables.payments.signatures import sign
from receivables.payments.tables import OnlinePayment, StripeEvent
from receivables.settings import load_settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]


async def seed(payments: int, gateway: StripeGateway) -> list[str]:
    """N invoices paid by card through the portal's path; returns the PaymentIntent ids."""
    from decimal import Decimal

    import stripe

    company = Company(code="BENCH", name="Bench Seller SAS", currency="EUR")
    await company.save()
    customers = []
    for n in range(max(1, payments // 10)):
        customer = Customer(company=company.id, ref=f"B{n:05d}", name=f"Buyer {n}")
        await customer.save()
        customers.append(customer)
    client = stripe.StripeClient(
        gateway.settings.stripe_secret_key,
        base_addresses={"api": gateway.settings.stripe_api_base},
    )
    rnd = random.Random(11)
    intents = []
    actor = Actor.system("bench")
    for n in range(payments):
        customer = customers[n % len(customers)]
        minor = to_minor(Decimal(rnd.randint(1000, 500_000)) / 100, "EUR")
        item = Item(
            company=company.id,
            customer=customer.id,
            number=f"B-{n:06d}",
            issue_date=date.today() - timedelta(days=40),
            due_date=date.today() - timedelta(days=10),
            currency="EUR",
            total_minor=minor,
            open_minor=minor,
        )
        await item.save()
        started = await checkout.start(
            company_id=company.id,
            customer_id=customer.id,
            item_ids=[item.id],
            actor=actor,
            gateway=gateway,
            on=date.today(),
        )
        method = await client.v1.payment_methods.create_async(
            {
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2034,
                    "cvc": "123",
                },
            }
        )
        await checkout.confirm(
            customer_id=customer.id,
            key=started.key,
            payment_method=method.id,
            actor=actor,
            gateway=gateway,
            on=date.today(),
        )
        op = await OnlinePayment.objects().get(OnlinePayment.key == started.key)
        intents.append(op.intent_id)
    return intents


async def deliveries(intents: list[str], gateway: StripeGateway, secret: str, copies: int):
    out = []
    for intent_id in intents:
        intent = await gateway.payment_intent(intent_id)
        body = {
            "id": "evt_bench_" + secrets.token_hex(8),
            "object": "event",
            "created": int(time.time()),
            "type": "payment_intent.succeeded",
            "data": {"object": intent},
        }
        payload = json.dumps(body).encode()
        out.extend([payload] * copies)
    random.Random(3).shuffle(out)
    return out


async def deliver_all(url: str, payloads: list[bytes], secret: str, deliverers: int):
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    latencies: list[float] = []
    results: dict[str, int] = {}

    async def deliverer() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            while True:
                try:
                    payload = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                start = time.perf_counter()
                answer = await http.post(
                    url,
                    content=payload,
                    headers={
                        "content-type": "application/json",
                        "stripe-signature": sign(payload, secret),
                    },
                )
                latencies.append(time.perf_counter() - start)
                key = (
                    answer.json().get("result", "?")
                    if answer.status_code == 200
                    else str(answer.status_code)
                )
                results[key] = results.get(key, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*[deliverer() for _ in range(deliverers)])
    return time.perf_counter() - began, latencies, results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=300)
    parser.add_argument("--deliverers", type=int, default=4)
    parser.add_argument("--copies", type=int, default=2, help="deliveries of each event")
    args = parser.parse_args()

    name = f"relance_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    emulator = start_emulator()
    port = free_port()
    webhook_secret = "whsec_" + secrets.token_hex(16)
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "BASE_URL": f"http://127.0.0.1:{port}",
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_bench",
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_API_BASE": emulator.api_base,
        "LOG_LEVEL": "ERROR",
    }
    settings = load_settings(env)
    engine = db.make_engine(url)
    server = None
    try:
        await db.migrate(engine)
        await db.start(engine)
        gateway = StripeGateway(settings)
        t0 = time.perf_counter()
        intents = await seed(args.payments, gateway)
        payloads = await deliveries(intents, gateway, webhook_secret, args.copies)
        seeded = time.perf_counter() - t0
        print(f"seeded {len(intents)} card payments in localstripe in {seeded:.1f} s")

        server = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the web process did not start")
        webhook = f"http://127.0.0.1:{port}/webhooks/stripe"
        elapsed, latencies, results = await deliver_all(
            webhook, payloads, webhook_secret, args.deliverers
        )
        applied = results.get("processed", 0)
        latencies.sort()

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

        print(
            f"postgres, {args.deliverers} deliverers, {len(payloads)} deliveries "
            f"({args.copies} of each of {len(intents)} events, shuffled)"
        )
        print(f"  wall time          {elapsed:8.2f} s")
        print(f"  deliveries/s       {len(payloads) / elapsed:8.1f}")
        print(f"  events applied/s   {applied / elapsed:8.1f}")
        print(
            f"  latency ms         p50 {statistics.median(latencies) * 1000:.0f}  "
            f"p95 {pct(0.95):.0f}  p99 {pct(0.99):.0f}  max {latencies[-1] * 1000:.0f}"
        )
        print(f"  answers            {dict(sorted(results.items()))}")
        payments = await Payment.count()
        allocations = await Allocation.count()
        stored = await StripeEvent.count()
        paid = await Item.count().where(Item.open_minor == 0)
        ok = applied == len(intents) == payments == allocations == paid == stored
        print(
            f"  check              {payments} payments, {allocations} allocations, {paid} items "
            f"paid, {stored} events stored: {'each applied once' if ok else 'MISMATCH'}"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        emulator.stop()
        await db.stop(engine)
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


def serve(port: int) -> None:
    """The web process under test: the real app, as `relance serve` runs it."""
    import uvicorn

    from app import create_app
    from web.logs import configure_logging

    configure_logging("ERROR")
    app = create_app(load_settings())
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_config=None)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        # This file is bench/webhooks.py: keep it from shadowing the `webhooks` package.
        here = str(Path(__file__).resolve().parent)
        sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
        serve(int(sys.argv[2]))
    else:
        asyncio.run(main())
