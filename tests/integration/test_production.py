"""Production as the README describes it, in small: two `relance serve` and two `relance worker`
processes on one fresh Postgres, 30 seconds of mixed load from this test, then the books.

The test plays every outside party: the load balancer (it spreads requests over both servers,
sends BASE_URL's Host and, as a trusted proxy, each customer's X-Forwarded-For), customers in
the portal (signed links from `relance portal-link`, answers posted with their CSRF token,
card payments through localstripe), the ERP (API items and payments with an API key from
`relance apikey create`), Stripe (each payment's event, signed with the webhook secret,
delivered to both servers at once), staff in the back office (signed in: pages, answers
validated and rejected), the operator (`relance dunning run --date D` started twice at once
in the middle, D late enough that promises made in the portal are broken on it) and the mail
server (aiosmtpd in a thread of this process, keeping each Message-ID).

Then: no 5xx and no transport error; no "deadlock detected" (in any log, nor in Postgres's
count for the database), no Traceback, no error line and no history lock taken out of order
in any process's output; every message received once and exactly the outbox's sent ones;
allocations in step with open and unapplied amounts; each webhook event applied once, each
card payment recorded once; the two runs made each dunning action once; `relance history
verify` exits 0. Each process's output is kept in the test's folder (`*.log`).

Postgres only: skipped with the reason when it is absent, failed when REQUIRE_POSTGRES=1
(the probe and the failure are conftest's).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import stripe

from tests.conftest import _PG_PROBLEM, PG_ADMIN_URL, TEST_SECRET, require_postgres
from tests.stripe_emulator import card, plain, signed_event

pytestmark = [
    pytest.mark.skipif(
        _PG_PROBLEM is not None and os.environ.get("REQUIRE_POSTGRES") != "1",
        reason=f"Postgres at {PG_ADMIN_URL} is not reachable ({_PG_PROBLEM}); "
        "Postgres tests skipped",
    ),
    # The stripe SDK hands httpx its form body as a string.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
RELANCE = str(Path(sys.executable).with_name("relance"))
LOAD_SECONDS = 30.0
START_WITHIN = 60.0
"""Generous: four processes importing the app on a busy 2-core machine."""
DRAIN_WITHIN = 45.0
COMMAND_WITHIN = 120.0
PASSWORD = "load-test-password-1"
COLLECTOR = "collector@atelier.example"
FINANCE = "finance@atelier.example"
TODAY = datetime.now(UTC).date()  # the imported company's time zone is UTC
RUN_DAY = TODAY + timedelta(days=10)  # past the scenarios' 7-day spacing: new steps are due
ANSWERERS = ["CLI-002", "LOAD-01", "LOAD-02", "LOAD-03"]
PAYERS = ["LOAD-04", "LOAD-05"]
LOAD_CUSTOMERS = 24
MAX_CARD_PAYMENTS = 6
PROFILES = ["negligent", "bad payer", "administrative", "dispute-prone", "insolvent"]
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
ANSWERABLE = re.compile(r'name="item" value="(\d+)" class="select-item"')
PAYABLE = re.compile(r'name="item" value="(\d+)" class="pay-item"[^>]*data-sign="1"')
FEEDBACK_FORM = re.compile(r'action="/backoffice/feedback/(\d+)/validate"')
SECRET_IN_PATH = re.compile(r"/p/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the mail server


class MailServer:
    """aiosmtpd on 127.0.0.1 in a thread of its own (a busy test loop never delays an SMTP
    answer, which could make a worker time out and send again), keeping each message's
    Message-ID."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it
        headers = BytesParser(policy=policy.default).parsebytes(
            envelope.original_content or envelope.content, headersonly=True
        )
        self.received.append(str(headers.get("Message-ID", "")).strip())
        return "250 OK"

    def start(self) -> None:
        from aiosmtpd.smtp import SMTP

        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            server = loop.run_until_complete(
                loop.create_server(lambda: SMTP(self, hostname="test-smtp"), "127.0.0.1", 0)
            )
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._thread = threading.Thread(target=serve, name="test-smtp", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the test SMTP server did not start"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


# ------------------------------------------------------------------ processes


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Fleet:
    """The long-running processes, each in its own session, its output in its own file."""

    folder: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Process:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [RELANCE, *args],
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        """SIGINT (what an operator's Ctrl-C or a supervisor sends), then SIGKILL to the
        process group of one that does not stop within 20 s."""
        for p in self.processes:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        for p in self.processes:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(timeout=10)


_COMMANDS = itertools.count(1)


async def relance(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """A `relance` command, awaited without blocking the loop: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        RELANCE,
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(COMMAND_WITHIN):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        command = " ".join(args)
        raise AssertionError(f"relance {command}: running after {COMMAND_WITHIN} s") from None
    text = out.decode(), err.decode()
    log = cwd / f"cli-{next(_COMMANDS):02d}-{args[0]}.log"  # kept for a look after a failure
    log.write_text(f"$ relance {' '.join(args)}\n{text[0]}\n--- stderr\n{text[1]}")
    return process.returncode or 0, *text


async def must(env: dict[str, str], cwd: Path, *args: str) -> str:
    code, out, err = await relance(env, cwd, *args)
    assert code == 0, f"relance {' '.join(args)} exited {code}:\n{out}\n{err}"
    return out


# ------------------------------------------------------------------ the data


@dataclass(frozen=True)
class Invoice:
    number: str
    customer_ref: str
    issue_date: date
    due_date: date
    total: str


def load_ledger(folder: Path) -> list[Invoice]:
    """Customers beside the examples' (each with a contact receiving reminders and invoices
    from long overdue to not yet due), written as import files."""
    invoices = []
    with (folder / "load_customers.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ref", "name", "country", "payer_profile", "language", "collector_email"])
        for n in range(1, LOAD_CUSTOMERS + 1):
            lang = "fr" if n % 2 else "en"
            w.writerow(
                [f"LOAD-{n:02d}", f"Charge {n:02d} SARL", "FR", PROFILES[n % 5], lang, COLLECTOR]
            )
    with (folder / "load_contacts.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_ref", "name", "email", "receives_reminders"])
        for n in range(1, LOAD_CUSTOMERS + 1):
            w.writerow([f"LOAD-{n:02d}", f"AP {n:02d}", f"ap@charge-{n:02d}.example", "yes"])
    with (folder / "load_items.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "customer_ref", "issue_date", "due_date", "currency", "total"])
        for n in range(1, LOAD_CUSTOMERS + 1):
            for k, age in enumerate([95, 50, 20, 3, -15]):
                due = TODAY - timedelta(days=age - n % 5)
                invoice = Invoice(
                    f"L{n:02d}-{k}",
                    f"LOAD-{n:02d}",
                    due - timedelta(days=30),
                    due,
                    f"{100 + 37 * n + 11 * k}.{(7 * n + k) % 100:02d}",
                )
                invoices.append(invoice)
                w.writerow(
                    [
                        invoice.number,
                        invoice.customer_ref,
                        invoice.issue_date.isoformat(),
                        invoice.due_date.isoformat(),
                        "EUR",
                        invoice.total,
                    ]
                )
    return invoices


# ------------------------------------------------------------------ the cluster


@dataclass
class Cluster:
    folder: Path
    db_url: str
    env: dict[str, str]
    fleet: Fleet
    servers: list[str]
    host: str
    api_key: str
    links: dict[str, str]
    invoices: list[Invoice]
    mail: MailServer
    stripe: stripe.StripeClient
    webhook_secret: str
    timings: dict[str, float]
    """Seconds each phase of the setup took."""

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.db_url.replace("postgres://", "postgresql://"))


def _admin_url() -> str:
    return PG_ADMIN_URL.replace("postgres://", "postgresql://")


async def _wait_until_up(cluster_env: dict[str, str], fleet: Fleet, servers: list[str]) -> None:
    host = cluster_env["BASE_URL"].split("://", 1)[1]
    deadline = time.monotonic() + START_WITHIN
    async with httpx.AsyncClient(timeout=5, headers={"host": host}) as client:
        for url in servers:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/health")).status_code == 200:
                        break
                for p in fleet.processes:
                    assert p.popen.poll() is None, f"{p.name} exited:\n{p.text()[-3000:]}"
                assert time.monotonic() < deadline, f"{url} did not answer in {START_WITHIN} s"
                await asyncio.sleep(0.2)
    for p in fleet.processes:
        if not p.name.startswith("worker"):
            continue
        while "worker started" not in p.text():
            assert p.popen.poll() is None, f"{p.name} exited:\n{p.text()[-3000:]}"
            assert time.monotonic() < deadline, f"{p.name} did not start in {START_WITHIN} s"
            await asyncio.sleep(0.2)


@pytest.fixture
async def cluster(tmp_path, stripe_emulator) -> AsyncIterator[Cluster]:
    """A fresh database, migrated and imported, then 2 servers and 2 workers on it."""
    require_postgres()
    timings: dict[str, float] = {}
    began = time.monotonic()

    def lap(what: str) -> None:
        timings[what] = time.monotonic() - began - sum(timings.values())

    name = f"relance_test_{uuid.uuid4().hex[:10]}_prod"
    ports = [free_port(), free_port()]
    base_url = f"http://127.0.0.1:{ports[0]}"
    servers = [f"http://127.0.0.1:{port}" for port in ports]
    webhook_secret = "whsec_" + secrets.token_hex(16)
    mail = MailServer()
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}",
        "SECRET_KEY": TEST_SECRET,
        "BASE_URL": base_url,
        "SMTP_HOST": "127.0.0.1",
        "STRIPE_SECRET_KEY": "sk_test_relance",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_relance",
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_API_BASE": stripe_emulator.api_base,
        "TRUSTED_PROXIES": "127.0.0.1",  # the test is the load balancer
        "DOCUMENTS_DIR": str(tmp_path / "documents"),
        "DATABASE_POOL_SIZE": "4",  # 4 processes and 2 commands at once: 24 connections
        "LOG_LEVEL": "INFO",
        "COLUMNS": "200",
    }
    fleet = Fleet(tmp_path, env)
    admin = await asyncpg.connect(_admin_url())
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        mail.start()
        env["SMTP_PORT"] = str(mail.port)
        await must(env, tmp_path, "migrate")
        staff = [
            (COLLECTOR, "Colette Collector", "collector"),
            (FINANCE, "Fabien Finance", "finance"),
        ]
        await asyncio.gather(
            *(
                must(env, tmp_path, "createuser", "--email", email, "--name", who,
                     "--role", role, "--password", PASSWORD)
                for email, who, role in staff
            )
        )  # fmt: skip
        invoices = load_ledger(tmp_path)
        examples = ["companies.csv", "customers.csv", "contacts.csv", "items.xlsx", "payments.csv"]
        files = [ROOT / "examples" / f for f in examples] + sorted(tmp_path.glob("load_*.csv"))
        await must(env, tmp_path, "import", *map(str, files))
        lap("database")
        # The servers start meanwhile; the workers once today's run is done, so they find it
        # done and make no run of their own: the only run during the load is the test's.
        for n, port in enumerate(ports, 1):
            fleet.start(f"serve{n}", "serve", "--port", str(port))
        key_out, today_run, *links = await asyncio.gather(
            must(env, tmp_path, "apikey", "create", "--name", "load test"),
            must(env, tmp_path, "dunning", "run"),
            *(must(env, tmp_path, "portal-link", ref) for ref in ANSWERERS + PAYERS),
        )
        assert not today_run.strip().splitlines()[-1].startswith("0 "), today_run
        lap("commands")
        fleet.start("worker1", "worker")
        fleet.start("worker2", "worker")
        await _wait_until_up(env, fleet, servers)
        lap("processes")
        yield Cluster(
            folder=tmp_path,
            db_url=env["DATABASE_URL"],
            env=env,
            fleet=fleet,
            servers=servers,
            host=base_url.split("://", 1)[1],
            api_key=key_out.strip().splitlines()[-1],
            links={
                ref: out.strip().split("/p/", 1)[1]
                for ref, out in zip(ANSWERERS + PAYERS, links, strict=True)
            },
            invoices=invoices,
            mail=mail,
            stripe=stripe.StripeClient(
                "sk_test_relance", base_addresses={"api": stripe_emulator.api_base}
            ),
            webhook_secret=webhook_secret,
            timings=timings,
        )
    finally:
        fleet.stop()
        mail.stop()
        admin = await asyncpg.connect(_admin_url())
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


# ------------------------------------------------------------------ the load


@dataclass
class Traffic:
    """Every answer by (what, status); 5xx, transport errors and unexpected statuses kept."""

    cluster: Cluster
    deadline: float
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    turn: int = 0
    addresses: int = 0

    def server(self) -> str:
        self.turn += 1
        return self.cluster.servers[self.turn % len(self.cluster.servers)]

    def client_address(self) -> str:
        """Another customer's address, as the proxy reports it (per-address limits hold)."""
        self.addresses += 1
        return f"198.51.{100 + self.addresses // 250}.{1 + self.addresses % 250}"

    def client(self, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0),
            headers={"host": self.cluster.host, **headers},
        )

    @property
    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def send(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        what: str,
        allowed: set[int],
        *,
        server: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        base = server or self.server()
        shown = SECRET_IN_PATH.sub("/p/[token]", path)
        try:
            r = await client.request(method, base + path, **kwargs)
        except httpx.HTTPError as exc:
            self.problems.append(f"{what}: {method} {shown} on {base}: {type(exc).__name__} {exc}")
            return None
        self.counts[(what, r.status_code)] += 1
        if r.status_code >= 500 or r.status_code not in allowed:
            self.problems.append(
                f"{what}: {method} {shown} on {base} answered {r.status_code}: {r.text[:300]}"
            )
        return r

    def done(self, what: str, statuses: set[int]) -> int:
        return sum(n for (w, s), n in self.counts.items() if w == what and s in statuses)


@contextlib.asynccontextmanager
async def portal_visit(t: Traffic, ref: str) -> AsyncIterator[httpx.AsyncClient | None]:
    """A customer opens the link of a reminder: a client holding the visit's cookie (None
    when the link did not open)."""
    async with t.client(**{"x-forwarded-for": t.client_address()}) as client:
        r = await t.send(client, "GET", f"/p/{t.cluster.links[ref]}", "portal open", {303})
        yield client if r is not None and r.status_code == 303 else None


async def portal_customers(t: Traffic, seed: int) -> None:
    """Visits: statement, sometimes its Excel export, and answers on invoices."""
    rng = random.Random(seed)
    while t.running:
        await asyncio.sleep(rng.uniform(0.05, 0.3))  # first: every `continue` waits too
        async with portal_visit(t, rng.choice(ANSWERERS)) as client:
            if client is None:
                continue
            page = await t.send(client, "GET", "/p/statement", "portal statement", {200})
            if page is None or page.status_code != 200:
                continue
            if rng.random() < 0.2:
                await t.send(client, "GET", "/p/statement.xlsx", "portal xlsx", {200})
            ids = ANSWERABLE.findall(page.text)
            if ids and rng.random() < 0.7:
                chosen = rng.sample(ids, min(len(ids), rng.choice([1, 1, 2])))
                kind = rng.choice(["promise", "dispute", "question", "paid"])
                form: dict[str, Any] = {
                    "_csrf_token": CSRF.search(page.text).group(1),
                    "item": chosen,
                    "kind": kind,
                }
                if kind == "promise":
                    # Due before RUN_DAY less the 3 days' grace: that run finds them broken.
                    form["promise_date"] = (TODAY + timedelta(days=rng.randint(1, 6))).isoformat()
                elif kind == "dispute":
                    form["dispute_reason"] = rng.choice(["price", "quantity", "not_received"])
                    form["text"] = "Not what we ordered."
                elif kind == "paid":
                    form.update(
                        paid_on=TODAY.isoformat(), method="transfer", reference="VIR LOAD TEST"
                    )
                else:
                    form["text"] = "Which purchase order is this?"
                # 422: a colleague answered the same invoice a moment earlier.
                await t.send(client, "POST", "/p/answer", "portal answer", {303, 422}, data=form)


async def _deliver_twice(t: Traffic, kind: str, obj: dict, results: dict) -> None:
    """A signed event, delivered to both servers at the same moment (Stripe retries)."""
    payload, header = signed_event(kind, obj, t.cluster.webhook_secret)
    event_id = json.loads(payload)["id"]
    headers = {"content-type": "application/json", "stripe-signature": header}
    async with t.client() as client:
        answers = await asyncio.gather(
            *(
                t.send(
                    client,
                    "POST",
                    "/webhooks/stripe",
                    "webhook",
                    {200},
                    server=url,
                    content=payload,
                    headers=headers,
                )
                for url in t.cluster.servers
            )
        )
    results[event_id] = sorted(
        a.json().get("result", f"HTTP {a.status_code}") for a in answers if a is not None
    )


async def card_payers(t: Traffic, seed: int, results: dict, paid: list) -> None:
    """Customers paying an invoice by card (localstripe), then Stripe's events, each twice."""
    rng = random.Random(seed)
    conn = await t.cluster.db()
    try:
        while t.running and len(paid) < MAX_CARD_PAYMENTS:
            await asyncio.sleep(rng.uniform(0.1, 0.4))
            async with portal_visit(t, rng.choice(PAYERS)) as client:
                if client is None:
                    continue
                page = await t.send(client, "GET", "/p/pay", "portal pay page", {200})
                if page is None or page.status_code != 200:
                    continue
                ids = PAYABLE.findall(page.text)
                if not ids:
                    continue
                csrf = {"_csrf_token": CSRF.search(page.text).group(1)}
                # 400: paid meanwhile by the ERP; 409: another attempt holds the invoice.
                started = await t.send(
                    client,
                    "POST",
                    "/p/pay/start",
                    "portal pay start",
                    {200, 400, 409},
                    data={**csrf, "item": [rng.choice(ids)]},
                )
                if started is None or started.status_code != 200:
                    continue
                key = started.json()["key"]
                method = await card(t.cluster.stripe, "4242424242424242")
                confirmed = await t.send(
                    client,
                    "POST",
                    "/p/pay/confirm",
                    "portal pay confirm",
                    {200, 400, 409},
                    data={**csrf, "key": key, "payment_method": method},
                )
                if confirmed is None or confirmed.status_code != 200:
                    continue
                if confirmed.json().get("status") != "succeeded":  # 4242...: no 3-D Secure
                    t.problems.append(f"card payment not succeeded: {confirmed.text[:300]}")
                    continue
                intent_id = await conn.fetchval(
                    "SELECT intent_id FROM online_payment WHERE key = $1", key
                )
                paid.append(intent_id)
                intent = plain(await t.cluster.stripe.v1.payment_intents.retrieve_async(intent_id))
                await _deliver_twice(t, "payment_intent.succeeded", intent, results)
                if len(paid) % 2:  # Stripe sends several events about one payment
                    await _deliver_twice(t, "payment_intent.succeeded", intent, results)
                await t.send(client, "GET", f"/p/pay/done/{key}", "portal pay done", {200})
    finally:
        await conn.close()


async def erp(t: Traffic, seed: int, payments: dict) -> None:
    """The ERP: payments applied to invoices (each sent twice), item upserts, statements."""
    rng = random.Random(seed)
    auth = {"authorization": f"Bearer {t.cluster.api_key}"}
    invoices = [i for i in t.cluster.invoices if i.customer_ref not in ANSWERERS]
    n = 0
    async with t.client(**auth) as client:
        while t.running:
            n += 1
            choice = rng.random()
            invoice = rng.choice(invoices)
            if choice < 0.45:
                body = {
                    "ref": f"ERP-{seed}-{n}",
                    "customer_ref": invoice.customer_ref,
                    "received_on": TODAY.isoformat(),
                    "amount": f"{rng.randint(5, 60)}.{rng.randint(0, 99):02d}",
                    "item_number": invoice.number,
                }
                # 400/409: the invoice has less open than that (paid by card meanwhile).
                r = await t.send(
                    client, "POST", "/api/v1/payments", "api payment", {201, 400, 409}, json=body
                )
                if r is not None and r.status_code == 201:
                    payments[body["ref"]] = body
                    again = await t.send(
                        client, "POST", "/api/v1/payments", "api payment again", {200}, json=body
                    )
                    if again is not None and again.status_code == 200 and again.json()["created"]:
                        t.problems.append(f"payment {body['ref']} made twice: {again.text}")
            elif choice < 0.75:
                body = {
                    "customer_ref": invoice.customer_ref,
                    "issue_date": invoice.issue_date.isoformat(),
                    "due_date": invoice.due_date.isoformat(),
                    "currency": "EUR",
                    "total": invoice.total,
                    "po_number": f"PO-{n}",
                }
                # 409: documented ("the row changed under the call; send it again").
                await t.send(
                    client, "PUT", f"/api/v1/items/{invoice.number}", "api item", {200, 409},
                    json=body,
                )  # fmt: skip
            elif choice < 0.85:
                due = TODAY - timedelta(days=rng.randint(1, 60))
                body = {
                    "customer_ref": invoice.customer_ref,
                    "issue_date": (due - timedelta(days=30)).isoformat(),
                    "due_date": due.isoformat(),
                    "currency": "EUR",
                    "total": f"{rng.randint(50, 900)}.00",
                }
                number = f"NEW-{seed}-{n}"
                await t.send(
                    client, "PUT", f"/api/v1/items/{number}", "api new item", {201}, json=body
                )
            else:
                await t.send(
                    client,
                    "GET",
                    f"/api/v1/customers/{invoice.customer_ref}/statement",
                    "api statement",
                    {200},
                )
            await asyncio.sleep(rng.uniform(0.02, 0.15))


async def _sign_in(t: Traffic, client: httpx.AsyncClient, email: str) -> str:
    page = await t.send(client, "GET", "/backoffice/login", "bo login page", {200})
    assert page is not None and page.status_code == 200
    form = {"email": email, "password": PASSWORD, "_csrf_token": CSRF.search(page.text).group(1)}
    r = await t.send(client, "POST", "/backoffice/login", "bo sign in", {303}, data=form)
    assert r is not None and r.status_code == 303, r.text[:500] if r else "no answer"
    page = await t.send(client, "GET", "/backoffice/customers", "bo customers", {200})
    assert page is not None and page.status_code == 200
    return CSRF.search(page.text).group(1)


async def collector(t: Traffic, seed: int, customer_ids: list[int]) -> None:
    """A collector: lists, accounts, the agenda, and the inbox's answers validated."""
    rng = random.Random(seed)
    async with t.client() as client:
        token = await _sign_in(t, client, COLLECTOR)
        while t.running:
            choice = rng.random()
            if choice < 0.3:
                cid = rng.choice(customer_ids)
                await t.send(client, "GET", f"/backoffice/customers/{cid}", "bo account", {200})
            elif choice < 0.45:
                await t.send(client, "GET", "/backoffice/customers", "bo customers", {200})
            elif choice < 0.6:
                await t.send(client, "GET", "/backoffice/agenda", "bo agenda", {200})
            else:
                inbox = await t.send(client, "GET", "/backoffice/feedback", "bo inbox", {200})
                ids = sorted(set(FEEDBACK_FORM.findall(inbox.text))) if inbox else []
                if ids:
                    fid = rng.choice(ids)
                    decision, form = (
                        ("reject", {"reason": "Nothing reached our account."})
                        if rng.random() < 0.25
                        else ("validate", {})
                    )
                    # 303 either way: decided, or "already decided" by the other collector.
                    await t.send(
                        client,
                        "POST",
                        f"/backoffice/feedback/{fid}/{decision}",
                        "bo decide",
                        {303},
                        data={"_csrf_token": token, "return_to": "/backoffice/feedback", **form},
                    )
            await asyncio.sleep(rng.uniform(0.05, 0.3))


async def finance(t: Traffic, seed: int) -> None:
    rng = random.Random(seed)
    pages = ["/backoffice/finance", "/backoffice/payments", "/backoffice/finance/exceptions"]
    async with t.client() as client:
        await _sign_in(t, client, FINANCE)
        while t.running:
            await t.send(client, "GET", rng.choice(pages), "bo finance", {200})
            await asyncio.sleep(rng.uniform(0.2, 0.6))


async def operator(t: Traffic, start_after: float, runs: list) -> None:
    """`relance dunning run --date D`, twice at once, in the middle of the load."""
    await asyncio.sleep(start_after)
    conn = await t.cluster.db()
    try:
        before = await conn.fetchval("SELECT count(*) FROM dunning_action")
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                relance(
                    t.cluster.env, t.cluster.folder, "dunning", "run", "--date", RUN_DAY.isoformat()
                )
                for _ in range(2)
            )
        )
        after = await conn.fetchval("SELECT count(*) FROM dunning_action")
    finally:
        await conn.close()
    runs.append((before, after, time.monotonic() - started, results))


async def guarded(t: Traffic, task: Coroutine[Any, Any, None]) -> None:
    """A load task whose own failure is reported with the rest, the others going on."""
    try:
        await task
    except Exception:
        t.problems.append(f"{task.__name__} stopped: {traceback.format_exc()}")


# ------------------------------------------------------------------ the books


async def _drained(conn: asyncpg.Connection) -> bool:
    """The workers are done: mail sent and recorded, Stripe's events applied."""
    mail = await conn.fetchval(
        "SELECT count(*) FROM outbox_message "
        "WHERE status IN ('queued', 'sending') OR sent_event_pending"
    )
    events = await conn.fetchval(
        "SELECT count(*) FROM stripe_event WHERE status IN ('received', 'failed')"
    )
    return mail + events == 0


def _log_problems(texts: dict[str, str]) -> list[str]:
    found = []
    for name, text in texts.items():
        for line in text.splitlines():
            lowered = line.lower()
            if (
                "deadlock detected" in lowered
                or "locks out of order" in lowered  # receivables.history's lock order
                or "traceback" in lowered
                or '"level": "error"' in lowered
                or '"level": "critical"' in lowered
            ):
                found.append(f"{name}: {line[:2000]}")
    return found


async def test_two_servers_and_two_workers_under_mixed_load(cluster: Cluster):
    began = time.monotonic()
    conn = await cluster.db()
    try:
        customer_ids = [r["id"] for r in await conn.fetch("SELECT id FROM customer ORDER BY id")]
        outbox_at_start = await conn.fetchval("SELECT count(*) FROM outbox_message")
    finally:
        await conn.close()

    t = Traffic(cluster, deadline=time.monotonic() + LOAD_SECONDS)
    events: dict[str, list[str]] = {}
    paid: list[str] = []
    payments: dict[str, dict] = {}
    runs: list = []
    await asyncio.gather(
        *(
            guarded(t, task)
            for task in (
                portal_customers(t, 1),
                portal_customers(t, 2),
                portal_customers(t, 3),
                card_payers(t, 4, events, paid),
                erp(t, 5, payments),
                erp(t, 6, payments),
                collector(t, 7, customer_ids),
                collector(t, 8, customer_ids),
                finance(t, 9),
                operator(t, LOAD_SECONDS * 0.4, runs),
            )
        )
    )
    loaded = time.monotonic()

    conn = await cluster.db()
    try:
        # The workers send what the load queued and apply Stripe's events, within a bound.
        deadline = time.monotonic() + DRAIN_WITHIN
        while not await _drained(conn):
            assert time.monotonic() < deadline, (
                f"the workers did not drain the outbox and Stripe's events in {DRAIN_WITHIN} s: "
                + str(
                    await conn.fetch(
                        "SELECT 'mail' AS what, status, last_error FROM outbox_message "
                        "WHERE status IN ('queued', 'sending') OR sent_event_pending "
                        "UNION ALL SELECT 'event', status, last_error FROM stripe_event "
                        "WHERE status IN ('received', 'failed')"
                    )
                )
            )
            await asyncio.sleep(0.25)
        drained = time.monotonic()
        cluster.fleet.stop()
        stopped = time.monotonic()
        logs = {p.name: p.text() for p in cluster.fleet.processes}
        for _ in range(100):  # their backends gone, their counters are in pg_stat_database
            others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            if await conn.fetchval(others + " AND pid <> pg_backend_pid()") == 0:
                break
            await asyncio.sleep(0.1)
        deadlocks = await conn.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )

        summary = Counter()
        for (what, status), n in t.counts.items():
            summary[f"{what} {status}"] += n
        print(
            "\nsetup "
            + ", ".join(f"{k} {v:.1f} s" for k, v in cluster.timings.items())
            + f"; load {loaded - began:.1f} s, drain {drained - loaded:.1f} s, "
            f"stop {stopped - drained:.1f} s; {sum(t.counts.values())} requests:\n"
            + "\n".join(f"  {k}: {v}" for k, v in sorted(summary.items()))
        )

        # ---- No 5xx, no transport error, no deadlock, no traceback, no error line, no lock
        # taken out of order: in any answer, any process's output, the runs' included.
        outputs = dict(logs)
        for *_, results in runs:
            outputs.update({f"dunning run {n}": r[2] for n, r in enumerate(results, 1)})
        trouble = t.problems + _log_problems(outputs)
        if deadlocks:
            trouble.append(f"Postgres detected {deadlocks} deadlock(s) in the test's database")
        assert not trouble, "\n".join(trouble[:30])
        # ...and the load did what it meant to.
        assert t.done("portal answer", {303}) >= 3
        assert t.done("bo decide", {303}) >= 1
        assert t.done("api payment", {201}) >= 5
        assert len(paid) >= 2, "no card payment went through"

        # ---- Dunning: the two runs on one date made each action once.
        [(before, after, took, results)] = runs
        lines = []
        for code, out, err in results:
            assert code == 0, f"dunning run exited {code}:\n{out}\n{err}"
            lines.append(out.strip().splitlines()[-1])
        created = [int(line.split()[0]) for line in lines]
        print(f"dunning runs on {RUN_DAY} ({took:.1f} s): {lines}")
        assert sum(created) == after - before > 0, (lines, before, after)
        rows = await conn.fetch(
            "SELECT created, finished_at FROM dunning_run WHERE run_on = $1", RUN_DAY
        )
        assert len(rows) == 2 and all(r["finished_at"] for r in rows)
        assert sorted(r["created"] for r in rows) == sorted(created)
        doubled = await conn.fetch(
            "SELECT m.action, m.contact, count(*) FROM dunning_action_message m "
            "JOIN outbox_message o ON o.id = m.message WHERE o.status <> 'cancelled' "
            "GROUP BY m.action, m.contact HAVING count(*) > 1"
        )
        assert not doubled, doubled

        # ---- Mail: each message received once, exactly the ones marked sent.
        received = Counter(cluster.mail.received)
        assert all(n == 1 for n in received.values()), [m for m, n in received.items() if n > 1]
        outbox = await conn.fetch("SELECT message_id, status, kind FROM outbox_message")
        sent = {r["message_id"] for r in outbox if r["status"] == "sent"}
        assert set(received) == sent, (
            f"received but not marked sent: {sorted(set(received) - sent)[:10]}; "
            f"sent but not received: {sorted(sent - set(received))[:10]}"
        )
        by_kind = Counter((r["kind"], r["status"]) for r in outbox)
        print(f"mail: {len(received)} received; outbox {dict(sorted(by_kind.items()))}")
        assert len(outbox) > outbox_at_start  # the load queued mail too
        assert not [r for r in outbox if r["status"] == "failed"]

        # ---- Money: allocations in step with what is open and unapplied.
        items = await conn.fetch(
            "SELECT i.number, i.total_minor, i.open_minor, "
            "COALESCE(sum(a.amount_minor) FILTER (WHERE a.reversed_at IS NULL), 0) AS applied "
            "FROM item i LEFT JOIN allocation a ON a.item = i.id GROUP BY i.id"
        )
        wrong = [dict(r) for r in items if r["total_minor"] - r["applied"] != r["open_minor"]]
        assert not wrong, wrong
        assert all(r["open_minor"] >= 0 for r in items)
        pays = await conn.fetch(
            "SELECT p.ref, p.amount_minor, p.unapplied_minor, "
            "COALESCE(sum(a.amount_minor) FILTER (WHERE a.reversed_at IS NULL), 0) AS applied "
            "FROM payment p LEFT JOIN allocation a ON a.payment = p.id GROUP BY p.id"
        )
        wrong = [dict(r) for r in pays if r["amount_minor"] - r["applied"] != r["unapplied_minor"]]
        assert not wrong, wrong
        refs = Counter(r["ref"] for r in pays)
        assert all(refs[ref] == 1 for ref in payments), "an API payment was recorded twice"
        for ref, body in payments.items():
            row = next(r for r in pays if r["ref"] == ref)
            amount = int(body["amount"].replace(".", ""))
            assert (row["amount_minor"], row["applied"]) == (amount, amount), (ref, dict(row))

        # ---- Stripe: each event applied once, each card payment recorded once.
        # Applied at delivery ("processed") or stored for the workers to apply ("stored"):
        # either way the second delivery is a duplicate.
        assert all(
            results in (["duplicate", "processed"], ["duplicate", "stored"])
            for results in events.values()
        ), events
        stored = await conn.fetch(
            "SELECT event_id, status, attempts FROM stripe_event WHERE event_id = ANY($1)",
            list(events),
        )
        assert len(stored) == len(events)
        assert all((r["status"], r["attempts"]) == ("processed", 1) for r in stored), stored
        online = await conn.fetch(
            "SELECT o.intent_id, o.status, o.amount_minor AS asked, p.amount_minor AS paid "
            "FROM online_payment o LEFT JOIN payment p ON p.id = o.payment "
            "WHERE o.intent_id = ANY($1)",
            paid,
        )
        assert len(online) == len(paid)
        assert all(r["status"] == "succeeded" and r["paid"] == r["asked"] for r in online), online
        recorded = await conn.fetch(
            "SELECT details::jsonb ->> 'payment' AS intent, count(*) FROM history_event "
            "WHERE kind = 'payment.received' AND details::jsonb ->> 'payment' = ANY($1) "
            "GROUP BY 1",
            paid,
        )
        assert sorted(r["count"] for r in recorded) == [1] * len(paid), recorded
    finally:
        await conn.close()

    # ---- History: every chain verifies.
    code, out, err = await relance(cluster.env, cluster.folder, "history", "verify")
    assert code == 0, f"history verify exited {code}:\n{out}\n{err}"
    print(out.strip())
    print(f"total {time.monotonic() - began:.1f} s after setup")
