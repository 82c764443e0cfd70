"""The dashboard in headless Chromium on the demo's data: admin lands on it after signing in,
every chart is drawn (an SVG with shapes of some size), the page needs no script error and
reads at 360 px. Screenshots for review."""

from __future__ import annotations

import re

from tests.browser.conftest import screenshot_path

CHARTS = ("aging-EUR", "overdue-trend-EUR", "dso-trend-EUR", "forecast-EUR", "disputes-EUR")


async def test_admin_sees_every_chart_on_the_demo(demo, page):
    await page.goto(demo.base_url + "/backoffice/login")
    await page.fill("#f-email", "admin@relance.demo")
    await page.fill("#f-password", demo.password)
    await page.click("form[action='/backoffice/login'] button[type=submit]")
    await page.wait_for_url(re.compile(r"/backoffice/dashboard$"))
    await page.wait_for_load_state("networkidle")

    assert "As of the night of" in await page.locator("#freshness").inner_text()
    for chart in CHARTS:
        svg = page.locator(f"#chart-{chart} svg")
        assert await svg.count() == 1, chart
        box = await svg.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 50, chart
        shapes = svg.locator("rect, polyline")
        assert await shapes.count() > 0, chart
        sizes = await shapes.evaluate_all(
            "els => els.map(e => { const b = e.getBBox(); return b.width + b.height; })"
        )
        assert max(sizes) > 5, chart  # something of a visible size, not zero-height bars
    # Realistic values: money overdue, a DSO in days, the trend's 12 months.
    assert re.search(r"€[\d,]+\.\d\d", await page.locator("#fig-overdue-EUR").inner_text())
    assert re.search(r"\d+\.\d days", await page.locator("#fig-dso-EUR").inner_text())
    assert await page.locator("#trend-table-EUR tbody tr").count() == 12
    assert await page.locator("#top-table-EUR tbody tr").count() == 10
    assert page.console_errors == []
    await page.screenshot(path=str(screenshot_path("backoffice-dashboard")), full_page=True)

    # On a phone: the charts scale to the width, nothing spills sideways.
    await page.set_viewport_size({"width": 360, "height": 800})
    await page.reload()
    await page.wait_for_load_state("networkidle")
    box = await page.locator("#chart-aging-EUR svg").bounding_box()
    assert box and box["width"] <= 360
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 362, width
    await page.screenshot(path=str(screenshot_path("backoffice-dashboard-360")), full_page=True)
