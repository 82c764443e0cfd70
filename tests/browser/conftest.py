"""Browser tests: headless Debian Chromium driven by Playwright, against `relance demo`.

Without /usr/bin/chromium these tests skip with a message; with REQUIRE_BROWSER=1 they fail.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


_MISSING = f"{CHROMIUM} not found (apt-get install chromium chromium-driver)"
_HERE = Path(__file__).resolve().parent


def _require_browser() -> None:
    """Fail when Chromium is required but absent (its tests are skipped at collection else)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(_MISSING, pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium, browser tests are skipped with the reason, unless REQUIRE_BROWSER=1."""
    if Path(CHROMIUM).exists() or os.environ.get("REQUIRE_BROWSER") == "1":
        return
    marker = pytest.mark.skipif(True, reason=_MISSING + "; browser tests skipped")
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(marker)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Demo:
    base_url: str
    portal_links: list[str]
    password: str
    folder: Path


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Iterator[Demo]:
    """`relance demo` in a temporary folder, as a user would start it."""
    _require_browser()
    folder = tmp_path_factory.mktemp("demo")
    port = _free_port()
    log = (folder / "demo.log").open("w+")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"}
    relance = Path(sys.executable).with_name("relance")
    proc = subprocess.Popen(
        [str(relance), "demo", "--port", str(port), "--dir", str(folder)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # The demo replays months of history before it serves: on a busy 2-core machine
        # that alone can take over a minute, so the wait is generous (a limit, not a timing).
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"relance demo did not start:\n{log.read()[-3000:]}")
            time.sleep(0.3)
        log.seek(0)
        text = log.read()
        links = re.findall(rf"{re.escape(base)}/p/\S+", text)
        password = re.search(r"password for all: (\S+)\)", text)
        yield Demo(base, links, password.group(1) if password else "", folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    _require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def page(browser) -> AsyncIterator[object]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    p = await context.new_page()
    p.console_errors = []  # type: ignore[attr-defined]
    p.on("console", lambda m: m.type == "error" and p.console_errors.append(m.text))
    yield p
    await context.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
