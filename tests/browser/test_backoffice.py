"""The back office in headless Chromium against `relance demo`: a customer answers from the
portal, a collector signs in, validates the promise in the inbox, and finds the new status
on the account page with the event in its timeline. Screenshots for review."""

from __future__ import annotations

import re
from datetime import date, timedelta

from babel.dates import format_date

from tests.browser.conftest import screenshot_path

COLLECTOR = "collector@relance.demo"


async def _answer_from_portal(page, link: str, index: int, kind: str, **fields: str) -> int:
    """Answer the index-th open invoice of the statement; returns the item's id."""
    await page.goto(link)
    await page.wait_for_load_state("networkidle")
    answer_links = page.locator('a[href^="/p/answer?item="]')
    href = await answer_links.nth(index).get_attribute("href")
    item_id = int(href.split("item=")[1].split("&")[0])
    await answer_links.nth(index).click()
    form = page.locator('form[method="post"][action="/p/answer"]')
    await form.wait_for()
    await form.locator(f'input[name="kind"][value="{kind}"]').check()
    for name, value in fields.items():
        field = form.locator(f'[name="{name}"]')
        if await field.evaluate("e => e.tagName") == "SELECT":
            await field.select_option(value)
        else:
            await field.fill(value)
    await form.locator('button[type="submit"]').click()
    await page.wait_for_load_state("networkidle")
    await page.wait_for_selector('form[method="post"][action="/p/answer"]', state="detached")
    return item_id


async def test_collector_validates_a_promise_and_sees_it_on_the_account(demo, browser):
    promised = date.today() + timedelta(days=14)
    customer_side = await browser.new_context(viewport={"width": 1280, "height": 900})
    portal = await customer_side.new_page()
    link = demo.portal_links[0]
    promised_item = await _answer_from_portal(
        portal, link, 0, "promise", promise_date=promised.isoformat()
    )
    await _answer_from_portal(
        portal,
        link,
        1,
        "dispute",
        dispute_reason="quantity",
        text="We received 40 units, not 48. Please send a credit note for the difference.",
    )
    await _answer_from_portal(
        portal, link, 2, "question", text="Can you send the delivery note for this one?"
    )
    await customer_side.close()

    staff = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await staff.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))

    # Not signed in: the inbox sends us to sign in, then back to the inbox.
    await page.goto(demo.base_url + "/backoffice/feedback")
    assert "/backoffice/login?next=%2Fbackoffice%2Ffeedback" in page.url
    await page.fill("#f-email", COLLECTOR)
    await page.fill("#f-password", demo.password)
    await page.click("form[action='/backoffice/login'] button[type=submit]")
    await page.wait_for_url(re.compile(r"/backoffice/feedback$"))
    await page.wait_for_load_state("networkidle")

    card = page.locator(f'article.fb-card:has(a[href="/backoffice/items/{promised_item}"])')
    await card.wait_for()
    assert await page.locator("article.fb-card").count() >= 3
    badge = page.locator(".main-nav a.active .nav-badge")
    assert int(await badge.inner_text()) >= 3
    await page.screenshot(path=str(screenshot_path("backoffice-inbox")), full_page=True)

    number = (
        await card.locator(f'a[href="/backoffice/items/{promised_item}"]').inner_text()
    ).strip()
    feedback_link_id = int((await card.get_attribute("id")).removeprefix("fb-"))

    # Validate: the card is replaced in place by the outcome (htmx), nothing else reloads.
    await card.locator("form.fb-validate button[type=submit]").click()
    decided = page.locator("article.fb-decided")
    await decided.wait_for()
    assert "the invoice is now “promise to pay”" in await decided.inner_text()

    # The account page shows the new status with its date, and the event in the timeline.
    await page.goto(demo.base_url + f"/backoffice/items/{promised_item}")
    back = page.locator("a", has_text="Back to the account")
    await back.click()
    await page.wait_for_load_state("networkidle")
    row = page.locator(f"#item-{promised_item}")
    await row.wait_for()
    row_text = await row.inner_text()
    assert "Promise to pay" in row_text
    assert f"promised for {format_date(promised, 'medium', locale='en_GB')}" in row_text
    timeline = page.locator("#timeline")
    first_event = timeline.locator("li.tl").first
    assert "Answer validated: open → promise to pay" in await first_event.inner_text()
    await page.screenshot(path=str(screenshot_path("backoffice-account")), full_page=True)

    # The timeline filters by kind without leaving the page.
    await timeline.locator("a.bo-chip", has_text="Comments and answers").click()
    await page.locator("a.bo-chip.bo-chip-active", has_text="Comments and answers").wait_for()
    kinds = await timeline.locator("li.tl").evaluate_all("els => els.map(e => e.className)")
    assert kinds and all("tl-comment" in k for k in kinds)

    await page.goto(demo.base_url + "/backoffice/customers")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("table.bo-customers tbody tr").count() >= 20
    await page.screenshot(path=str(screenshot_path("backoffice-customers")), full_page=True)

    # Search narrows the list in place (htmx) and the address follows.
    await page.fill("#f-q", "brasserie")
    await page.wait_for_url(re.compile(r"q=brasserie"))
    await page.locator("table.bo-customers tbody tr").first.wait_for()
    assert await page.locator("table.bo-customers tbody tr").count() == 1

    # The collector's notification email (captured by the demo) links to the answer: its
    # invoice's page, which now says the answer was already validated. The demo's worker
    # may still be sending the replayed days' mail first: wait for it, up to 90 s.
    for _ in range(180):
        await page.goto(demo.base_url + "/backoffice/mail")
        notice = page.locator("table a.strong", has_text=number)
        if await notice.count():
            break
        await page.wait_for_timeout(500)
    await notice.first.click()
    frame = page.frame_locator("iframe.bo-mail-frame")
    async with page.expect_popup() as popup_info:
        await frame.locator(f'a[href$="/backoffice/feedback/{feedback_link_id}"]').click()
    review = await popup_info.value
    await review.wait_for_load_state("networkidle")
    assert review.url.endswith(f"/backoffice/items/{promised_item}")
    assert "This answer was already validated" in await review.inner_text("body")

    assert errors == [], errors
    await staff.close()
