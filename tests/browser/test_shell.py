"""The demo as a user starts it: the layout renders in Chromium with no CSP or script error."""

import httpx

from tests.browser.conftest import screenshot_path


async def test_demo_home_renders_without_errors(demo, page):
    await page.goto(demo.base_url + "/")
    await page.wait_for_load_state("networkidle")
    assert await page.title() != ""
    # The stylesheet applied (not the browser's default white header) and htmx loaded.
    assert await page.evaluate("typeof window.htmx") == "object"
    header_bg = await page.evaluate(
        "getComputedStyle(document.querySelector('header')).backgroundColor"
    )
    assert header_bg not in ("", "rgba(0, 0, 0, 0)")
    assert page.console_errors == []
    await page.screenshot(path=str(screenshot_path("home-1280")), full_page=True)
    assert len(demo.portal_links) == 3 and demo.password
    async with httpx.AsyncClient() as http:
        assert (await http.get(demo.base_url + "/health")).json()["status"] == "ok"
