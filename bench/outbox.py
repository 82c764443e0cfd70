"""The outbox sending reminders to an aiosmtpd server in another process, against raw
aiosmtplib sending the same messages over as many connections, in the same run.

    python bench/outbox.py [--messages 2000] [--rounds 3] [--concurrency 1,4]
                           [--engines sqlite,postgres]

The SMTP server (aiosmtpd, accepting everything) runs in a child process and counts what it
received. For each engine and concurrency C: a warm-up of both sides, then `--rounds`
rounds, A/B order alternating (outbox first, then raw first, ...). In each round N
reminders are queued (untimed; a 3 KB plain part and an 8 KB HTML part as dunning emails
have, each with its own sealed portal link), then:

- outbox: C workers (`send_due`, claiming batches of 50, one reused connection per batch)
  send them: claim, unseal the link, build the bytes, SHA-256, SMTP, mark sent with its
  history event;
- raw: the same N messages, each unsealed and built when it is sent from the same rows
  with the same builder (`build_message`, working link included), sent with aiosmtplib
  over C connections (one chunk of the messages each), no database.

Prints each round and the ratio outbox/raw in messages per second (1.00: the outbox costs
nothing). Asserts nothing but the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiosmtplib
import asyncpg

from receivables import db
from receivables.db import atomic
from receivables.history import Actor
from receivables.ledger.tables import Company, Customer
from receivables.mail.outbox import Recipient, build_message, queue_email, send_due
from receivables.mail.sealed_links import unseal
from receivables.mail.tables import OutboxMessage
from receivables.settings import load_settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SECRET = "b" * 40
TEXT = ("Dear customer, please find your statement below. " * 60)[:3000]
HTML = "<p>" + ("Dear customer, please find your statement below. " * 160)[:8000] + "</p>"
WARM_UP = 200

SERVER = r"""
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Count(), hostname="bench"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        print(Count.n, flush=True)

asyncio.run(main())
"""


class Server:
    """aiosmtpd in a child process; `count()` asks it how many messages it accepted."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.port = int(self.proc.stdout.readline())

    def count(self) -> int:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


async def queue(company_id: int, customer_id: int, n: int) -> list[dict]:
    """Queue `n` reminders, each with its own (made-up) portal token; returns their rows."""
    ids = []
    for start in range(0, n, 500):
        async with atomic():
            for i in range(start, min(n, start + 500)):
                token = f"{uuid.uuid4().hex}AbCdEfGh.{uuid.uuid4().hex[:24]}"
                url = f"https://relance.example/p/{token}"
                message = await queue_email(
                    company_id=company_id,
                    customer_id=customer_id,
                    kind="reminder",
                    mail_from="Atelier Lumière <ar@seller.example>",
                    to=[Recipient(f"ap{i}@buyer.example", "Accounts payable")],
                    subject=f"Statement {i}",
                    text_body=f"{TEXT}\n{url}\n",
                    html_body=f'{HTML}<p><a href="{url}">View and pay</a></p>',
                    actor=Actor.system("bench"),
                    portal_token=token,
                    secret_key=SECRET,
                )
                ids.append(message.id)
    return await OutboxMessage.select().where(OutboxMessage.id.is_in(ids))


async def outbox_run(settings, n: int, concurrency: int, server: Server) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds."""
    before = server.count()
    c0 = time.process_time()
    t0 = time.perf_counter()
    sent = await asyncio.gather(
        *[send_due(settings, worker_id=f"bench-{k}", batch=50) for k in range(concurrency)]
    )
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    received = server.count() - before
    assert sum(sent) == n == received, (sent, received)
    return elapsed, cpu


async def raw_run(
    port: int, rows: list[dict], concurrency: int, server: Server
) -> tuple[float, float]:
    """The same messages, built by the same code, over `concurrency` connections."""
    before = server.count()
    chunks = [rows[k::concurrency] for k in range(concurrency)]

    async def one(chunk: list[dict]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for row in chunk:
            # Unsealed and built per send, as the outbox does.
            token = unseal(row["sealed_token"], SECRET, row["message_id"])
            raw = build_message(row, token=token)
            await client.sendmail("ar@seller.example", [f"{row['id']}@buyer.example"], raw)
        await client.quit()

    c0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*[one(c) for c in chunks])
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert server.count() - before == len(rows)
    return elapsed, cpu


async def bench(
    name: str,
    n: int,
    rounds: int,
    levels: list[int],
    folder: Path,
    server: Server,
    synchronous_commit: str = "on",
) -> list[float]:
    pg_name = None
    if name == "postgres":
        pg_name = f"relance_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        if synchronous_commit != "on":  # to measure what the commit's WAL flush costs
            await admin.execute(
                f'ALTER DATABASE "{pg_name}" SET synchronous_commit = {synchronous_commit}'
            )
        await admin.close()
        url = f"postgres://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite:///{folder / f'bench-outbox-{uuid.uuid4().hex[:6]}.sqlite3'}"
    engine = db.make_engine(url)
    settings = load_settings(
        {"SECRET_KEY": SECRET, "DATABASE_URL": url, "SMTP_PORT": str(server.port)}
    )
    ratios: list[float] = []
    try:
        await db.migrate(engine)
        await db.start(engine)
        company = Company(code="B", name="Bench SAS")
        await company.save()
        customer = Customer(company=company.id, ref="C1", name="Buyer")
        await customer.save()
        for concurrency in levels:
            rows = await queue(company.id, customer.id, WARM_UP)
            await raw_run(server.port, rows, concurrency, server)
            await outbox_run(settings, WARM_UP, concurrency, server)
            level: list[float] = []
            for r in range(rounds):
                t0 = time.perf_counter()
                rows = await queue(company.id, customer.id, n)
                t_queue = time.perf_counter() - t0
                load = os.getloadavg()[0]
                if r % 2 == 0:
                    t_outbox, c_outbox = await outbox_run(settings, n, concurrency, server)
                    t_raw, c_raw = await raw_run(server.port, rows, concurrency, server)
                else:
                    t_raw, c_raw = await raw_run(server.port, rows, concurrency, server)
                    t_outbox, c_outbox = await outbox_run(settings, n, concurrency, server)
                ratio = t_raw / t_outbox
                level.append(ratio)
                print(
                    f"[{name}] round {r + 1} ({'outbox first' if r % 2 == 0 else 'raw first'}), "
                    f"{n} messages, {concurrency} connection(s): "
                    f"outbox {n / t_outbox:,.0f} msg/s, raw aiosmtplib {n / t_raw:,.0f} msg/s, "
                    f"outbox/raw {ratio:.2f}; CPU of this process per message: outbox "
                    f"{1000 * c_outbox / n:.2f} ms, raw {1000 * c_raw / n:.2f} ms; "
                    f"load average {load:.2f}; queueing took {t_queue:.1f} s "
                    f"({n / t_queue:,.0f} msg/s)",
                    flush=True,
                )
            print(
                f"[{name}] {concurrency} connection(s): "
                f"outbox/raw median {statistics.median(level):.2f} "
                f"(min {min(level):.2f}, max {max(level):.2f}) over {rounds} rounds",
                flush=True,
            )
            ratios += level
    finally:
        await db.stop(engine)
        if pg_name:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument(
        "--synchronous-commit",
        default="on",
        choices=["on", "off"],
        help="Postgres: 'off' shows what waiting for each mark's WAL flush costs (not a setting "
        "to run with: a database crash would lose the last marks)",
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    server = Server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.engines.split(","):
                asyncio.run(
                    bench(
                        name.strip(),
                        args.messages,
                        args.rounds,
                        levels,
                        Path(tmp),
                        server,
                        args.synchronous_commit,
                    )
                )
    finally:
        server.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
