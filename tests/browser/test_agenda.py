"""The agenda, an action's email and the template editor in headless Chromium.

The demo's data, then three weeks of daily runs replayed (so the agenda holds reminders
to confirm, calls and letters), served by `relance serve` as in production. Screenshots
go to screenshots/.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from receivables import db
from receivables.clock import today_in
from receivables.demo import DEMO_PASSWORD, seed
from receivables.demo.data import COMPANY_TIMEZONE
from receivables.dunning.run import run_dunning
from receivables.settings import load_settings
from tests.browser.conftest import _free_port, _require_browser, screenshot_path
from tests.conftest import TEST_SECRET

DAYS = 21


@dataclass
class Served:
    base_url: str
    database: Path


def _prepare(database: Path) -> None:
    """Demo data as of today, with the dunning runs of the last three weeks behind it."""

    async def build() -> None:
        url = f"sqlite:///{database}"
        engine = db.make_engine(url)
        await db.migrate(engine)
        await db.start(engine)
        settings = load_settings({"SECRET_KEY": TEST_SECRET, "DATABASE_URL": url})
        # The company's date (Europe/Paris), as the served agenda reads it: the server's
        # date lags it by an hour or two before midnight UTC.
        today = today_in(COMPANY_TIMEZONE)
        await seed(today)
        for back in range(DAYS, -1, -1):
            await run_dunning(today - timedelta(days=back), settings, triggered_by="replay")
        await db.stop(engine)

    asyncio.run(build())


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    _require_browser()
    folder = tmp_path_factory.mktemp("agenda")
    database = folder / "relance.sqlite3"
    _prepare(database)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": TEST_SECRET,
        "BASE_URL": f"http://127.0.0.1:{port}",
        "DOCUMENTS_DIR": str(folder / "documents"),
    }
    relance = Path(sys.executable).with_name("relance")
    log = (folder / "serve.log").open("w+")
    proc = subprocess.Popen(
        [str(relance), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"relance serve did not start:\n{log.read()[-3000:]}")
            time.sleep(0.3)
        yield Served(base, database)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def sign_in(page, base: str, email: str) -> None:
    await page.goto(f"{base}/backoffice/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state("networkidle")


async def test_the_agenda_groups_the_days_work_by_level(served, page):
    await sign_in(page, served.base_url, "admin@relance.demo")
    await page.goto(f"{served.base_url}/backoffice/agenda?who=all")
    await page.wait_for_load_state("networkidle")
    groups = await page.locator("section.dn-group h2").all_inner_texts()
    assert len(groups) >= 2, groups
    levels = [g.split(" ")[0] for g in groups]
    order = ["Litigation", "Level", "Pre-dunning"]
    assert levels == sorted(levels, key=lambda t: order.index(t) if t in order else 1)
    assert await page.locator("input[name=ids][form=confirm-form]").count() > 0
    assert await page.locator("text=Confirm and send selected").is_visible()
    await page.screenshot(path=str(screenshot_path("agenda")), full_page=True)
    assert page.console_errors == []


async def test_an_action_previews_its_email_and_the_edited_words(served, page):
    await sign_in(page, served.base_url, "collector@relance.demo")
    await page.goto(f"{served.base_url}/backoffice/agenda?who=all")
    await page.locator("tr:has(input[name=ids]) a.btn", has_text="Open").first.click()
    await page.wait_for_load_state("networkidle")
    frame = page.frame_locator("iframe[name=email-preview]")
    await frame.locator("table").first.wait_for()
    shown = await frame.locator("body").inner_text()
    assert "#" not in shown.replace("##", "")  # every hashtag filled in
    # Chromium leaves sandboxed frames blank in full-page captures: a tall viewport instead.
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.set_viewport_size({"width": 1280, "height": height})
    await frame.locator("table").first.wait_for()
    await page.screenshot(path=str(screenshot_path("action-email")))
    await page.set_viewport_size({"width": 1280, "height": 900})
    # Edit the words and preview them in the frame (the form posts into it).
    body = page.locator("textarea[name=body]")
    await body.fill(
        "Dear #ContactName,\n\nA word from me: {{ 7*7 }} stays as typed.\n\n#OpenItemsTable"
    )
    await page.click("button:has-text('Preview')")
    await frame.locator("text=A word from me").wait_for()
    assert "{{ 7*7 }} stays as typed" in await frame.locator("body").inner_text()
    assert page.console_errors == []


async def test_the_template_editor_lists_hashtags_and_refuses_unknown_ones(served, page):
    await sign_in(page, served.base_url, "admin@relance.demo")
    await page.goto(f"{served.base_url}/backoffice/templates")
    await page.click("a:has-text('First reminder')")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("dl.dn-hashtags dt").count() >= 17
    frame = page.frame_locator("iframe[name=template-preview]")
    await frame.locator("table").first.wait_for()
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.set_viewport_size({"width": 1280, "height": height})
    await frame.locator("table").first.wait_for()
    await page.screenshot(path=str(screenshot_path("template-editor")))
    await page.fill("input[name=subject]", "Reminder for #Customer")
    await page.click("button:has-text('Save')")
    await page.wait_for_load_state("networkidle")
    assert "#Customer is not a hashtag Relance knows" in await page.content()
    # The refusal is a 422, which the browser notes; nothing else went wrong.
    assert [e for e in page.console_errors if "status of 422" not in e] == []
