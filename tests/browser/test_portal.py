"""The customer portal in headless Chromium against `relance demo`: a real link, htmx filters,
the Excel download, an answer shown as awaiting confirmation and mailed to the collector;
screenshots of the statement at 1280 and 360 px in English and French."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from datetime import date, timedelta

from openpyxl import load_workbook

from tests.browser.conftest import screenshot_path


def _captured(folder, needle: str) -> list[tuple[str, str, str]]:
    """Mail the demo's SMTP catcher (aiosmtpd, reached by the worker over SMTP) received."""
    uri = f"file:{folder / 'relance-demo.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as conn:
        return conn.execute(
            "SELECT rcpt_to, subject, raw FROM captured_mail WHERE subject LIKE ?",
            (f"%{needle}%",),
        ).fetchall()


async def test_customer_filters_downloads_answers_and_the_collector_is_mailed(demo, page):
    link = demo.portal_links[0]
    token = link.rsplit("/", 1)[1]
    await page.goto(link)
    await page.wait_for_load_state("networkidle")
    assert page.url.endswith("/p/statement") and token not in page.url
    all_count = int(await page.inner_text('a.segment[href$="show=all"] .segment-count'))

    # Filter to overdue: htmx swaps the table, the page is not reloaded.
    await page.evaluate("window.__stillHere = true")
    await page.click('a.segment[href*="show=overdue"]')
    await page.wait_for_url("**/p/statement?show=overdue")
    await page.wait_for_selector('a.segment.is-current[href*="show=overdue"]')
    assert await page.evaluate("window.__stillHere === true")
    rows = page.locator("#statement-items tbody tr")
    shown = await rows.count()
    assert shown > 0 and shown == await page.locator("#statement-items tr.row-overdue").count()
    assert shown < all_count

    # The Excel export: a real download, read back.
    async with page.expect_download() as info:
        await page.click('a[href="/p/statement.xlsx"]')
    download = await info.value
    assert download.suggested_filename.endswith(".xlsx")
    content = (await download.path()).read_bytes()
    ws = load_workbook(io.BytesIO(content)).worksheets[0]
    numbers = [r[1].value for r in ws.iter_rows(min_row=5) if r[1].value and r[0].value]
    first_number = (await page.inner_text("#statement-items tbody tr .item-number .strong")).strip()
    assert first_number in numbers
    assert len([n for n in numbers if n.startswith("F")]) == all_count

    # Answer the first overdue invoice: "will pay on" a date, inline.
    first_row = rows.first
    row_id = await first_row.get_attribute("id")
    await first_row.locator('a[href^="/p/answer"]').click()
    await page.wait_for_selector(".answer-form")
    await page.check('input[name="kind"][value="promise"]')
    promised = date.today() + timedelta(days=9)
    await page.fill("#f-promise_date", promised.isoformat())
    await page.click('.answer-form button[type="submit"]')
    await page.wait_for_selector(".answer-done")
    row = page.locator(f"#{row_id}")
    await row.locator(".badge-pending").wait_for()
    assert "row-awaiting" in (await row.get_attribute("class"))
    assert await page.evaluate("window.__stillHere === true")
    assert page.url.endswith("/p/statement?show=overdue")

    # The collector named on the page receives the notice through the mail path.
    collector = (await page.inner_text('.contact-box a[href^="mailto:"]')).strip()
    for _ in range(60):
        mails = _captured(demo.folder, first_number)
        if mails:
            break
        await asyncio.sleep(0.5)
    assert mails, "the collector's email did not reach the SMTP server"
    rcpt, subject, raw = mails[0]
    assert collector in rcpt
    assert first_number in subject
    assert "/backoffice/feedback/" in raw
    assert page.console_errors == []


async def test_statement_screenshots_in_english_and_french(demo, browser):
    link = demo.portal_links[1]
    for language in ("fr", "en"):
        for width in (1280, 360):
            context = await browser.new_context(viewport={"width": width, "height": 900})
            page = await context.new_page()
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
            await page.goto(link)
            await page.wait_for_load_state("networkidle")
            if await page.get_attribute("html", "lang") != language:
                await page.click(f'.lang-switch button[value="{language}"]')
                await page.wait_for_load_state("networkidle")
            assert await page.get_attribute("html", "lang") == language
            title = "Relevé de compte" if language == "fr" else "Statement of account"
            assert title in await page.inner_text("h1")
            # Nothing wider than the screen: no sideways scrolling on a phone.
            assert await page.evaluate("document.documentElement.scrollWidth") <= width
            await page.screenshot(
                path=str(screenshot_path(f"portal-statement-{language}-{width}")), full_page=True
            )
            assert errors == []
            await context.close()
