"""The dashboard on Postgres with 100k customers and 1M items: nightly figures, page p50/p99,
the aged balance export's time and memory.

    python bench/dashboard.py [--customers 100000] [--items 1000000] [--requests 40] [--reuse]

The database is seeded like bench/backoffice.py (its `build`, into a database of its own),
plus a payment and its allocation for every amount paid when that seeding made none. Pages
are requested through the whole application in-process (httpx on the ASGI app). Memory is
the process's resident set, sampled every 20 ms while the export runs. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import statistics
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from receivables import db  # noqa: E402
from receivables.settings import load_settings  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_backoffice", ROOT / "bench" / "backoffice.py")
assert _spec and _spec.loader
seeding = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seeding)
seeding.DB_NAME = DB_NAME = "relance_bench_dashboard"
URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


async def add_payments() -> None:
    """A payment and its allocation for every amount paid, received 5 days early to 40 days
    late (skipped when the seeding made them)."""
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}")
    try:
        if await conn.fetchval("SELECT count(*) FROM payment"):
            return
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO payment (company, customer, ref, received_on, method, currency, "
            "amount_minor, unapplied_minor, created_at) "
            "SELECT company, customer, 'P' || number, due_date + (id % 46 - 5)::int, "
            "'transfer', currency, total_minor - open_minor, 0, $1 FROM item "
            "WHERE kind = 'invoice' AND total_minor > open_minor",
            now,
        )
        await conn.execute(
            "INSERT INTO allocation (payment, item, amount_minor, created_at) "
            "SELECT p.id, i.id, p.amount_minor, $1 FROM item i "
            "JOIN payment p ON p.company = i.company AND p.ref = 'P' || i.number",
            now,
        )
        await conn.execute("VACUUM ANALYZE payment")
        await conn.execute("VACUUM ANALYZE allocation")
    finally:
        await conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


class PeakMemory:
    """The resident set's peak while the block runs, sampled by a thread."""

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


async def measure(client: httpx.AsyncClient, label: str, urls: list[str]) -> None:
    await client.get(urls[0])  # warm the plan cache and the template
    times = []
    for url in urls:
        t0 = time.perf_counter()
        r = await client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
    print(
        f"  {label:<52} n={len(times):>3}  p50 {statistics.median(times):7.1f} ms  "
        f"p99 {percentile(times, 99):7.1f} ms  max {max(times):7.1f} ms"
    )


async def export(client: httpx.AsyncClient, label: str, url: str) -> None:
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        size = 0
        rows = 0
        async with client.stream("GET", url) as r:
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                rows += chunk.count(b"\n")
        took = time.perf_counter() - t0
    print(
        f"  {label:<52} {took:6.1f} s  {size / 2**20:6.1f} MiB file  "
        f"RSS {mem.start:6.0f} -> peak {mem.peak:6.0f} MiB (+{mem.peak - mem.start:.0f})"
        + (f"  {rows:,} lines" if url.endswith("csv") else "")
    )


async def run(args: argparse.Namespace) -> None:
    if not args.reuse:
        await seeding.build(args.customers, args.items)
    engine = db.make_engine(URL)
    if args.reuse:
        await db.migrate(engine)  # a database kept from an older schema
    await add_payments()
    await db.start(engine)
    db.use_engine(engine)
    from receivables.insight import figures as f
    from receivables.insight import snapshots
    from receivables.insight.tables import InsightSnapshot

    today = date.today()
    print(f"\nPostgres, {args.customers:,} customers, {args.items:,} items.")
    if not args.pages_only:
        await nightly(today)
    elif not await InsightSnapshot.exists().where(InsightSnapshot.taken_on == today):
        for scope in (f.Scope(company_id=1), f.Scope()):
            await snapshots.write_nightly(scope, today)
    await pages(args, engine, today)


async def nightly(today: date) -> None:
    from receivables.insight import figures as f
    from receivables.insight import snapshots
    from receivables.insight.tables import ForecastSnapshot, InsightSnapshot

    await InsightSnapshot.delete(force=True)
    await ForecastSnapshot.delete(force=True)
    print("Nightly (after the daily run; what the page reads):")
    for label, scope in (("company", f.Scope(company_id=1)), ("all companies", f.Scope())):
        t0 = time.perf_counter()
        await snapshots.write_nightly(scope, today)
        print(f"  figures of the night, {label:<30} {time.perf_counter() - t0:6.1f} s")
    t0 = time.perf_counter()
    await snapshots._rebuild_month(f.Scope(), f.month_end(f.months_before(today, 1)))
    month = time.perf_counter() - t0
    t0 = time.perf_counter()
    await snapshots._rebuild_forecast(f.Scope(), f.week_start(today) - timedelta(days=7))
    week = time.perf_counter() - t0
    steps = 11 + snapshots.PAST_FORECAST_WEEKS
    print(
        f"  rebuild: one month end {month:.1f} s, one past Monday's forecast {week:.1f} s "
        f"(a full 'relance insight rebuild': ~{(11 * month + 8 * week) * 2 / 60:.0f} min "
        f"for one company and all, {steps} steps each)"
    )


async def pages(args: argparse.Namespace, engine: Any, today: date) -> None:
    from app import create_app

    settings = load_settings(
        {"DATABASE_URL": URL, "SECRET_KEY": "b" * 40, "BASE_URL": "http://bench.local"}
    )
    app = create_app(settings, engine=engine, demo=False)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    n = args.requests
    past = (today - timedelta(days=45)).isoformat()
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench.local", timeout=600
        ) as client:
            page = await client.get("/backoffice/login")
            found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
            assert found, f"{page.status_code} {page.text[:500]}"
            token = found.group(1)
            r = await client.post(
                "/backoffice/login",
                data={
                    "email": "admin0@bench.example",
                    "password": seeding.PASSWORD,
                    "_csrf_token": token,
                },
            )
            assert r.status_code == 303, r.text[:300]
            print("Page, per request:")
            await measure(
                client, "dashboard (last night's figures + live)", ["/backoffice/dashboard"] * n
            )
            await measure(client, "dashboard, one company", ["/backoffice/dashboard?company=1"] * n)
            await measure(
                client,
                "dashboard, one currency (USD)",
                ["/backoffice/dashboard?currency=USD"] * n,
            )
            few = max(3, n // 10)
            await measure(
                client,
                "dashboard, one collector (computed live)",
                [f"/backoffice/dashboard?collector={c}" for c in range(2, 2 + few)],
            )
            await measure(
                client,
                "dashboard, aging on a past date (rebuilt live)",
                [f"/backoffice/dashboard?on={past}"] * few,
            )
            if args.pages_only:
                return
            print("Aged balance export (streamed from a temporary file):")
            base = "/backoffice/dashboard/aged-balance?format="
            await export(client, "XLSX, today (100k customers)", base + "xlsx")
            await export(client, "CSV, today", base + "csv")
            await export(
                client, f"XLSX, on {past} (rebuilt from the ledger)", f"{base}xlsx&on={past}"
            )
    finally:
        await db.stop(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--reuse", action="store_true", help="Keep the database of a last run.")
    parser.add_argument(
        "--pages-only",
        action="store_true",
        help="With --reuse: the page's figures only (last night's kept if any), no export.",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
