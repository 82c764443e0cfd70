"""Back-office pages on Postgres with 100k customers and 1M items: p50/p99 per page.

    python bench/backoffice.py [--customers 100000] [--items 1000000] [--requests 40]
                               [--keep]

Builds a fresh Postgres database (bulk-loaded with COPY through asyncpg: the import path
is benchmarked by bench/ledger.py), signs in through the real login form and requests the
pages through the whole application in-process (httpx on the ASGI app: routing, guards,
session cookie, queries, Jinja), so the figures are the server's time without a network.
Also prints the customer list's main query plan. Prints figures; asserts nothing.

History rows are loaded with placeholder hashes (this database is never verified): the
timeline reads them like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from receivables import db  # noqa: E402
from receivables.access.staff import hash_password  # noqa: E402
from receivables.ledger.customer_list import CustomerFilters, Sort, list_customers  # noqa: E402
from receivables.settings import load_settings  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "relance_bench_backoffice"
PASSWORD = "bench-password-2026"
PROFILES = [
    "negligent",
    "bad_payer",
    "insolvent",
    "administrative",
    "dispute_prone",
    "automatic",
    "good_payer",
]
WORDS = [
    "Bakery",
    "Garage",
    "Logistics",
    "Dental",
    "Hotel",
    "Print",
    "Studio",
    "Catering",
    "Pharmacy",
    "Transport",
    "Builders",
    "Optics",
    "Florist",
    "Clinic",
    "Brewery",
]
CITIES = ["Lyon", "Leeds", "Bremen", "Porto", "Ghent", "Turin", "Malmo", "Cork", "Basel"]


async def build(customers: int, items: int, seed: int = 2026) -> None:
    """A fresh database: schema by the migrations, rows by COPY."""
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", DB_NAME
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
    await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    await admin.close()
    engine = db.make_engine(f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
    await db.migrate(engine)

    rnd = random.Random(seed)
    today = date.today()
    now = datetime.now(UTC)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}")
    t0 = time.perf_counter()
    company_id = await conn.fetchval(
        "INSERT INTO company (code, name, currency, locale) "
        "VALUES ('BENCH', 'Bench Seller SAS', 'EUR', 'en_GB') RETURNING id"
    )
    pw = hash_password(PASSWORD)
    staff_ids = []
    for n in range(20):
        role = "admin" if n == 0 else "collector"
        staff_ids.append(
            await conn.fetchval(
                "INSERT INTO staff_user (email, name, role, password_hash) "
                "VALUES ($1, $2, $3, $4) RETURNING id",
                f"{role}{n}@bench.example",
                f"Collector {n}",
                role,
                pw,
            )
        )
    collectors = staff_ids[1:]

    await conn.copy_records_to_table(
        "customer",
        columns=[
            "id",
            "company",
            "ref",
            "name",
            "address",
            "country",
            "payer_profile",
            "language",
            "collector",
            "blocked",
            "blocked_reason",
            "credit_limit_minor",
            "currency",
            "created_at",
            "updated_at",
        ],
        records=(
            (
                n,
                company_id,
                f"C{n:07d}",
                f"{rnd.choice(WORDS)} {rnd.choice(CITIES)} {n}",
                "",
                "FR",
                rnd.choice(PROFILES),
                "",
                rnd.choice(collectors) if rnd.random() < 0.95 else None,
                rnd.random() < 0.02,
                "",
                rnd.choice([500000, 1000000, 5000000]),
                "EUR",
                now,
                now,
            )
            for n in range(1, customers + 1)
        ),
    )
    await conn.execute("SELECT setval('customer_id_seq', $1)", customers)

    contacts = []
    for n in range(1, customers + 1):
        for k in range(1 if n % 2 else 2):
            contacts.append(
                (n, f"Clerk {k}", f"ap{k}.{n}@buyer{n % 997}.example", "", "", "", True)
            )
    await conn.copy_records_to_table(
        "contact",
        columns=[
            "customer",
            "name",
            "email",
            "phone",
            "role",
            "language",
            "receives_reminders",
        ],
        records=contacts,
    )

    def item_rows():
        for n in range(1, items + 1):
            customer = rnd.randint(1, customers)
            due = today + timedelta(days=rnd.randint(-400, 60))
            total = rnd.randint(5_000, 2_000_000)
            currency = "USD" if rnd.random() < 0.03 else "EUR"
            # Most invoices are paid: about 30% are still open, a few half paid.
            roll = rnd.random()
            if due > today or roll < 0.25:
                open_minor, status = total, "open"
            elif roll < 0.30:
                open_minor, status = total // 2, "open"
            else:
                open_minor, status = 0, "paid"
            if open_minor and rnd.random() < 0.05:
                status = rnd.choice(["promised", "disputed", "paid_pending"])
            yield (
                company_id,
                customer,
                "invoice",
                f"INV{n:08d}",
                due - timedelta(days=30),
                due,
                currency,
                total,
                open_minor,
                "",
                "",
                status,
                due + timedelta(days=20) if status == "promised" else None,
                "price" if status == "disputed" else "",
                "",
                now,
                now,
            )

    await conn.copy_records_to_table(
        "item",
        columns=[
            "company",
            "customer",
            "kind",
            "number",
            "issue_date",
            "due_date",
            "currency",
            "total_minor",
            "open_minor",
            "po_number",
            "pdf_path",
            "status",
            "promise_date",
            "dispute_reason",
            "comment",
            "created_at",
            "updated_at",
        ],
        records=item_rows(),
    )

    # Pending answers spread over 2,000 customers; a busy history on the first 100.
    open_items = await conn.fetch(
        "SELECT id, customer FROM item WHERE open_minor > 0 ORDER BY random() LIMIT 2000"
    )
    await conn.copy_records_to_table(
        "feedback",
        columns=[
            "company",
            "customer",
            "item",
            "batch",
            "kind",
            "promise_date",
            "text",
            "status",
            "created_at",
            "ip",
            "method",
            "reference",
            "dispute_reason",
            "proof_path",
            "proof_name",
            "proof_type",
            "decided_by",
            "decision_note",
        ],
        records=[
            (
                company_id,
                r["customer"],
                r["id"],
                f"b{n}",
                "promise",
                today + timedelta(days=10),
                "We will pay next week.",
                "pending",
                now,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            )
            for n, r in enumerate(open_items)
        ],
    )
    history = []
    for customer in range(1, 101):
        for k in range(300):
            history.append(
                (
                    company_id,
                    now - timedelta(minutes=k),
                    "system",
                    "bench",
                    customer,
                    "email.queued" if k % 3 == 0 else "portal.statement_viewed",
                    '{"subject":"Statement","to":["ap@x.example"]}',
                    "0" * 64,
                    "0" * 64,
                )
            )
    await conn.copy_records_to_table(
        "history_event",
        columns=[
            "company",
            "occurred_at",
            "actor_kind",
            "actor_label",
            "customer",
            "kind",
            "details",
            "prev_hash",
            "hash",
        ],
        records=history,
    )
    await payment_behaviour(conn, today, now)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    vacuum = time.perf_counter() - t0
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM customer) c, (SELECT count(*) FROM item) i, "
        "(SELECT count(*) FROM item WHERE open_minor > 0) o, "
        "(SELECT count(*) FROM contact) k, (SELECT count(*) FROM history_event) h"
    )
    await conn.close()
    print(
        f"loaded {counts['c']:,} customers, {counts['i']:,} items ({counts['o']:,} open), "
        f"{counts['k']:,} contacts, {counts['h']:,} history events in {load:.1f} s "
        f"(+ VACUUM ANALYZE {vacuum:.1f} s)"
    )


async def payment_behaviour(conn: asyncpg.Connection, today: date, now: datetime) -> None:
    """What the payer profile suggestions read: a payment and its allocation for every paid
    amount (received 5 days early to 40 days late), a promise on one invoice in 20 (kept or
    broken), and the history event of every disputed invoice."""
    await conn.execute(
        "INSERT INTO payment (company, customer, ref, received_on, method, currency, "
        "amount_minor, unapplied_minor, created_at) "
        "SELECT company, customer, 'P' || number, due_date + (floor(random() * 46) - 5)::int, "
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
    await conn.execute(
        "INSERT INTO promise_to_pay (company, customer, item, promised_for, made_on, source, "
        "status, closed_on, created_at) "
        "SELECT company, customer, id, due_date + 10, due_date + 5, 'call', "
        "CASE WHEN id % 3 = 0 THEN 'broken' ELSE 'kept' END, due_date + 13, $2 FROM item "
        "WHERE id % 20 = 0 AND due_date + 13 < $1",
        today,
        now,
    )
    await conn.execute(
        "INSERT INTO history_event (company, occurred_at, actor_kind, actor_label, customer, "
        "item, kind, details, prev_hash, hash) "
        "SELECT company, $1::timestamptz - (id % 300) * interval '1 day', 'staff', 'bench', "
        "customer, id, 'item.status_changed', "
        '\'{"dispute_reason":"price","from":"open","item":"\' || number || \'","to":"disputed"}\', '
        "repeat('0', 64), repeat('0', 64) FROM item WHERE status = 'disputed'",
        now,
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure(client: httpx.AsyncClient, label: str, urls: list[str]) -> None:
    await client.get(urls[0])  # warm the plan cache and the template
    times = []
    for url in urls:
        t0 = time.perf_counter()
        r = await client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code}")
    print(
        f"  {label:<46} n={len(times):>3}  p50 {statistics.median(times):7.1f} ms  "
        f"p99 {percentile(times, 99):7.1f} ms  max {max(times):7.1f} ms"
    )


async def run(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    if not args.reuse:
        await build(args.customers, args.items)
    from app import create_app

    url = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
    settings = load_settings(
        {"DATABASE_URL": url, "SECRET_KEY": "b" * 40, "BASE_URL": "http://bench.local"}
    )
    engine = db.make_engine(url)
    await db.start(engine)
    app = create_app(settings, engine=engine, demo=False)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    rnd = random.Random(1)
    n = args.requests
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client:
            page = await client.get("/backoffice/login")
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
            r = await client.post(
                "/backoffice/login",
                data={"email": "admin0@bench.example", "password": PASSWORD, "_csrf_token": token},
            )
            assert r.status_code == 303, r.text[:300]

            print(f"\nPostgres, {args.customers:,} customers, {args.items:,} items; per request:")
            await measure(
                client, "customer list, most overdue first (page 1)", ["/backoffice/customers"] * n
            )
            await measure(
                client,
                "customer list, most overdue, pages 2-200",
                [f"/backoffice/customers?page={rnd.randint(2, 200)}" for _ in range(n)],
            )
            await measure(
                client,
                "customer list, oldest due first",
                ["/backoffice/customers?sort=oldest_due"] * n,
            )
            await measure(
                client,
                "customer list, by name, pages 1-2000",
                [f"/backoffice/customers?sort=name&page={rnd.randint(1, 2000)}" for _ in range(n)],
            )
            await measure(
                client,
                "customer list, search name (substring)",
                [
                    "/backoffice/customers?q="
                    f"{rnd.choice(WORDS)}+{rnd.choice(CITIES)}+{rnd.randint(1, 99999)}"
                    for _ in range(n)
                ],
            )
            await measure(
                client,
                "customer list, search contact email",
                [f"/backoffice/customers?q=ap0.{rnd.randint(1, 99999)}%40" for _ in range(n)],
            )
            await measure(
                client,
                "customer list, collector + overdue > 90 days",
                [
                    f"/backoffice/customers?collector={rnd.randint(2, 20)}&overdue_days=90"
                    for _ in range(n)
                ],
            )
            await measure(
                client,
                "customer list, pending feedback only",
                ["/backoffice/customers?pending=1"] * n,
            )
            await measure(
                client,
                "account page (random customer, ~10 items)",
                [f"/backoffice/customers/{rnd.randint(101, args.customers)}" for _ in range(n * 3)],
            )
            await measure(
                client,
                "account page (300-event history)",
                [f"/backoffice/customers/{rnd.randint(1, 100)}" for _ in range(n)],
            )
            await measure(
                client,
                "feedback inbox (2,000 pending)",
                ["/backoffice/feedback?collector=5"] * max(5, n // 4),
            )
        # The list's queries alone, and the plan of the ranking one.
        from receivables.ledger import customer_list

        captured: list[tuple[str, tuple]] = []
        original = customer_list.Customer.raw

        def recording(sql, *values):
            captured.append((sql, values))
            return original(sql, *values)

        customer_list.Customer.raw = recording  # type: ignore[method-assign]
        try:
            t0 = time.perf_counter()
            await list_customers(CustomerFilters(sort=Sort.overdue), date.today())
            took = (time.perf_counter() - t0) * 1000
        finally:
            customer_list.Customer.raw = original  # type: ignore[method-assign]
        print(f"\n  list_customers() alone, most overdue first: {took:.1f} ms")
        # The payer profile suggestions of a page of the list (done live, for its rows only).
        from receivables.dunning.payer_profiles import profile_suggestions

        today = date.today()
        page_times = []
        suggested = 0
        for page in range(1, n + 1):
            rows = (await list_customers(CustomerFilters(sort=Sort.name, page=page), today)).rows
            t0 = time.perf_counter()
            found = await profile_suggestions([r.id for r in rows], today)
            page_times.append((time.perf_counter() - t0) * 1000)
            suggested += sum(1 for s in found.values() if s.suggested)
        print(
            f"  profile_suggestions() for a page of 50: p50 {statistics.median(page_times):.1f} ms"
            f"  p99 {percentile(page_times, 99):.1f} ms  ({suggested} of {n * 50} rows suggest"
            " another profile)"
        )
        sql, values = captured[0]
        numbered = iter(range(1, 1000))
        sql = re.sub(r"\{\}", lambda _: f"${next(numbered)}", sql)
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}")
        plan = await conn.fetch(f"EXPLAIN (ANALYZE, TIMING OFF) {sql}", *values)
        await conn.close()
        print("  plan of its ranking query:")
        for row in plan:
            line = row[0]
            if any(k in line for k in ("Scan", "Join", "Aggregate", "Sort", "Limit", "Execution")):
                print("    " + line.strip()[:110])
    finally:
        await db.stop(engine)
        if not args.keep:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
            await admin.close()
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="requests per scenario")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
