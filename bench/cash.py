"""Cash application, the payments list and the finance export on Postgres at scale.

    python bench/cash.py [--customers 20000] [--payments 200000] [--unapplied 0.05] [--keep]

Builds a fresh Postgres database (schema by the migrations, rows by COPY), then times the
services behind the pages: the unapplied money list, one payment's proposal, an apply and a
take-back (each in its transaction with the history), the payments list's first page and a
page 100 pages deep (keyset on received date and id), and a month's export (both sheets).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from receivables import db  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "relance_bench_cash"


async def build(customers: int, payments: int, unapplied: float, seed: int = 2026) -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", DB_NAME
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
    await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    await admin.close()
    await db.migrate(db.make_engine(f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"))
    rnd = random.Random(seed)
    today = date.today()
    now = datetime.now(UTC)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}")
    company = await conn.fetchval(
        "INSERT INTO company (code, name, currency, locale, writeoff_tolerance_minor) "
        "VALUES ('BENCH', 'Bench Seller SAS', 'EUR', 'en_GB', 1000) RETURNING id"
    )
    await conn.copy_records_to_table(
        "customer",
        columns=["id", "company", "ref", "name", "currency", "payer_profile", "created_at"],
        records=[
            (c, company, f"C{c:06d}", f"Customer {c}", "EUR", "negligent", now)
            for c in range(1, customers + 1)
        ],
    )
    items, pays, allocations = [], [], []
    item_id = 0
    for p in range(1, payments + 1):
        customer = rnd.randint(1, customers)
        amount = rnd.randint(5_000, 500_000)
        received = today - timedelta(days=rnd.randint(0, 730))
        item_id += 1
        paid = amount if rnd.random() > unapplied else rnd.randint(0, amount // 2)
        items.append(
            (
                item_id,
                company,
                customer,
                "invoice",
                f"F{item_id:07d}",
                received - timedelta(days=40),
                received - timedelta(days=10),
                "EUR",
                paid,
                0,
                "paid",
                now,
                now,
            )
        )
        pays.append(
            (
                p,
                company,
                customer,
                f"P{p:07d}",
                received,
                "transfer",
                "EUR",
                amount,
                amount - paid,
                now,
            )
        )
        allocations.append((p, p, item_id, paid, now))
    # Open invoices and credit notes to apply the money to.
    for _ in range(payments // 4):
        item_id += 1
        customer = rnd.randint(1, customers)
        total = rnd.randint(5_000, 300_000)
        kind = "credit_note" if rnd.random() < 0.1 else "invoice"
        due = today - timedelta(days=rnd.randint(-30, 200))
        items.append(
            (
                item_id,
                company,
                customer,
                kind,
                f"O{item_id:07d}",
                due - timedelta(days=30),
                due,
                "EUR",
                total,
                total,
                "open",
                now,
                now,
            )
        )
    await conn.copy_records_to_table(
        "item",
        columns=[
            "id",
            "company",
            "customer",
            "kind",
            "number",
            "issue_date",
            "due_date",
            "currency",
            "total_minor",
            "open_minor",
            "status",
            "created_at",
            "updated_at",
        ],
        records=items,
    )
    await conn.copy_records_to_table(
        "payment",
        columns=[
            "id",
            "company",
            "customer",
            "ref",
            "received_on",
            "method",
            "currency",
            "amount_minor",
            "unapplied_minor",
            "created_at",
        ],
        records=pays,
    )
    await conn.copy_records_to_table(
        "allocation",
        columns=["id", "payment", "item", "amount_minor", "created_at"],
        records=allocations,
    )
    for table in ("customer", "item", "payment", "allocation"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        )
    await conn.execute("ANALYZE")
    await conn.close()


async def timed(label: str, call, repeat: int = 5) -> object:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - t0) * 1000)
    print(f"{label:<58} median {statistics.median(times):8.1f} ms   max {max(times):8.1f} ms")
    return result


async def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    if not args.reuse:
        await build(args.customers, args.payments, args.unapplied)
    print(
        f"built: {args.customers} customers, {args.payments} payments "
        f"({args.unapplied:.0%} with a remainder) in {time.perf_counter() - t0:.1f} s"
    )
    engine = db.make_engine(f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
    await db.migrate(engine)  # binds the tables to it (and brings a kept database up to date)
    await db.start(engine)
    from receivables.history import Actor
    from receivables.ledger import cash_application as cash
    from receivables.ledger.payment_list import list_payments
    from receivables.payments import reports

    try:
        money = await timed("unapplied money (the whole list)", cash.unapplied_money)
        print(f"  {len(money)} rows")
        await timed("unapplied money (the page: 501 rows)", lambda: cash.unapplied_money(limit=501))
        await timed("small remainders", cash.small_remainders)
        some = next(m for m in money if m.kind == cash.PAYMENT)
        proposal = await timed(
            "one payment's proposal (its customer's open invoices)",
            lambda: cash.proposal(cash.PAYMENT, some.id),
        )
        first = next((i for i in proposal.invoices if i.proposed.minor), None)
        if first is not None:
            actor = Actor.system("bench")
            made = await timed(
                "apply to one invoice (transaction with history)",
                lambda: cash.apply(cash.PAYMENT, some.id, {first.id: "0.01"}, actor),
            )
            await cash.take_back(made[0], "bench", actor)
        await timed("payments list, first page", lambda: list_payments())
        cursor = None
        t1 = time.perf_counter()
        for _ in range(100):
            _, cursor = await list_payments(before=cursor)
        print(
            f"{'payments list, 100 pages in a row':<58} {(time.perf_counter() - t1) * 1000:8.1f} ms"
        )
        start = date.today() - timedelta(days=30)
        export = await timed(
            "export of a month (payments and allocations)",
            lambda: reports.export_rows(start, date.today()),
            repeat=3,
        )
        print(f"  {len(export.payments)} payments, {len(export.allocations)} allocations")
        t2 = time.perf_counter()
        path = await asyncio.to_thread(reports.export_file, export, "xlsx")
        print(f"{'  written as XLSX':<58} {(time.perf_counter() - t2) * 1000:8.1f} ms")
        path.unlink()
    finally:
        await db.stop(engine)
    if not args.keep:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--payments", type=int, default=200_000)
    parser.add_argument("--unapplied", type=float, default=0.05)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
