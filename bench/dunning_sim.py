"""Emails per customer per payer profile over 90 days of daily runs, unattended and attended.

    python bench/dunning_sim.py [--days 90] [--repeat 5] [--engine sqlite|postgres]

The population of `tests/simulation.py` (eight behaviours: pays the oldest, pays all,
promises and keeps, promises and breaks, disputes with nobody deciding, claims "paid"
with nobody deciding, ignores, receives invoices weekly) crossed with the five payer
profiles that are dunned; `--repeat 5` gives each behaviour every profile once (40
customers). Each day: the customers act, (attended) a collector works the whole agenda,
the run, the outbox sent to an in-process SMTP server. Prints, per profile and per
behaviour, the dunning emails each customer received (min / mean / max), the shortest gap
between two of them, and the actions made by level. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from receivables.db import make_engine, migrate, start, stop, use_engine  # noqa: E402
from receivables.dunning.defaults import install_defaults  # noqa: E402
from receivables.dunning.run import run_dunning  # noqa: E402
from receivables.dunning.tables import DunningAction  # noqa: E402
from receivables.mail.outbox import send_due  # noqa: E402
from receivables.settings import load_settings  # noqa: E402
from tests.factories import make_company  # noqa: E402
from tests.simulation import START, act, deliveries, population, work_the_agenda  # noqa: E402
from tests.smtp import start_smtp  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def one(engine_name: str, attended: bool, days: int, repeat: int, folder: Path) -> None:
    pg_name = None
    if engine_name == "postgres":
        pg_name = f"relance_sim_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = f"postgres://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite:///{folder / f'sim-{attended}.sqlite3'}"
    engine = make_engine(url)
    await migrate(engine)
    await start(engine)
    use_engine(engine)
    server, rec, port = await start_smtp()
    settings = load_settings(
        {
            "SECRET_KEY": "bench-secret-" + "x" * 32,
            "BASE_URL": "http://bench.local",
            "SMTP_PORT": str(port),
            "DOCUMENTS_DIR": str(folder / "documents"),
        }
    )
    try:
        company = await make_company(
            penalty_policy="france", penalty_margin_bp=1000, email="ar@seller.example"
        )
        await install_defaults(company.id)
        buyers = await population(company, repeat=repeat)
        by_email = {b.email: b for b in buyers}
        seen = 0
        began = time.perf_counter()
        for day in range(days):
            on = START + timedelta(days=day)
            for buyer in buyers:
                await act(buyer, on, settings)
            if attended:
                await work_the_agenda(on, settings)
            await run_dunning(on, settings)
            await send_due(settings)
            await deliveries(rec, seen, on, by_email)
            seen = len(rec.messages)
            if day % 10 == 9:
                print(f"  day {day + 1}/{days}", file=sys.stderr)
        elapsed = time.perf_counter() - began
        label = "attended (a collector does everything)" if attended else "unattended"
        print(f"\n== {engine_name}, {label}: {len(buyers)} customers, {days} days, {elapsed:.1f} s")
        for key, title in (("profile", "payer profile"), ("behaviour", "behaviour")):
            groups: dict[str, list] = defaultdict(list)
            for b in buyers:
                groups[b.customer.payer_profile if key == "profile" else b.behaviour].append(b)
            print(f"{title:<22} {'customers':>9} {'min':>4} {'mean':>6} {'max':>4} {'min gap':>8}")
            for name, members in sorted(groups.items()):
                counts = [len(b.received) for b in members]
                gaps = [
                    (second - first).days
                    for b in members
                    for first, second in zip(b.received, b.received[1:], strict=False)
                ]
                print(
                    f"{name:<22} {len(members):>9} {min(counts):>4} "
                    f"{statistics.mean(counts):>6.2f} {max(counts):>4} "
                    f"{(str(min(gaps)) + ' d') if gaps else '-':>8}"
                )
        levels = Counter(
            (r["level"], r["status"])
            for r in await DunningAction.select(DunningAction.level, DunningAction.status)
        )
        print("actions by level and status:", dict(sorted(levels.items())))
    finally:
        server.close()
        await stop(engine)
        if pg_name:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for attended in (False, True):
            await one(args.engine, attended, args.days, args.repeat, Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
