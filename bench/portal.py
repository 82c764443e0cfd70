"""The portal's statement page for a customer with 500 open items, on SQLite and Postgres.

    python bench/portal.py [--seconds 8] [--rounds 4] [--concurrency 8]
                           [--engines sqlite,postgres] [--pdf-runs 3]

For each engine: a fresh database with one customer holding 500 open invoices (plus credit
notes and an unapplied payment), then two uvicorn servers in their own processes, measured
in the same run by the same load generator (httpx over TCP, N connections, fixed time):

- relance: the real application: session cookie, visit lookup, build_statement, penalties,
  pending answers, the history entry every full view writes, Jinja;
- bare: a bare Litestar handler doing the same work written straight: the same session
  lookup (`visit_for`), the same SELECTs as raw SQL, the rows turned into the statement's
  lines in one loop, the same penalties (`statement_penalties`: the company's terms, the
  claim book, `penalties_for`), the same template (templates/portal/statement.html) with
  the same translator and locale; no dependency injection or portal middleware, no
  pending answers or collector, no history write.

After a warm-up of both, `--rounds` rounds of `--seconds` per side, the order alternating
(ours first, then bare first, ...), for the first 100 rows and for all 500; per round the
ratio ours/bare in requests per second, then p50/p99 over every request of the rounds, the
median ratio, each server's CPU per request (/proc: holds whatever else the machine runs)
and its RSS and peak RSS (/proc VmHWM).

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

CUSTOMER_SQL = "SELECT * FROM customer WHERE id = {}"
COMPANY_SQL = "SELECT * FROM company WHERE id = {}"
ITEM_SQL = (
    "SELECT id, number, kind, issue_date, due_date, currency, total_minor, open_minor, status, "
    "promise_date, dispute_reason, comment, po_number, pdf_path, pending_answer FROM item "
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
    """The same session lookup, SQL, penalties and template as the portal's statement page,
    written straight: raw SQL, rows to lines in one loop, the template rendered with the
    same words and locale. What it leaves out is what our layers add: Litestar's dependency
    injection and the portal's middleware, Piccolo's query building, the account view's
    services (pending answers, collector), labels per row, and the history event each full
    view writes."""
    from litestar import Litestar, MediaType, Request, get
    from litestar.params import FromQuery

    from app import template_environment
    from portal.access import SESSION_COOKIE, page_context
    from portal.display import KINDS, METHODS, PAGE_ROWS, REASONS
    from receivables import db
    from receivables.dunning.reference_rates import statement_penalties
    from receivables.ledger.statement import (
        OpenItem,
        Statement,
        UnappliedPayment,
        _totals_for,
        hold_of,
    )
    from receivables.ledger.tables import Company, Customer
    from receivables.money import Money
    from receivables.portal.sessions import visit_for

    engine = db.make_engine(url)
    db.use_engine(engine)
    env = template_environment()
    template = env.get_template("portal/statement.html")

    def as_date(value):
        return value if isinstance(value, date) or value is None else date.fromisoformat(value)

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
    async def statement(request: Request, rows: FromQuery[str | None] = None) -> str:
        visit = await visit_for(request.cookies.get(SESSION_COOKIE), SECRET)
        assert visit is not None
        every = rows == "all"
        today = date.today()
        customer = (await Customer.raw(CUSTOMER_SQL, visit.customer_id))[0]
        company = Company(**(await Company.raw(COMPANY_SQL, customer["company"]))[0])
        items = await Company.raw(ITEM_SQL, visit.customer_id)
        payments = await Company.raw(PAYMENT_SQL, visit.customer_id)
        totals = _totals_for("EUR")
        st = Statement(
            company=company,
            customer=SimpleNamespace(**customer),  # type: ignore[arg-type]
            on=today,
            totals={"EUR": totals},
        )
        lines = []
        for r in items:
            due = as_date(r["due_date"])
            line = OpenItem(
                id=r["id"],
                number=r["number"],
                kind=r["kind"],
                issue_date=as_date(r["issue_date"]),
                due_date=due,
                total=Money.from_minor(r["total_minor"], r["currency"]),
                open=Money.from_minor(r["open_minor"], r["currency"]),
                days_late=max(0, (today - due).days),
                status=r["status"],
                promise_date=as_date(r["promise_date"]),
                dispute_reason=r["dispute_reason"],
                comment=r["comment"],
                po_number=r["po_number"],
                has_pdf=bool(r["pdf_path"]),
                pending_answer=r["pending_answer"],
                hold=hold_of(r["status"], as_date(r["promise_date"]), r["pending_answer"], today)
                if r["kind"] == "invoice"
                else "",
            )
            if line.kind == "credit_note":
                st.credit_notes.append(line)
                totals.credit_notes += line.open
                continue
            st.invoices.append(line)
            if line.held:
                totals.on_hold += line.open
            elif line.overdue:
                totals.overdue += line.open
            else:
                totals.not_due += line.open
            totals.buckets[line.bucket] += line.open
        for p in payments:
            pay = UnappliedPayment(
                p["id"],
                p["ref"],
                as_date(p["received_on"]),
                p["method"],
                Money.from_minor(p["amount_minor"], p["currency"]),
                Money.from_minor(p["unapplied_minor"], p["currency"]),
            )
            st.unapplied_payments.append(pay)
            totals.unapplied_payments += pay.unapplied
        st.invoices.sort(key=lambda i: (not i.overdue, i.due_date, i.id))
        penalties = await statement_penalties(st)
        ctx = page_context(visit.language, company.locale, csrf_token=visit.csrf_token)
        t = ctx["t"]
        shown = st.invoices if every else st.invoices[:PAGE_ROWS]
        lines = [
            SimpleNamespace(
                item=line,
                status=t("Overdue") if line.overdue else t("Coming due"),
                badge="overdue" if line.overdue else "open",
                note="",
                answerable=True,
                awaiting=False,
            )
            for line in shown
        ]
        overdue = sum(1 for i in st.invoices if i.overdue)
        return template.render(
            **ctx,
            visit=visit,
            statement=st,
            company=st.company,
            customer=st.customer,
            penalties=penalties,
            collector=None,
            rows=lines,
            rows_total=len(st.invoices),
            listing=listing(every),
            counts={
                "all": len(st.invoices),
                "overdue": overdue,
                "due": len(st.invoices) - overdue,
                "to_pay": len(st.overdue),
                "on_hold": len(st.on_hold),
            },
            reasons=REASONS,
            methods=METHODS,
            kinds=KINDS,
            credit_rows=[(c, t("Credit note"), "muted", "") for c in st.credit_notes],
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


def cpu_seconds(pid: int) -> float:
    """CPU (user + system) a process has used so far, from /proc: a server's cost per request
    whatever else the machine runs."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    base: str, path: str, cookies: dict, pid: int, seconds: float, concurrency: int
) -> dict:
    """`concurrency` connections requesting `path` back to back for `seconds`."""
    cpu_before = cpu_seconds(pid)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, cookies=cookies, limits=limits, timeout=30) as c:
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
    cpu = cpu_seconds(pid) - cpu_before
    return {
        "latencies": latencies,
        "rps": len(latencies) / elapsed,
        "errors": errors,
        "cpu_ms": 1000 * cpu / max(1, len(latencies)),
    }


def summary(runs: list[dict]) -> dict:
    latencies = sorted(x for run in runs for x in run["latencies"])
    return {
        "n": len(latencies),
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "rps": statistics.median(run["rps"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "cpu_ms": statistics.median(run["cpu_ms"] for run in runs),
    }


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS now, peak RSS) of a process, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


async def compare(
    ours: tuple[str, str, dict, int],
    bare: tuple[str, str, dict, int],
    seconds: float,
    concurrency: int,
    rounds: int,
) -> tuple[dict, dict, list[float]]:
    """Warm-up of both, then `rounds` rounds of each, the order alternating (ours first, then
    bare first...): the machine's drift falls on both sides alike."""
    for side in (ours, bare):
        await load(*side, min(2.0, seconds), concurrency)
    mine: list[dict] = []
    theirs: list[dict] = []
    ratios = []
    for r in range(rounds):
        if r % 2 == 0:
            a = await load(*ours, seconds, concurrency)
            b = await load(*bare, seconds, concurrency)
        else:
            b = await load(*bare, seconds, concurrency)
            a = await load(*ours, seconds, concurrency)
        mine.append(a)
        theirs.append(b)
        ratios.append(a["rps"] / b["rps"])
        print(
            f"    round {r + 1} ({'ours' if r % 2 == 0 else 'bare'} first): ours "
            f"{a['rps']:.1f} req/s ({a['cpu_ms']:.1f} ms CPU each), bare {b['rps']:.1f} req/s "
            f"({b['cpu_ms']:.1f} ms CPU each), ratio {ratios[-1]:.2f}; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return summary(mine), summary(theirs), ratios


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
            view, None, ctx["t"], ctx["locale"], Listing.parse(None, None, None, "all")
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


async def bench_engine(
    engine: str, seconds: float, concurrency: int, pdf_runs: int, rounds: int
) -> None:
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
            figures = []
            for label, query in (("first 100 rows", ""), ("all 500 rows", "?rows=all")):
                print(f"  {engine}, {label}:", flush=True)
                ours, theirs, ratios = await compare(
                    (relance.base, "/p/statement" + query, cookies, relance.proc.pid),
                    (bare.base, "/statement" + query, cookies, bare.proc.pid),
                    seconds,
                    concurrency,
                    rounds,
                )
                figures.append((label, ours, theirs, ratios))
            memory = {
                "relance": memory_mib(relance.proc.pid),
                "bare": memory_mib(bare.proc.pid),
            }
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
            f"{rounds} alternated rounds of {seconds:.0f} s per side after a warm-up"
        )
        print(
            f"  {'':<26}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'CPU ms':>8}{'requests':>10}"
            f"{'errors':>8}{'ours/bare':>11}"
        )
        for label, ours, theirs, ratios in figures:
            for side, fig in (("relance", ours), ("bare", theirs)):
                extra = (
                    f"{statistics.median(ratios):>11.2f} (rounds: "
                    + ", ".join(f"{x:.2f}" for x in ratios)
                    + ")"
                    if side == "relance"
                    else ""
                )
                print(
                    f"  {side + ', ' + label:<26}{fig['p50']:>9.1f}{fig['p99']:>9.1f}"
                    f"{fig['rps']:>9.1f}{fig['cpu_ms']:>8.1f}{fig['n']:>10}{fig['errors']:>8}{extra}"
                )
        for side, (rss, peak) in memory.items():
            print(
                f"  {side} server memory after the rounds: RSS {rss:.0f} MiB, peak {peak:.0f} MiB"
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
    parser.add_argument("--rounds", type=int, default=4, help="alternated rounds per side")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Portal bench on {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, "
        f"load average {load:.1f} at start"
    )
    for engine in args.engines.split(","):
        asyncio.run(
            bench_engine(engine.strip(), args.seconds, args.concurrency, args.pdf_runs, args.rounds)
        )


if __name__ == "__main__":
    main()
