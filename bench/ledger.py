"""Import and statement timings on SQLite and Postgres.

    python bench/ledger.py [--customers 10000] [--items 100000] [--engines sqlite,postgres]

Generates CSV files of N customers and M items (due dates spread around today), imports
them into a fresh database per engine (then again, unchanged, to time the idempotent path),
and times the statement query for random customers. Prints figures; asserts nothing.
Compare ratios within one run: the machine's noise moves absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import asyncpg

from receivables import db
from receivables.history import Actor
from receivables.ledger.imports import import_files
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import Company, Customer

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def write_files(folder: Path, customers: int, items: int) -> list[Path]:
    rnd = random.Random(7)
    today = date.today()
    comp = folder / "companies.csv"
    comp.write_text("code,name,currency\nBENCH,Bench Seller SAS,EUR\n")
    cust = folder / "customers.csv"
    with cust.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ref", "name", "payer_profile", "company"])
        for n in range(customers):
            w.writerow([f"C{n:07d}", f"Customer {n}", "good_payer", "BENCH"])
    inv = folder / "items.csv"
    with inv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["number", "customer_ref", "issue_date", "due_date", "currency", "total", "company"]
        )
        for n in range(items):
            due = today + timedelta(days=rnd.randint(-150, 60))
            w.writerow(
                [
                    f"INV{n:08d}",
                    f"C{rnd.randrange(customers):07d}",
                    (due - timedelta(days=30)).isoformat(),
                    due.isoformat(),
                    "EUR",
                    f"{rnd.randint(1000, 5_000_000) / 100:.2f}",
                    "BENCH",
                ]
            )
    return [comp, cust, inv]


async def bench_engine(name: str, files: list[Path], folder: Path, samples: int) -> None:
    pg_name = None
    if name == "postgres":
        pg_name = f"relance_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = f"postgres://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
    engine = db.make_engine(url)
    try:
        await db.migrate(engine)
        await db.start(engine)
        actor = Actor.system("bench")
        t0 = time.perf_counter()
        await import_files(files, actor=actor)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        await import_files(files, actor=actor)
        again = time.perf_counter() - t0
        company = await Company.objects().get(Company.code == "BENCH")
        ids = [
            r["id"]
            for r in await Customer.select(Customer.id).where(Customer.company == company.id)
        ]
        rnd = random.Random(3)
        timings = []
        lines = 0
        for cid in rnd.sample(ids, min(samples, len(ids))):
            t0 = time.perf_counter()
            st = await build_statement(cid, date.today())
            timings.append((time.perf_counter() - t0) * 1000)
            lines += len(st.invoices)
        timings.sort()
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        print(
            f"{name:8} import {first:7.2f} s   re-import (unchanged) {again:7.2f} s   "
            f"statement p50 {statistics.median(timings):6.2f} ms  p99 {p99:6.2f} ms  "
            f"({lines / len(timings):.1f} open items per customer)"
        )
    finally:
        await db.stop(engine)
        if pg_name:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=$1", pg_name
            )
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}"')
            await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        files = write_files(folder, args.customers, args.items)
        print(
            f"{args.customers} customers, {args.items} items; files written in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        for name in args.engines.split(","):
            await bench_engine(name.strip(), files, folder, args.samples)


if __name__ == "__main__":
    asyncio.run(main())
