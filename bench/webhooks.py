"""Stripe webhook throughput on Postgres: events applied per second, 4 concurrent deliverers.

    python bench/webhooks.py [--payments 300] [--rounds 3] [--deliverers 4] [--copies 2]
                             [--workers 1] [--per-customer 10] [--reread] [--asyncpg-reset]

A fresh Postgres database, localstripe on a free local port, the web app in its own process
(as `relance serve`) and, in the rounds that apply, the worker's `stripe_events` job in a
process of its own (as `relance worker`). Card payments are made through the portal's path
(real PaymentIntents in localstripe); each one's `payment_intent.succeeded` event is signed
with the webhook secret and delivered `--copies` times, shuffled, by `--deliverers`
concurrent clients (aiohttp, the lightest client here: Stripe's deliverers do not share our
CPU), so duplicates race each other.

After a warm-up round, two kinds of rounds alternate, `--rounds` of each, in the same run:

- ack: no worker; every delivery verified, stored and answered. Its events are then set
  aside (marked ignored) so no later round applies them.
- apply: the worker running; the round lasts until every event is applied.

The events carry the PaymentIntent as Stripe reports it once final (succeeded, its charge
and balance transaction expanded), so the worker applies them from the signed object;
`--reread` sends the charge as an id only, as Stripe's own events do, and the worker then
re-reads every intent from localstripe.

Prints per round: deliveries/s, events/s (acknowledged or applied), the load average, answer
latency, the time from an event's arrival to its application, peak memory (RSS, sampled
every 50 ms) of the web and worker processes, and the CPU each part used per event (web,
worker, the database's backends, this process, localstripe: from /proc, so the figure holds
whatever else the machine runs) with the rate two idle cores would allow; then the medians,
the ratio apply/ack, and a check that every event was stored once and applied once (one
payment, one allocation, one paid invoice each). Figures, not assertions: the machine's
noise moves them.
"""

# ruff: noqa: ASYNC210, ASYNC220, ASYNC240, ASYNC251  (orchestration: blocking is fine here)

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import httpx
import stripe

from receivables import db
from receivables.history import Actor
from receivables.ledger.tables import Allocation, Company, Customer, Item, Payment
from receivables.money import to_minor
from receivables.payments import checkout
from receivables.payments.emulator import free_port, start_emulator
from receivables.payments.gateway import StripeGateway
from receivables.payments.tables import OnlinePayment, StripeEvent
from receivables.settings import load_settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ data


async def seed(
    payments: int, gateway: StripeGateway, company: Company, tag: str, per_customer: int
) -> list[str]:
    """N invoices paid by card through the portal's path (8 at a time); their intent ids."""
    import stripe

    customers = []
    for n in range(max(1, payments // per_customer)):
        customer = Customer(company=company.id, ref=f"{tag}{n:05d}", name=f"Buyer {tag}{n}")
        await customer.save()
        customers.append(customer)
    client = stripe.StripeClient(
        gateway.settings.stripe_secret_key,
        base_addresses={"api": gateway.settings.stripe_api_base},
    )
    rnd = random.Random(tag)
    actor = Actor.system("bench")
    gate = asyncio.Semaphore(8)
    intents: list[str] = []

    async def pay(n: int) -> None:
        customer = customers[n % len(customers)]
        minor = to_minor(Decimal(rnd.randint(1000, 500_000)) / 100, "EUR")
        async with gate:
            item = Item(
                company=company.id,
                customer=customer.id,
                number=f"{tag}-{n:06d}",
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

    await asyncio.gather(*(pay(n) for n in range(payments)))
    return intents


async def events_of(intents: list[str], gateway: StripeGateway, reread: bool) -> list[bytes]:
    """One signed-to-be `payment_intent.succeeded` body per intent."""
    out = []
    for intent_id in intents:
        intent = await gateway.payment_intent(intent_id)  # charge and balance txn expanded
        if reread:
            intent["latest_charge"] = intent["latest_charge"]["id"]  # as Stripe sends it
        body = {
            "id": "evt_bench_" + secrets.token_hex(10),
            "object": "event",
            "created": int(time.time()),
            "type": "payment_intent.succeeded",
            "data": {"object": intent},
        }
        out.append(json.dumps(body).encode())
    return out


def renamed(payloads: list[bytes]) -> list[bytes]:
    """The same bodies under new event ids (ack rounds: never applied, only stored)."""
    out = []
    for payload in payloads:
        body = json.loads(payload)
        body["id"] = "evt_bench_" + secrets.token_hex(10)
        out.append(json.dumps(body).encode())
    return out


# ------------------------------------------------------------------ processes


def start_process(mode: str, env: dict[str, str], port: int = 0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), mode, str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


async def backends(conn: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds of the Postgres backends serving this database (not this connection)."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    return {r["pid"]: cpu_s(r["pid"]) for r in rows}


@dataclass
class Cpu:
    """CPU seconds used during a round, by part."""

    web: float
    workers: float
    postgres: float
    client: float
    """This process: the deliverers, and the polling for applied events."""
    stripe: float
    """localstripe answering the worker's re-reads (Stripe's side; on this machine too)."""


@dataclass
class Memory:
    """Peak RSS of each watched process during a round."""

    pids: dict[str, int]
    peak: dict[str, float] = field(default_factory=dict)

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak.get(name, 0.0), rss_mib(pid))
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass


# ------------------------------------------------------------------ rounds


@dataclass
class Round:
    kind: str
    events: int
    deliveries: int
    delivered_in: float
    done_in: float
    latencies: list[float]
    answers: dict[str, int]
    lag_ms: list[float]
    memory: dict[str, float]
    cpu: Cpu
    load: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.done_in

    def line(self) -> str:
        lat = sorted(self.latencies)
        p95 = lat[int(0.95 * (len(lat) - 1))] * 1000
        lag = sorted(self.lag_ms)
        lags = (
            f"  arrival->applied p50 {lag[len(lag) // 2]:.0f} ms p95 "
            f"{lag[int(0.95 * (len(lag) - 1))]:.0f} ms"
            if lag
            else ""
        )
        mem = "  ".join(f"{k} {v:.0f} MiB" for k, v in sorted(self.memory.items()))
        verb = "applied" if self.kind == "apply" else "acked"
        return (
            f"  {self.kind:<6} {self.deliveries / self.delivered_in:6.1f} deliveries/s  "
            f"{self.events_per_s:6.1f} events {verb}/s  ({self.done_in:.2f} s, load "
            f"{self.load:.1f})  answer p50 {statistics.median(lat) * 1000:.0f} ms p95 "
            f"{p95:.0f} ms{lags}\n"
            f"         CPU ms/event {self.cpu_line()}  peak RSS {mem}  "
            f"{dict(sorted(self.answers.items()))}"
        )

    def per_event(self) -> dict[str, float]:
        c = self.cpu
        parts = {
            "web": c.web,
            "worker": c.workers,
            "postgres": c.postgres,
            "client": c.client,
            "localstripe": c.stripe,
        }
        return {k: v * 1000 / self.events for k, v in parts.items()}

    def cpu_line(self) -> str:
        parts = self.per_event()
        total = sum(parts.values())
        return (
            " ".join(f"{k} {v:.2f}" for k, v in parts.items())
            + f" = {total:.2f} (2 idle cores: {2000 / total:.0f} events/s)"
        )


async def deliver_all(
    url: str, payloads: list[bytes], secret: str, deliverers: int
) -> tuple[float, list[float], dict[str, int]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    latencies: list[float] = []
    results: dict[str, int] = {}

    async def deliverer(http: aiohttp.ClientSession) -> None:
        while True:
            try:
                payload = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            start = time.perf_counter()
            headers = {
                "content-type": "application/json",
                "stripe-signature": stripe.WebhookSignature.generate_signature_header(
                    payload.decode(), secret
                ),
            }
            async with http.post(url, data=payload, headers=headers) as answer:
                body = await answer.json() if answer.status == 200 else {}
                key = body.get("result", "?") if answer.status == 200 else str(answer.status)
            latencies.append(time.perf_counter() - start)
            results[key] = results.get(key, 0) + 1

    connector = aiohttp.TCPConnector(limit=deliverers)
    async with aiohttp.ClientSession(connector=connector) as http:
        began = time.perf_counter()
        await asyncio.gather(*[deliverer(http) for _ in range(deliverers)])
        return time.perf_counter() - began, latencies, results


async def applied_count(conn: asyncpg.Connection, ids: list[str]) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM stripe_event WHERE status = 'processed' AND event_id = ANY($1)", ids
    )


async def run_round(
    kind: str,
    payloads: list[bytes],
    copies: int,
    args: argparse.Namespace,
    env: dict[str, str],
    web: subprocess.Popen,
    webhook: str,
    secret: str,
    conn: asyncpg.Connection,
    stripe_pid: int,
) -> Round:
    ids = [json.loads(p)["id"] for p in payloads]
    deliveries = [p for p in payloads for _ in range(copies)]
    random.Random(len(ids)).shuffle(deliveries)
    workers: list[subprocess.Popen] = []
    if kind == "apply":
        workers = [start_process("--work", env) for _ in range(args.workers)]
        for w in workers:
            assert w.stdout is not None
            if w.stdout.readline().strip() != "ready":
                raise RuntimeError("the worker did not start")
    pids = {"web": web.pid} | {f"worker{n + 1}": w.pid for n, w in enumerate(workers)}
    memory = Memory(pids)
    stop = asyncio.Event()
    watcher = asyncio.create_task(memory.watch(stop))
    cpu_before = {pid: cpu_s(pid) for pid in [*pids.values(), stripe_pid]}
    pg_before = await backends(conn)
    client_before = time.process_time()
    try:
        began = time.perf_counter()
        delivered_in, latencies, answers = await deliver_all(
            webhook, deliveries, secret, args.deliverers
        )
        done_in = delivered_in
        if kind == "apply":
            while await applied_count(conn, ids) < len(ids):
                if time.perf_counter() - began > 300:
                    raise RuntimeError("events still unapplied after 300 s")
                await asyncio.sleep(0.05)
            done_in = time.perf_counter() - began
        client = time.process_time() - client_before
        pg_after = await backends(conn)
        used = {pid: cpu_s(pid) - before for pid, before in cpu_before.items()}
        cpu = Cpu(
            web=used[web.pid],
            workers=sum(used[w.pid] for w in workers),
            postgres=sum(t - pg_before.get(pid, 0.0) for pid, t in pg_after.items()),
            client=client,
            stripe=used[stripe_pid],
        )
    finally:
        stop.set()
        await watcher
        for w in workers:
            w.send_signal(signal.SIGINT)
        for w in workers:
            w.wait(timeout=30)
    lag: list[float] = []
    if kind == "apply":
        rows = await conn.fetch(
            "SELECT extract(epoch FROM processed_at - received_at) * 1000 AS ms "
            "FROM stripe_event WHERE event_id = ANY($1)",
            ids,
        )
        lag = [float(r["ms"]) for r in rows]
    else:  # stored only: set aside so that no later round applies them
        await conn.execute(
            "UPDATE stripe_event SET status = 'ignored' WHERE event_id = ANY($1)", ids
        )
    return Round(
        kind,
        len(ids),
        len(deliveries),
        delivered_in,
        done_in,
        latencies,
        answers,
        lag,
        memory.peak,
        cpu,
        os.getloadavg()[0],
    )


# ------------------------------------------------------------------ main


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=300, help="events per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    parser.add_argument("--warmup", type=int, default=100, help="events of the warm-up round")
    parser.add_argument("--deliverers", type=int, default=4)
    parser.add_argument("--copies", type=int, default=2, help="deliveries of each event")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--reread", action="store_true", help="events as Stripe sends them")
    parser.add_argument(
        "--per-customer", type=int, default=10, help="payments per customer account"
    )
    parser.add_argument(
        "--asyncpg-reset",
        action="store_true",
        help="web and worker pools reset each connection on release (asyncpg's default), "
        "as before receivables.db.start turned it off: to measure what that costs",
    )
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
    if args.asyncpg_reset:
        env[_RESET] = "1"
    settings = load_settings(env)
    engine = db.make_engine(url)
    web = None
    conn = None
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # Piccolo lists each migration
            await db.migrate(engine)
        await db.start(engine)
        gateway = StripeGateway(settings)
        company = Company(code="BENCH", name="Bench Seller SAS", currency="EUR")
        await company.save()
        t0 = time.perf_counter()
        plan = [("apply", args.warmup, "W")]
        for r in range(args.rounds):
            plan += [("ack", args.payments, f"A{r}"), ("apply", args.payments, f"P{r}")]
        apply_sizes = [n for kind, n, _ in plan if kind == "apply"]
        intents = await seed(sum(apply_sizes), gateway, company, "B", args.per_customer)
        bodies = await events_of(intents, gateway, args.reread)
        rounds_payloads = []
        start = 0
        for kind, n, _ in plan:
            if kind == "apply":
                rounds_payloads.append(bodies[start : start + n])
                start += n
            else:
                rounds_payloads.append(renamed(bodies[:n]))
        seeded = time.perf_counter() - t0
        print(f"seeded {len(intents)} card payments in localstripe in {seeded:.1f} s")

        web = start_process("--serve", env, port)
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the web process did not start")
        webhook = f"http://127.0.0.1:{port}/webhooks/stripe"
        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
        print(
            f"postgres, {args.deliverers} deliverers, each event delivered {args.copies} times "
            f"(shuffled), {args.per_customer} payments per customer, "
            f"{args.workers} worker process(es), "
            + ("asyncpg's pool reset on release, " if args.asyncpg_reset else "")
            + "events "
            + ("as Stripe sends them (re-read)" if args.reread else "final (signed object)")
        )
        results: list[Round] = []
        for (kind, _n, _tag), payloads in zip(plan, rounds_payloads, strict=True):
            done = await run_round(
                kind,
                payloads,
                args.copies,
                args,
                env,
                web,
                webhook,
                webhook_secret,
                conn,
                emulator.process.pid,
            )
            print(done.line() + ("  (warm-up)" if not results else ""))
            results.append(done)

        measured = results[1:]
        ack = [r for r in measured if r.kind == "ack"]
        applied = [r for r in measured if r.kind == "apply"]
        ack_eps = statistics.median(r.events_per_s for r in ack)
        apply_eps = statistics.median(r.events_per_s for r in applied)
        apply_dps = statistics.median(r.deliveries / r.delivered_in for r in applied)
        ack_dps = statistics.median(r.deliveries / r.delivered_in for r in ack)
        print(f"medians over {args.rounds} rounds of each, {args.payments} events a round:")
        print(f"  ack only     {ack_dps:7.1f} deliveries/s  {ack_eps:7.1f} events acked/s")
        print(
            f"  applied      {apply_dps:7.1f} deliveries/s  {apply_eps:7.1f} events applied/s"
            f"  = {apply_eps / ack_eps:.2f} x ack only"
        )
        for kind, group in (("ack only", ack), ("applied", applied)):
            parts = {
                k: statistics.median(r.per_event()[k] for r in group) for k in group[0].per_event()
            }
            total = sum(parts.values())
            print(
                f"  CPU ms/event {kind:<9} "
                + " ".join(f"{k} {v:.2f}" for k, v in parts.items())
                + f" = {total:.2f}: {2000 / total:.0f} events/s on 2 idle cores"
            )
        peaks: dict[str, float] = {}
        for r in measured:
            for k, v in r.memory.items():
                peaks[k] = max(peaks.get(k, 0.0), v)
        print("  peak RSS     " + "  ".join(f"{k} {v:.0f} MiB" for k, v in sorted(peaks.items())))

        expected = sum(apply_sizes)
        payments = await Payment.count()
        allocations = await Allocation.count()
        paid = await Item.count().where(Item.open_minor == 0)
        processed = await StripeEvent.count().where(StripeEvent.status == "processed")
        once = await StripeEvent.count().where(
            (StripeEvent.status == "processed") & (StripeEvent.attempts == 1)
        )
        stored = await StripeEvent.count()
        delivered = sum(len(p) for p in rounds_payloads)
        stored_ok = sum(r.answers.get("stored", 0) for r in results) == delivered == stored
        duplicates = sum(r.answers.get("duplicate", 0) for r in results)
        ok = stored_ok and payments == allocations == paid == processed == once == expected
        print(
            f"  check        {stored} events stored once ({duplicates} duplicate deliveries "
            f"answered), {processed} applied ({once} at the first attempt): {payments} payments, "
            f"{allocations} allocations, {paid} invoices paid for {expected} paid events: "
            + ("each applied once" if ok else "MISMATCH")
        )
    finally:
        if conn is not None:
            await conn.close()
        if web is not None:
            web.terminate()
            web.wait(timeout=15)
        emulator.stop()
        await db.stop(engine)
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


_RESET = "RELANCE_BENCH_ASYNCPG_RESET"


def _asyncpg_reset() -> None:
    """With --asyncpg-reset: pools made as before, asyncpg resetting each released connection."""
    if not os.environ.get(_RESET):
        return
    from piccolo.engine.postgres import PostgresEngine

    async def start(engine, pool_size: int = db.DEFAULT_POOL_SIZE) -> None:
        assert isinstance(engine, PostgresEngine)
        await engine.start_connection_pool(min_size=1, max_size=pool_size)

    db.start = start  # type: ignore[assignment]


def serve(port: int) -> None:
    """The web process under test: the real app, as `relance serve` runs it."""
    import uvicorn

    from app import create_app
    from web.logs import configure_logging

    configure_logging("ERROR")
    _asyncpg_reset()
    app = create_app(load_settings())
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_config=None)


def work() -> None:
    """A worker process running the registered `stripe_events` job, as `relance worker`
    runs it (its other jobs, mail and dunning, have nothing to do with this bench)."""
    from receivables.worker import JOBS
    from web.logs import configure_logging

    settings = load_settings()
    configure_logging("ERROR")
    _asyncpg_reset()
    job = next(j for j in JOBS if j.name == "stripe_events")

    async def run() -> None:
        engine = db.make_engine(settings.database_url)
        db.use_engine(engine)
        await db.start(engine, pool_size=settings.database_pool_size)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        print("ready", flush=True)
        try:
            while not stop.is_set():
                await job.run(settings)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=job.every_seconds)
                except TimeoutError:
                    pass
        finally:
            await db.stop(engine)

    asyncio.run(run())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("--serve", "--work"):
        # This file is bench/webhooks.py: keep it from shadowing the `webhooks` package.
        here = str(Path(__file__).resolve().parent)
        sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
        if sys.argv[1] == "--serve":
            serve(int(sys.argv[2]))
        else:
            work()
    else:
        asyncio.run(main())
