"""The daily dunning run over 100k customers and 1M items, on Postgres and SQLite.

    python bench/dunning_run.py [--customers 100000] [--items 10] [--engines postgres,sqlite]

Builds a fresh database per engine and bulk-loads it directly (COPY on Postgres,
executemany in one transaction on SQLite; no history for the fixture rows): one company
with the default scenarios, N customers across the seven payer profiles with one contact
each, `items` invoices per customer (due dates from 150 days ago to 60 days ahead, the older
the likelier paid, a few disputed or promised), and each customer's cycle as the daily runs of the
past would have left it (its latest step made). Then times `run_dunning` for today (the
steady state: the customers whose next step falls today, broken promises, stale tasks),
and the same run again (idempotent: a full scan that creates nothing), each with this
process's RSS sampled every 100 ms (start, quarters, end, peak: flat memory shows as
quarters that do not climb). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

from receivables import db
from receivables.dunning.cycle import PlannedStep, cycle_key, step_date
from receivables.dunning.defaults import install_defaults
from receivables.dunning.reference_rates import ensure_seeded
from receivables.dunning.run import _Plan, run_dunning
from receivables.ledger.tables import Company, PayerProfile
from receivables.settings import load_settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PROFILES = [p.value for p in PayerProfile]
WEIGHTS = [20, 10, 3, 10, 7, 10, 40]  # negligent ... good payer
TODAY = date.today()
NOW = datetime.now(UTC)


def generate(customers: int, per_customer: int, plan: _Plan, company_id: int):
    """Rows for customer, contact, item and dunning_action (as tuples, ids explicit)."""
    rnd = random.Random(2026)
    c_rows, k_rows, i_rows, a_rows = [], [], [], []
    item_id = 0
    for cid in range(1, customers + 1):
        profile = rnd.choices(PROFILES, WEIGHTS)[0]
        c_rows.append((cid, company_id, f"C{cid:07d}", f"Customer {cid} SAS", profile, "en"))
        k_rows.append((cid, cid, f"Clerk {cid}", f"ap{cid}@customer{cid}.example"))
        driving = []
        for _ in range(per_customer):
            item_id += 1
            due = TODAY + timedelta(days=rnd.randint(-150, 60))
            total = rnd.randint(10_000, 2_000_000)
            late = (TODAY - due).days
            # Most customers pay: the older an invoice, the likelier it is settled.
            paid = 0.95 if late > 60 else 0.8 if late > 30 else 0.5 if late > 0 else 0.05
            roll = rnd.random()
            status, open_minor, promise = "open", total, None
            if roll < paid:
                status, open_minor = "paid", 0
            elif roll < paid + 0.01:
                status = "disputed"
            elif roll < paid + 0.02:
                status, promise = "promised", TODAY + timedelta(days=rnd.choice([-1, 5]))
            i_rows.append(
                (
                    item_id,
                    company_id,
                    cid,
                    f"INV{item_id:08d}",
                    due - timedelta(days=30),
                    due,
                    total,
                    open_minor,
                    status,
                    promise,
                )
            )
            if status == "open" and due - timedelta(days=30) < TODAY:
                driving.append((due, item_id, open_minor))
        steps = plan.steps.get(plan.default[(company_id, profile)], [])
        if not driving or not steps:
            continue
        anchor = min(d for d, _, _ in driving)
        yesterday = TODAY - timedelta(days=1)
        # The daily runs of the past made every step on its date: the latest one stands.
        made = [
            s
            for s in steps
            if step_date(anchor, s.offset_days) <= yesterday
            and not (s.offset_days < 0 and yesterday > anchor)
        ]
        if made:
            last: PlannedStep = max(made, key=lambda s: s.order)
            snapshot = json.dumps(
                [
                    {
                        "id": i,
                        "number": f"INV{i:08d}",
                        "due": str(d),
                        "open_minor": o,
                        "currency": "EUR",
                        "status": "open",
                    }
                    for d, i, o in sorted(driving)
                ],
                separators=(",", ":"),
            )
            a_rows.append(
                (
                    company_id,
                    cid,
                    last.scenario_id,
                    last.id,
                    last.name,
                    last.level,
                    last.channel,
                    last.mode,
                    last.offset_days,
                    last.template_code,
                    anchor,
                    cycle_key(
                        cid,
                        last.id,
                        escalation=0 if last.pre_dunning else 1,
                        anchor=anchor if last.pre_dunning else None,
                    ),
                    step_date(anchor, last.offset_days),
                    "done",
                    snapshot,
                    0 if last.pre_dunning else 1,
                    step_date(anchor, last.offset_days),
                )
            )
    return c_rows, k_rows, i_rows, a_rows


async def load_postgres(conn: asyncpg.Connection, rows) -> None:
    c_rows, k_rows, i_rows, a_rows = rows
    await conn.copy_records_to_table(
        "customer",
        columns=[
            "id",
            "company",
            "ref",
            "name",
            "payer_profile",
            "language",
            "address",
            "country",
            "blocked",
            "blocked_reason",
            "currency",
            "created_at",
            "updated_at",
        ],
        records=[(*r, "", "FR", False, "", "EUR", NOW, NOW) for r in c_rows],
    )
    await conn.copy_records_to_table(
        "contact",
        columns=[
            "id",
            "customer",
            "name",
            "email",
            "phone",
            "role",
            "language",
            "receives_reminders",
        ],
        records=[(*r, "", "Accounts payable", "", True) for r in k_rows],
    )
    await conn.copy_records_to_table(
        "item",
        columns=[
            "id",
            "company",
            "customer",
            "number",
            "issue_date",
            "due_date",
            "total_minor",
            "open_minor",
            "status",
            "promise_date",
            "kind",
            "currency",
            "po_number",
            "pdf_path",
            "dispute_reason",
            "comment",
            "created_at",
            "updated_at",
        ],
        records=[
            (*r, "invoice", "EUR", "", "", "price" if r[8] == "disputed" else "", "", NOW, NOW)
            for r in i_rows
        ],
    )
    await conn.copy_records_to_table(
        "dunning_action",
        columns=[
            "company",
            "customer",
            "scenario",
            "step",
            "step_name",
            "level",
            "channel",
            "mode",
            "offset_days",
            "template_code",
            "cycle_start",
            "cycle_key",
            "due_on",
            "status",
            "items",
            "escalation",
            "done_on",
            "attach_statement",
            "attach_invoices",
            "held_reason",
            "outcome",
            "done_by",
            "letter_path",
            "letter_sha256",
            "created_at",
        ],
        records=[(*r, False, False, "", "", "bench", "", "", NOW) for r in a_rows],
    )
    for table in ("customer", "contact", "item", "dunning_action"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
        )
    await conn.execute("ANALYZE")


def load_sqlite(path: Path, rows) -> None:
    c_rows, k_rows, i_rows, a_rows = rows
    now = NOW.isoformat(sep=" ")
    con = sqlite3.connect(path)
    with con:
        con.executemany(
            "INSERT INTO customer (id, company, ref, name, payer_profile, language, address, "
            "country, blocked, blocked_reason, currency, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, '', 'FR', 0, '', 'EUR', ?, ?)",
            [(*r, now, now) for r in c_rows],
        )
        con.executemany(
            "INSERT INTO contact (id, customer, name, email, phone, role, language, "
            "receives_reminders) VALUES (?, ?, ?, ?, '', 'Accounts payable', '', 1)",
            k_rows,
        )
        con.executemany(
            "INSERT INTO item (id, company, customer, number, issue_date, due_date, total_minor, "
            "open_minor, status, promise_date, kind, currency, po_number, pdf_path, "
            "dispute_reason, comment, created_at, updated_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'invoice', 'EUR', '', '', ?, '', ?, ?)",
            [
                (
                    *r[:4],
                    r[4].isoformat(),
                    r[5].isoformat(),
                    *r[6:9],
                    r[9].isoformat() if r[9] else None,
                    "price" if r[8] == "disputed" else "",
                    now,
                    now,
                )
                for r in i_rows
            ],
        )
        con.executemany(
            "INSERT INTO dunning_action (company, customer, scenario, step, step_name, level, "
            "channel, mode, offset_days, template_code, cycle_start, cycle_key, due_on, status, "
            "items, escalation, done_on, attach_statement, attach_invoices, held_reason, outcome, "
            "done_by, letter_path, letter_sha256, created_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', '', 'bench', '', '', ?)",
            [
                (
                    *r[:10],
                    r[10].isoformat(),
                    r[11],
                    r[12].isoformat(),
                    *r[13:15],
                    r[15],
                    r[16].isoformat(),
                    now,
                )
                for r in a_rows
            ],
        )
    con.execute("ANALYZE")
    con.close()


def rss_mib() -> float:
    """This process's resident memory now (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def backend_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each of these processes (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


async def backends(database: str) -> list[int]:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await admin.close()
    return [r["pid"] for r in rows]


class Memory:
    """RSS sampled every 100 ms while a run goes on: flat memory shows as a peak close to
    the start and quarters that do not climb."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    @contextlib.asynccontextmanager
    async def sampling(self):
        self.samples = [rss_mib()]

        async def sample() -> None:
            while True:
                await asyncio.sleep(0.1)
                self.samples.append(rss_mib())

        task = asyncio.create_task(sample())
        try:
            yield
        finally:
            task.cancel()
            self.samples.append(rss_mib())

    def line(self) -> str:
        s = self.samples
        quarters = [s[min(len(s) - 1, len(s) * q // 4)] for q in range(1, 4)]
        return (
            f"RSS at start {s[0]:.0f} MiB, at 1/4, 1/2, 3/4 of the run "
            f"{', '.join(f'{q:.0f}' for q in quarters)} MiB, at the end {s[-1]:.0f} MiB, "
            f"peak {max(s):.0f} MiB (+{max(s) - s[0]:.0f}), {len(s)} samples"
        )


async def bench(name: str, customers: int, per_customer: int, folder: Path) -> None:
    pg_name = None
    if name == "postgres":
        pg_name = f"relance_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = f"postgres://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite:///{folder / 'bench-dunning.sqlite3'}"
    engine = db.make_engine(url)
    settings = load_settings(
        {"SECRET_KEY": "bench-" + "k" * 40, "DATABASE_URL": url, "BASE_URL": "https://pay.example"}
    )
    try:
        await db.migrate(engine)
        await db.start(engine)
        company = Company(
            code="BENCH",
            name="Bench Seller SAS",
            penalty_policy="france",
            penalty_margin_bp=1000,
            compensation_minor=4000,
            locale="fr_FR",
        )
        await company.save()
        await install_defaults(company.id)
        await ensure_seeded()
        plan = _Plan()
        await plan.load()
        t0 = time.perf_counter()
        rows = generate(customers, per_customer, plan, company.id)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        if name == "postgres":
            conn = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
            await load_postgres(conn, rows)
            await conn.close()
        else:
            load_sqlite(folder / "bench-dunning.sqlite3", rows)
        t_load = time.perf_counter() - t0
        print(
            f"[{name}] fixture: {len(rows[0]):,} customers, {len(rows[2]):,} items, "
            f"{len(rows[3]):,} cycles in progress; generated in {t_gen:.1f} s, "
            f"loaded in {t_load:.1f} s"
        )
        del rows  # the fixture's lists are not the run's memory
        gc.collect()
        memory = Memory()
        pg_before = backend_cpu(await backends(pg_name)) if pg_name else {}
        t0, c0 = time.perf_counter(), time.process_time()
        async with memory.sampling():
            report = await run_dunning(TODAY, settings, triggered_by="bench")
        t_run, c_run = time.perf_counter() - t0, time.process_time() - c0
        if pg_name:
            pg_after = backend_cpu(await backends(pg_name))
            pg_cpu = sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items())
            print(
                f"[{name}] CPU used by the run: {c_run:.1f} s in this process, {pg_cpu:.1f} s in "
                f"its Postgres backends ({c_run + pg_cpu:.1f} s in all, against {t_run:.1f} s "
                "of wall time)"
            )
        print(
            f"[{name}] run {TODAY}: {t_run:.1f} s ({c_run:.1f} s CPU in this process, load "
            f"average {os.getloadavg()[0]:.1f}) for {report.customers:,} customers with open "
            f"items ({report.customers / t_run:,.0f} customers/s): {report.line()}; "
            f"{report.broken_promises:,} broken promises marked, {report.held:,} held"
        )
        print(f"[{name}] memory during the run: {memory.line()}")
        memory = Memory()
        t0 = time.perf_counter()
        async with memory.sampling():
            again = await run_dunning(TODAY, settings, triggered_by="bench")
        t_again = time.perf_counter() - t0
        print(
            f"[{name}] same date again: {t_again:.1f} s "
            f"({again.customers / t_again:,.0f} customers/s): {again.line()}"
        )
        print(f"[{name}] memory during the second run: {memory.line()}")
    finally:
        await db.stop(engine)
        if pg_name:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10, help="invoices per customer")
    parser.add_argument("--engines", default="postgres,sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.engines.split(","):
            asyncio.run(bench(name.strip(), args.customers, args.items, Path(tmp)))


if __name__ == "__main__":
    main()
