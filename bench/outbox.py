"""The outbox sending 2,000 messages to an aiosmtpd server in another process, against raw
aiosmtplib at the same concurrency, in the same run.

    python bench/outbox.py [--messages 2000] [--concurrency 1,4] [--engines sqlite,postgres]

The SMTP server (aiosmtpd, accepting everything) runs in a child process and counts what
it received. For each engine and concurrency C: 2,000 reminders are queued (a 3 KB plain
part and an 8 KB HTML part, as dunning emails are), then C outbox workers (`send_due`,
each claiming batches and sending over one reused connection per batch) drain them; then
raw aiosmtplib sends the same 2,000 messages over C connections, with no database. The
difference is what the outbox costs: the claim, the status update and the history event
per message. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import asyncpg

from receivables import db
from receivables.history import Actor
from receivables.ledger.tables import Company, Customer
from receivables.mail.outbox import Recipient, build_mime, queue_email, send_due
from receivables.mail.tables import OutboxMessage
from receivables.settings import load_settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
TEXT = ("Dear customer, please find your statement below. " * 60)[:3000]
HTML = "<p>" + ("Dear customer, please find your statement below. " * 160)[:8000] + "</p>"

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
        self.port = int(self.proc.stdout.readline())

    def count(self) -> int:
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


async def queue(company_id: int, customer_id: int, n: int) -> None:
    for i in range(n):
        await queue_email(
            company_id=company_id,
            customer_id=customer_id,
            kind="reminder",
            mail_from="Atelier Lumière <ar@seller.example>",
            to=[Recipient(f"ap{i}@buyer.example", "Accounts payable")],
            subject=f"Statement {i}",
            text_body=TEXT,
            html_body=HTML,
            actor=Actor.system("bench"),
        )


async def outbox_run(settings, n: int, concurrency: int, server: Server) -> float:
    before = server.count()
    t0 = time.perf_counter()
    sent = await asyncio.gather(
        *[send_due(settings, worker_id=f"bench-{k}", batch=50) for k in range(concurrency)]
    )
    elapsed = time.perf_counter() - t0
    received = server.count() - before
    assert sum(sent) == n == received, (sent, received)
    return elapsed


async def raw_run(port: int, messages: list[EmailMessage], concurrency: int, server: Server):
    before = server.count()
    chunks = [messages[k::concurrency] for k in range(concurrency)]

    async def one(chunk: list[EmailMessage]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for msg in chunk:
            await client.send_message(msg)
        await client.quit()

    t0 = time.perf_counter()
    await asyncio.gather(*[one(c) for c in chunks])
    elapsed = time.perf_counter() - t0
    assert server.count() - before == len(messages)
    return elapsed


async def bench(name: str, n: int, levels: list[int], folder: Path, server: Server) -> None:
    pg_name = None
    if name == "postgres":
        pg_name = f"relance_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = f"postgres://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite:///{folder / f'bench-outbox-{uuid.uuid4().hex[:6]}.sqlite3'}"
    engine = db.make_engine(url)
    settings = load_settings(
        {"SECRET_KEY": "b" * 40, "DATABASE_URL": url, "SMTP_PORT": str(server.port)}
    )
    try:
        await db.migrate(engine)
        await db.start(engine)
        company = Company(code="B", name="Bench SAS")
        await company.save()
        customer = Customer(company=company.id, ref="C1", name="Buyer")
        await customer.save()
        for concurrency in levels:
            t0 = time.perf_counter()
            await queue(company.id, customer.id, n)
            t_queue = time.perf_counter() - t0
            rows = await OutboxMessage.select().where(OutboxMessage.status == "queued")
            messages = [build_mime(r) for r in rows]
            t_outbox = await outbox_run(settings, n, concurrency, server)
            t_raw = await raw_run(server.port, messages, concurrency, server)
            print(
                f"[{name}] {n} messages, {concurrency} connection(s): "
                f"outbox {n / t_outbox:,.0f} msg/s ({t_outbox:.1f} s), "
                f"raw aiosmtplib {n / t_raw:,.0f} msg/s ({t_raw:.1f} s), "
                f"outbox/raw {t_outbox / t_raw:.2f}x; queueing them took {t_queue:.1f} s "
                f"({n / t_queue:,.0f} msg/s)"
            )
    finally:
        await db.stop(engine)
        if pg_name:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    server = Server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.engines.split(","):
                asyncio.run(bench(name.strip(), args.messages, levels, Path(tmp), server))
    finally:
        server.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
