"""Pages at a phone's and two desktops' widths (issue 12, point 5): the portal's statement
with answers pending and its pay page in both languages, the back office's customer list,
account page and dashboard; the page never scrolls sideways (wide tables scroll in their
own box). Also the statement's sort links and the captured-mail viewer. Screenshots for review."""

from __future__ import annotations

import re
from datetime import date, timedelta
from urllib.parse import quote

from tests.browser.conftest import screenshot_path
from tests.browser.test_backoffice import _answer_from_portal

WIDTHS = (360, 1280, 1440)
OVERFLOW = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
NUMBERS = "#statement-items tbody .item-number .strong"


async def _fits(page, name: str, width: int) -> None:
    await page.set_viewport_size({"width": width, "height": 900})
    scroll, client = await page.evaluate(OVERFLOW)
    await page.screenshot(path=str(screenshot_path(f"layout-{name}-{width}")), full_page=True)
    assert scroll <= client, f"{name} at {width} px scrolls sideways ({scroll} > {client})"


async def test_pages_fit_phone_and_desktop_widths(demo, browser):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    link = demo.portal_links[2]
    await _answer_from_portal(
        page, link, 0, "promise", promise_date=(date.today() + timedelta(days=10)).isoformat()
    )
    await _answer_from_portal(
        page, link, 1, "dispute", dispute_reason="price", text="The price is not the quoted one."
    )
    await page.goto(f"{demo.base_url}/p/statement")
    customer = (await page.inner_text(".portal-customer")).split("·")[0].strip()

    # A column header sorts, the same header again reverses; the address holds one `sort`.
    await page.locator("#statement-items th a.sort-link").first.click()
    await page.wait_for_url(re.compile(r"/p/statement\?.*sort=number$"))
    ascending = await page.locator(NUMBERS).all_inner_texts()
    assert ascending == sorted(ascending) and len(ascending) > 2
    await page.locator("#statement-items th a.sort-link").first.click()
    await page.wait_for_url(re.compile(r"/p/statement\?.*sort=number&order=desc$"))
    assert await page.locator(NUMBERS).all_inner_texts() == ascending[::-1]
    assert page.url.count("sort=") == 1

    for language in ("en", "fr"):
        await page.goto(f"{demo.base_url}/p/statement")
        await page.click(f'.lang-switch button[value="{language}"]')
        await page.wait_for_load_state("networkidle")
        assert await page.locator("tr.row-awaiting .badge-pending").count() == 2
        for width in WIDTHS:
            await _fits(page, f"portal-statement-{language}", width)
            if width > 640:  # on a desktop the invoices' table fits its card too
                table = await page.eval_on_selector(
                    "#statement-items .table-wrap", "e => [e.scrollWidth, e.clientWidth]"
                )
                assert table[0] <= table[1], f"statement table at {width} px: {table}"
        await page.goto(f"{demo.base_url}/p/pay")
        await page.locator("#pay-form").wait_for()
        for width in WIDTHS:
            await _fits(page, f"portal-pay-{language}", width)

    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.goto(f"{demo.base_url}/backoffice/login")
    await page.fill('input[name="email"]', "admin@relance.demo")
    await page.fill('input[name="password"]', demo.password)
    await page.click('button[type="submit"]')
    await page.wait_for_load_state("networkidle")
    await page.goto(f"{demo.base_url}/backoffice/customers?q={quote(customer)}")
    account = await page.locator("table.bo-customers a.strong").first.get_attribute("href")
    for name, path in (
        ("customers", "/backoffice/customers"),
        ("account", account),
        ("dashboard", "/backoffice/dashboard"),
    ):
        response = await page.goto(demo.base_url + path)
        assert response.ok, f"{path}: {response.status}"
        await page.wait_for_load_state("networkidle")
        for width in WIDTHS:
            await _fits(page, f"backoffice-{name}", width)

    # The captured-mail viewer shows the mail in standards mode, at its full height.
    await page.goto(f"{demo.base_url}/backoffice/mail")
    hrefs = await page.locator("table a.strong").evaluate_all(
        "links => links.slice(0, 10).map(a => a.getAttribute('href'))"
    )
    frame = page.locator("iframe.bo-mail-frame")
    for href in reversed(hrefs):  # a reminder (long) rather than a short notification
        await page.goto(demo.base_url + href)
        if await frame.count():
            break
    await page.wait_for_function(
        "() => { const f = document.querySelector('iframe.bo-mail-frame');"
        " const d = f.contentDocument;"
        " return d && d.URL.endsWith('/html') && d.readyState === 'complete'"
        " && f.style.height !== ''"
        " && f.getBoundingClientRect().height >= d.documentElement.scrollHeight; }"
    )  # sized by backoffice.js to the whole mail: nothing scrolls inside the frame
    assert await frame.evaluate("f => f.contentDocument.compatMode") == "CSS1Compat"
    await page.screenshot(path=str(screenshot_path("layout-backoffice-mail")), full_page=True)
    assert not errors, errors
    await context.close()
