"""Payer profile suggestions in headless Chromium against `relance demo`: the list shows a
suggestion under a profile, the account page shows it with its reason, one click accepts it.
Screenshots for review."""

from __future__ import annotations

import re

from tests.browser.conftest import screenshot_path

COLLECTOR = "collector@relance.demo"


async def test_a_collector_accepts_the_suggested_profile_from_the_account(demo, browser):
    staff = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await staff.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    await page.goto(demo.base_url + "/backoffice/login")
    await page.fill("#f-email", COLLECTOR)
    await page.fill("#f-password", demo.password)
    await page.click("form[action='/backoffice/login'] button[type=submit]")
    await page.wait_for_load_state("networkidle")

    # The demo's twelve months of payments make some profiles out of date.
    await page.goto(demo.base_url + "/backoffice/customers?sort=name")
    await page.wait_for_load_state("networkidle")
    rows = page.locator("table.bo-customers tbody tr:has(form.bo-profile-accept)")
    assert await rows.count() >= 1
    row = rows.first
    assert re.search(r"suggested: .+ — \d+ invoices? paid on average", await row.inner_text())
    account = await row.locator("a.strong").get_attribute("href")

    await page.goto(demo.base_url + account)
    await page.wait_for_load_state("networkidle")
    box = page.locator("#profile-suggestion")
    text = await box.inner_text()
    suggested = re.search(r"Suggested profile: (.+?)\s+instead of", text)
    assert suggested, text
    assert re.search(r"paid on average \d+ days? late \(amount-weighted\) over 6 months", text)
    await page.screenshot(
        path=str(screenshot_path("backoffice-profile-suggestion")), full_page=True
    )
    # A fresh copy of the page to click on: a screenshot leaves styles on the page that
    # htmx's boosted swap then copies, which the CSP refuses (console errors no user sees).
    await page.goto(demo.base_url + account)
    await page.wait_for_load_state("networkidle")

    await box.locator("button[type=submit]").click()
    await page.wait_for_load_state("networkidle")
    label = suggested.group(1).strip()
    flash = page.locator(".flash, [role=status]", has_text="Payer profile set to")
    await flash.first.wait_for()
    assert label.lower() in (await flash.first.inner_text()).lower()
    assert "the profile stands" in await page.locator("#profile-suggestion").inner_text()
    profile = page.locator("dl.bo-details dt:text-is('Payer profile') + dd")
    assert (await profile.inner_text()).strip() == label
    await page.screenshot(path=str(screenshot_path("backoffice-profile-accepted")), full_page=True)
    assert errors == [], errors
    await staff.close()
