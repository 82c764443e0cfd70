"""PDFs render in child processes, not on the web's event loop; the statement PDF is cached."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import date, timedelta
from pathlib import Path

from receivables.documents import pdf as pdf_module
from receivables.history import HistoryEvent
from receivables.ledger.tables import Item
from tests.factories import make_item
from tests.integration.test_portal_support import *  # noqa: F403 (fixtures)
from tests.integration.test_portal_support import make_account, open_visit

TODAY = date.today()
STATIC = Path(__file__).resolve().parents[2] / "static"


def count_renders(monkeypatch) -> list[int]:
    """Each rendering asked of the child processes."""
    renders: list[int] = []
    real = pdf_module.render_pdf_async

    async def counting(html, assets):
        renders.append(1)
        return await real(html, assets)

    monkeypatch.setattr(pdf_module, "render_pdf_async", counting)
    return renders


async def test_the_second_statement_pdf_comes_from_the_cache(pclient, portal_settings, monkeypatch):
    account = await make_account(portal_settings)
    await open_visit(pclient, account)
    renders = count_renders(monkeypatch)
    first = await pclient.get("/p/statement.pdf")
    second = await pclient.get("/p/statement.pdf")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content and first.content.startswith(b"%PDF")
    assert len(renders) == 1
    # What the statement shows changed: a new PDF, never a stale one.
    item = account.items["late"]
    await Item.update({Item.open_minor: Item.open_minor - 100}).where(Item.id == item.id)
    third = await pclient.get("/p/statement.pdf")
    assert third.status_code == 200 and third.content != first.content
    assert len(renders) == 2
    sources = [
        json.loads(r["details"]).get("source")
        for r in await HistoryEvent.select(HistoryEvent.details)
        .where(HistoryEvent.kind == "portal.document_downloaded")
        .order_by(HistoryEvent.id)
    ]
    assert sources == ["generated", "cache", "generated"]


async def test_two_visitors_asking_at_once_share_one_rendering(
    pclient, portal_settings, monkeypatch
):
    account = await make_account(portal_settings)
    await open_visit(pclient, account)
    renders = count_renders(monkeypatch)
    answers = await asyncio.gather(*(pclient.get("/p/statement.pdf") for _ in range(3)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert len(renders) == 1


async def test_the_event_loop_answers_while_a_pdf_renders(pclient, portal_settings, monkeypatch):
    account = await make_account(portal_settings)
    for n in range(300):
        await make_item(
            account.customer, "120.00", due=TODAY - timedelta(days=n % 90), number=f"L{n}"
        )
    await open_visit(pclient, account)
    rendering = asyncio.Event()
    real = pdf_module.render_pdf_async

    async def signalling(html, assets):
        rendering.set()
        return await real(html, assets)

    monkeypatch.setattr(pdf_module, "render_pdf_async", signalling)
    finished: list[str] = []

    async def fetch(name: str, path: str) -> None:
        r = await pclient.get(path)
        assert r.status_code == 200, path
        finished.append(name)

    pdf = asyncio.create_task(fetch("statement.pdf", "/p/statement.pdf"))
    await rendering.wait()
    await fetch("health", "/health")
    await pdf
    assert finished == ["health", "statement.pdf"]


async def test_renderers_are_child_processes_replaced_when_one_dies(tmp_path):
    assets = pdf_module.Assets(static_dir=STATIC, documents_dir=tmp_path)
    html = "<p>Hello</p>"
    assert (await pdf_module.render_pdf_async(html, assets)).startswith(b"%PDF")
    pool = pdf_module._renderers
    assert pool is not None and pool._mp_context.get_start_method() == "spawn"
    children = list(pool._processes)
    assert children and os.getpid() not in children
    os.kill(children[0], signal.SIGKILL)
    await asyncio.sleep(0.2)
    assert (await pdf_module.render_pdf_async(html, assets)).startswith(b"%PDF")
    assert pdf_module._renderers is not pool
    await asyncio.to_thread(pdf_module.stop_renderers)
    assert pdf_module._renderers is None
