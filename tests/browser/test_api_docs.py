"""The API documentation renders from self-hosted assets under the site's CSP."""

from tests.browser.conftest import screenshot_path


async def test_api_docs_render_offline_under_csp(demo, page):
    await page.goto(demo.base_url + "/api/v1/docs")
    await page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    assert "Relance API" in await page.inner_text(".swagger-ui .info .title")
    # Operations of the ERP API are listed, with the bearer scheme offered.
    await page.wait_for_selector(".opblock-summary-path")
    paths = await page.eval_on_selector_all(
        ".opblock-summary-path", "els => els.map(e => e.textContent)"
    )
    assert any("/statement" in p for p in paths)
    assert await page.locator(".btn.authorize").count() == 1
    assert page.console_errors == []
    await page.screenshot(path=str(screenshot_path("api-docs")), full_page=False)
