"""The portal's statement page for a customer with 500 open items, on SQLite and Postgres.

    python bench/portal.py [--seconds 8] [--concurrency 8] [--engines sqlite,postgres]

For each engine: a fresh database with one customer holding 500 open invoices (plus credit
notes and an unapplied payment), then two uvicorn servers in their own processes, measured
in the same run by the same load generator (httpx over TCP, N connections, fixed time):

- relance: the real application: session cookie, visit lookup, build_statement, penalties,
  pending answers, the history entry every full view writes, Jinja;
- bare: a bare Litestar handler running the same two SELECTs and rendering the same
  template (templates/portal/statement.html) with a context built straight from the rows:
  no session, no services, no history write.

Then the 500-row statement PDF: our path (locked URL fetcher, worker thread) against
WeasyPrint rendering the same HTML directly with its default fetcher.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-key-" + "x" * 32
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ITEMS = 500

ITEM_SQL = (
    "SELECT id, number, kind, issue_date, due_date, currency, total_minor, open_minor, status, "
    "promise_date, dispute_reason, comment, po_number, pdf_path FROM item "
    "WHERE customer = {} AND open_minor > 0 AND status != 'cancelled' ORDER BY due_date, id"
)
PAYMENT_SQL = (
    "SELECT id, ref, received_on, method, currency, amount_minor, unapplied_minor FROM payment "
    "WHERE customer = {} AND unapplied_minor > 0 ORDER BY received_on"
)


# ----------------------------------------------------------------------------- data


async def seed(url: str) -> tuple[int, str]:
    """One company, one customer with ITEMS open invoices; returns (customer id, link token)."""
    from receivables import db
    from receivables.access.portal_links import issue_link
    from receivables.access.staff import create_user
    from receivables.ledger.tables import Company, Contact, Customer, Item, Payment

    engine = db.make_engine(url)
    await db.migrate(engine)
    await db.start(engine)
    try:
        collector = await create_user(
            "collector@bench.example", "Camille Durand", "collector", "bench-password-1"
        )
        company = Company(
            code="BENCH",
            name="Atelier Lumière SAS",
            address="12 rue des Ateliers\n69002 Lyon\nFrance",
            email="ar@bench.example",
            logo_path="img/demo-company-logo.svg",
            iban="FR7630006000011234567890189",
            bic="AGRIFRPP",
            locale="fr_FR",
            penalty_policy="france",
            penalty_margin_bp=1000,
            compensation_minor=4000,
        )
        await company.save()
        customer = Customer(
            company=company.id,
            ref="C0500",
            name="Hôtel des Arts SA",
            address="57 avenue Lambert\nFR",
            language="en",
            collector=collector.id,
        )
        await customer.save()
        contact = Contact(customer=customer.id, name="Pierre Evans", email="ap@buyer.example")
        await contact.save()
        today = date.today()
        rows = []
        for n in range(ITEMS):
            due = today + timedelta(days=(n % 180) - 120)
            minor = 10_000 + (n * 7919) % 900_000
            rows.append(
                Item(
                    company=company.id,
                    customer=customer.id,
                    kind="credit_note" if n % 50 == 0 else "invoice",
                    number=f"F{30000 + n}",
                    issue_date=due - timedelta(days=30),
                    due_date=due,
                    currency="EUR",
                    total_minor=minor,
                    open_minor=minor if n % 7 else minor // 2,
                    po_number=f"PO-{1000 + n}" if n % 3 == 0 else "",
                )
            )
        await Item.insert(*rows)
        await Payment(
            company=company.id,
            customer=customer.id,
            ref="VIR-1",
            received_on=today,
            currency="EUR",
            amount_minor=35_000,
            unapplied_minor=35_000,
        ).save()
        issued = await issue_link(
            customer=customer,
            contact=contact,
            secret_key=SECRET,
            base_url="http://127.0.0.1",
            days=60,
            issued_by="bench",
        )
        return customer.id, issued.token
    finally:
        await db.stop(engine)


async def create_pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"relance_bench_portal_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return name, f"postgres://postgres@127.0.0.1:5432/{name}"


async def drop_pg_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.close()


# ----------------------------------------------------------------------------- servers


def bare_app(url: str, customer_id: int):
    """The same SQL and template as the portal's statement page, and nothing else."""
    from litestar import Litestar, MediaType, get
    from litestar.params import FromQuery

    from app import template_environment
    from portal.display import PAGE_ROWS
    from receivables import db
    from receivables.ledger.statement import (
        CurrencyTotals,
        OpenItem,
        Statement,
        UnappliedPayment,
        bucket_for,
    )
    from receivables.ledger.tables import Company, Customer
    from receivables.money import Money

    engine = db.make_engine(url)
    db.use_engine(engine)
    env = template_environment()
    template = env.get_template("portal/statement.html")

    def listing(every: bool) -> SimpleNamespace:
        return SimpleNamespace(
            show="all",
            sort="",
            order="asc",
            every=every,
            query=lambda **kw: "?show=" + kw.get("show", "all"),
            sort_link=lambda key: f"?sort={key}",
            all_rows_link=lambda: "?rows=all",
            aria_sort=lambda key: "none",
        )

    @get("/statement", media_type=MediaType.HTML)
    async def statement(rows: FromQuery[str | None] = None) -> str:
        every = rows == "all"
        today = date.today()
        customer = (await Customer.raw(f"SELECT * FROM customer WHERE id = {customer_id}"))[0]
        company = (await Company.raw(f"SELECT * FROM company WHERE id = {customer['company']}"))[0]
        items = await Company.raw(ITEM_SQL.format(customer_id))
        payments = await Company.raw(PAYMENT_SQL.format(customer_id))
        zero = Money.zero("EUR")
        totals = CurrencyTotals("EUR", zero, zero, zero, zero, {})
        st = Statement(
            company=SimpleNamespace(**company),
            customer=SimpleNamespace(**customer),
            on=today,
            totals={"EUR": totals},
        )
        lines = []
        for r in items:
            due = (
                r["due_date"]
                if isinstance(r["due_date"], date)
                else date.fromisoformat(r["due_date"])
            )
            issued = (
                r["issue_date"]
                if isinstance(r["issue_date"], date)
                else date.fromisoformat(r["issue_date"])
            )
            line = OpenItem(
                id=r["id"],
                number=r["number"],
                kind=r["kind"],
                issue_date=issued,
                due_date=due,
                total=Money.from_minor(r["total_minor"], r["currency"]),
                open=Money.from_minor(r["open_minor"], r["currency"]),
                days_late=max(0, (today - due).days),
                status=r["status"],
                promise_date=None,
                dispute_reason="",
                comment="",
                po_number=r["po_number"],
                has_pdf=False,
            )
            if line.kind == "credit_note":
                st.credit_notes.append(line)
                totals.credit_notes += line.open
                continue
            st.invoices.append(line)
            if line.overdue:
                totals.overdue += line.open
            else:
                totals.not_due += line.open
            bucket_for(line.days_late)
            badge = "overdue" if line.overdue else "open"
            lines.append(
                SimpleNamespace(
                    item=line,
                    status="Overdue" if line.overdue else "Coming due",
                    badge=badge,
                    note="",
                    answerable=True,
                    awaiting=False,
                )
            )
        for p in payments:
            received = p["received_on"]
            if not isinstance(received, date):
                received = date.fromisoformat(received)
            pay = UnappliedPayment(
                p["id"],
                p["ref"],
                received,
                p["method"],
                Money.from_minor(p["amount_minor"], "EUR"),
                Money.from_minor(p["unapplied_minor"], "EUR"),
            )
            st.unapplied_payments.append(pay)
            totals.unapplied_payments += pay.unapplied
        st.invoices.sort(key=lambda i: (not i.overdue, i.due_date, i.id))
        lines.sort(key=lambda r: (not r.item.overdue, r.item.due_date, r.item.id))
        overdue = sum(1 for i in st.invoices if i.overdue)
        return template.render(
            _=lambda message, **kw: message.format(**kw) if kw else message,
            lang="en",
            locale="en_GB",
            languages=("en", "fr"),
            csrf_token="x" * 40,
            visit=SimpleNamespace(contact_name="Pierre Evans"),
            statement=st,
            company=st.company,
            customer=st.customer,
            penalties=None,
            collector=None,
            rows=lines if every else lines[:PAGE_ROWS],
            rows_total=len(lines),
            listing=listing(every),
            counts={"all": len(st.invoices), "overdue": overdue, "due": len(lines) - overdue},
            credit_rows=[(c, "Credit note", "muted", "") for c in st.credit_notes],
            iban="FR76 3000 6000 0112 3456 7890 189",
            penalty_rate="",
            several_currencies=False,
            answered=0,
        )

    async def start() -> None:
        await db.start(engine)

    async def stop() -> None:
        await db.stop(engine)

    return Litestar([statement], on_startup=[start], on_shutdown=[stop])


def serve(kind: str, url: str, port: int, customer_id: int) -> None:
    import uvicorn

    if kind == "relance":
        from app import create_app
        from receivables.settings import load_settings

        settings = load_settings(
            {
                "SECRET_KEY": SECRET,
                "DATABASE_URL": url,
                "BASE_URL": f"http://127.0.0.1:{port}",
                "DOCUMENTS_DIR": tempfile.mkdtemp(prefix="relance-bench-docs-"),
            }
        )
        application = create_app(settings)
    else:
        application = bare_app(url, customer_id)
    uvicorn.run(application, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, kind: str, url: str, customer_id: int):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, __file__, "serve", kind, url, str(self.port), str(customer_id)]
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ----------------------------------------------------------------------------- load


async def load(base: str, path: str, cookies: dict, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, cookies=cookies, limits=limits, timeout=30) as c:
        for _ in range(3):  # warm-up: imports, template compilation, pools
            await c.get(path)
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                r = await c.get(path)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200 or len(r.content) < 20_000:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "n": len(latencies),
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "rps": len(latencies) / elapsed,
        "errors": errors,
    }


async def portal_cookie(base: str, token: str) -> dict:
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.get(f"/p/{token}")
        assert r.status_code == 303, r.status_code
        return {"relance_portal": r.cookies["relance_portal"]}


# ----------------------------------------------------------------------------- PDF


async def pdf_figures(url: str, customer_id: int, runs: int) -> dict:
    """Our PDF path against WeasyPrint with its default fetcher, on the same HTML."""
    import weasyprint

    from app import template_environment
    from portal.access import page_context
    from portal.display import Listing, statement_context
    from receivables import db
    from receivables.documents.pdf import Assets, render_pdf_async
    from receivables.portal.account import account_view

    engine = db.make_engine(url)
    db.use_engine(engine)
    await db.start(engine)
    try:
        view = await account_view(customer_id, date.today())
    finally:
        await db.stop(engine)
    ctx = page_context("en", view.statement.company.locale)
    ctx.update(
        statement_context(
            view, None, ctx["_"], ctx["locale"], Listing.parse(None, None, None, "all")
        )
    )
    html = template_environment().get_template("documents/statement.html").render(ctx)
    assets = Assets(static_dir=ROOT / "static", documents_dir=Path(tempfile.mkdtemp()))
    ours, direct, ours_cpu, direct_cpu = [], [], [], []
    pages = 0
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        pdf = await render_pdf_async(html, assets)
        ours.append(time.perf_counter() - t0)
        ours_cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        document = weasyprint.HTML(string=html, base_url=assets.base_url).render()
        document.write_pdf()
        direct.append(time.perf_counter() - t0)
        direct_cpu.append(time.process_time() - c0)
        pages = len(document.pages)
    import io

    from pypdf import PdfReader

    assert len(PdfReader(io.BytesIO(pdf)).pages) == pages
    return {
        "rows": len(view.statement.invoices) + len(view.statement.credit_notes),
        "pages": pages,
        "ours": statistics.median(ours),
        "direct": statistics.median(direct),
        "ours_cpu": statistics.median(ours_cpu),
        "direct_cpu": statistics.median(direct_cpu),
    }


# ----------------------------------------------------------------------------- main


async def bench_engine(engine: str, seconds: float, concurrency: int, pdf_runs: int) -> None:
    pg_name = None
    if engine == "postgres":
        pg_name, url = await create_pg_database()
    else:
        folder = Path(tempfile.mkdtemp(prefix="relance-bench-"))
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
    try:
        customer_id, token = await seed(url)
        relance = Server("relance", url, customer_id)
        bare = Server("bare", url, customer_id)
        try:
            relance.wait()
            bare.wait()
            cookies = await portal_cookie(relance.base, token)
            figures = [
                (
                    "relance, first 100 rows",
                    await load(relance.base, "/p/statement", cookies, seconds, concurrency),
                ),
                (
                    "bare, first 100 rows",
                    await load(bare.base, "/statement", {}, seconds, concurrency),
                ),
                (
                    "relance, all 500 rows",
                    await load(
                        relance.base, "/p/statement?rows=all", cookies, seconds, concurrency
                    ),
                ),
                (
                    "bare, all 500 rows",
                    await load(bare.base, "/statement?rows=all", {}, seconds, concurrency),
                ),
            ]
            async with httpx.AsyncClient(base_url=relance.base, cookies=cookies, timeout=60) as c:
                t0 = time.perf_counter()
                r = await c.get("/p/statement.pdf")
                endpoint_pdf = time.perf_counter() - t0
                assert r.status_code == 200
        finally:
            relance.stop()
            bare.stop()
        print(
            f"\n{engine}: statement page, {ITEMS} open items, {concurrency} connections, "
            f"{seconds:.0f} s each"
        )
        print(f"  {'':<34}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'requests':>10}{'errors':>8}")
        for label, fig in figures:
            print(
                f"  {label:<34}{fig['p50']:>9.1f}{fig['p99']:>9.1f}{fig['rps']:>9.1f}"
                f"{fig['n']:>10}{fig['errors']:>8}"
            )
        pdf = await pdf_figures(url, customer_id, pdf_runs)
        print(
            f"  statement PDF, {pdf['rows']} rows, {pdf['pages']} pages (median of {pdf_runs}): "
            f"ours {pdf['ours']:.2f} s ({pdf['ours_cpu']:.2f} s CPU), WeasyPrint directly "
            f"{pdf['direct']:.2f} s ({pdf['direct_cpu']:.2f} s CPU); "
            f"GET /p/statement.pdf end to end {endpoint_pdf:.2f} s"
        )
    finally:
        if pg_name:
            await drop_pg_database(pg_name)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _, _, kind, url, port, customer_id = sys.argv
        serve(kind, url, int(port), int(customer_id))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--pdf-runs", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Portal bench on {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, "
        f"load average {load:.1f} at start"
    )
    for engine in args.engines.split(","):
        asyncio.run(bench_engine(engine.strip(), args.seconds, args.concurrency, args.pdf_runs))


if __name__ == "__main__":
    main()
