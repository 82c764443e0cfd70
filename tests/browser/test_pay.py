"""Paying from the portal in headless Chromium against `relance demo` and its localstripe:
4242 pays two invoices (the webhook marks them paid, finance sees the allocations), 4000 0025
0000 3155 completes after the 3-D Secure dialog, 4000 0000 0000 0341 shows the decline and
nothing is paid."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import screenshot_path

pytestmark = pytest.mark.browser


async def _open_pay_page(page, demo, link_index: int):
    await page.goto(demo.portal_links[link_index])
    await page.wait_for_url(re.compile(r"/p/statement"))
    await page.goto(f"{demo.base_url}/p/pay")
    await page.wait_for_selector("#card-element input")


async def _choose(page, count: int) -> list[str]:
    """Untick everything, tick the `count` oldest invoices; returns their numbers."""
    boxes = page.locator("input.pay-item[data-sign='1']")
    assert await boxes.count() >= count
    for i in range(await boxes.count()):
        await boxes.nth(i).set_checked(False)
    numbers = []
    for i in range(count):
        box = boxes.nth(i)
        await box.set_checked(True)
        box_id = await box.get_attribute("id")
        numbers.append((await page.locator(f"label[for='{box_id}']").inner_text()).strip())
    return numbers


async def _card(page, number: str) -> None:
    element = page.locator("#card-element")
    await element.locator("input[placeholder=number]").fill(number)
    await element.locator("input[placeholder=exp_month]").fill("12")
    await element.locator("input[placeholder=exp_year]").fill("34")
    await element.locator("input[placeholder=cvc]").fill("123")
    await element.locator("input[placeholder=postal_code]").fill("69002")


async def _statement_rows(page, demo) -> str:
    await page.goto(f"{demo.base_url}/p/statement")
    return await page.locator("#statement-items").inner_text()


async def test_pay_two_invoices_by_card_then_finance_sees_them(demo, page):
    await _open_pay_page(page, demo, 0)
    numbers = await _choose(page, 2)
    await _card(page, "4242424242424242")
    button = page.locator("#pay-button")
    assert re.search(r"\d", await button.inner_text())  # "Pay €…" in the customer's language
    await page.screenshot(path=screenshot_path("pay-page"), full_page=True)
    await button.click()
    await page.wait_for_url(re.compile(r"/p/pay/done/"))
    # The page says "being confirmed" until Stripe's webhook has been applied, then updates.
    await page.locator("#pay-status[data-status='succeeded']").wait_for(timeout=20000)
    await page.screenshot(path=screenshot_path("pay-done"), full_page=True)
    assert await page.locator("#pay-status .badge-paid").count() == 2

    rows = await _statement_rows(page, demo)
    for number in numbers:
        assert number not in rows  # settled: no longer among the open invoices

    await page.goto(f"{demo.base_url}/backoffice/login")
    await page.fill("input[name=email]", "finance@relance.demo")
    await page.fill("input[name=password]", demo.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/backoffice/"))
    await page.goto(f"{demo.base_url}/backoffice/finance")
    first = page.locator("table.fin-table tbody tr").first
    text = await first.inner_text()
    assert "Succeeded" in text
    for number in numbers:
        assert number in text
    await page.screenshot(path=screenshot_path("finance-payments"), full_page=True)
    await first.locator("a").first.click()
    await page.wait_for_selector("text=Allocations")
    detail = await page.locator("main").inner_text()
    assert "payment_intent.succeeded" in detail
    await page.screenshot(path=screenshot_path("finance-payment"), full_page=True)
    for path, name in (
        ("/backoffice/finance/exceptions", "finance-exceptions"),
        ("/backoffice/finance/payouts", "finance-payouts"),
        ("/backoffice/finance/bank", "finance-bank"),
        ("/backoffice/finance/export", "finance-export"),
    ):
        await page.goto(f"{demo.base_url}{path}")
        await page.screenshot(path=screenshot_path(name), full_page=True)
    assert page.console_errors == []


async def test_three_d_secure_completes_after_the_dialog(demo, page):
    await _open_pay_page(page, demo, 1)
    await _choose(page, 1)
    await _card(page, "4000002500003155")
    await page.locator("#pay-button").click()
    # localstripe's 3-D Secure dialog: once when the card is set up, once for the payment.
    dialog = page.get_by_role("button", name="Complete authentication")
    await dialog.wait_for(timeout=10000)
    await page.screenshot(path=screenshot_path("pay-3ds-dialog"), full_page=True)
    await dialog.click()
    await dialog.wait_for(timeout=10000)
    await dialog.click()
    await page.wait_for_url(re.compile(r"/p/pay/done/"))
    await page.locator("#pay-status[data-status='succeeded']").wait_for(timeout=20000)
    assert page.console_errors == []


async def test_a_declined_card_is_shown_and_nothing_is_paid(demo, page):
    await _open_pay_page(page, demo, 2)
    numbers = await _choose(page, 2)
    await _card(page, "4000000000000341")
    await page.locator("#pay-button").click()
    error = page.locator("#pay-error")
    await error.wait_for(state="visible", timeout=15000)
    assert re.search(r"declined|refusée", (await error.inner_text()).lower())
    assert "/p/pay/done/" not in page.url
    assert await page.locator("#pay-button").is_enabled()  # the customer can try again
    await page.screenshot(path=screenshot_path("pay-declined"), full_page=True)
    await page.wait_for_timeout(2500)  # let localstripe's payment_failed webhook arrive
    rows = await _statement_rows(page, demo)
    for number in numbers:
        assert number in rows  # still open
    assert "Payment in progress" not in rows and "Paiement en cours" not in rows


async def test_finance_imports_a_bank_statement_and_confirms(demo, page, tmp_path):
    """A CSV naming a customer's invoice with its exact amount is proposed; a partial one
    waits; confirming allocates (and the screenshots show the pages with content)."""
    await page.goto(demo.portal_links[1])
    await page.wait_for_url(re.compile(r"/p/statement"))
    account = await page.locator(".portal-customer").inner_text()
    customer_ref = account.split()[-1]
    rows = page.locator("#statement-items tbody tr")
    first, second = rows.nth(0), rows.nth(1)
    numbers = [
        (await r.locator(".item-number .strong").inner_text()).strip() for r in (first, second)
    ]
    amounts = [
        (await r.locator(".c-open").inner_text()).replace("€", "").strip() for r in (first, second)
    ]
    csv_file = tmp_path / "releve.csv"
    csv_file.write_text(
        "date;libelle;montant;devise;donneur d'ordre;id\n"
        f"2026-11-20;VIR {customer_ref} FACT {numbers[0]};{amounts[0]};EUR;Hotel;B-1\n"
        f"2026-11-20;Acompte {numbers[1]};100,00;EUR;Hotel;B-2\n"
        "2026-11-21;Remboursement assurance;250,00;EUR;Assureur SA;B-3\n",
        encoding="utf-8",
    )
    await page.goto(f"{demo.base_url}/backoffice/login")
    await page.fill("input[name=email]", "finance@relance.demo")
    await page.fill("input[name=password]", demo.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/backoffice/"))
    await page.goto(f"{demo.base_url}/backoffice/finance/bank")
    await page.set_input_files("#f-file", str(csv_file))
    await page.get_by_role("button", name="Import").click()
    await page.wait_for_url(re.compile(r"/backoffice/finance/bank/\d+$"))
    text = await page.locator("main").inner_text()
    assert "1 proposed" in text and "Confirm 1 proposed line" in text
    assert text.count("To review") >= 2
    await page.screenshot(path=screenshot_path("finance-bank-statement"), full_page=True)
    await page.get_by_role("button", name="Confirm 1 proposed line").click()
    await page.wait_for_selector("text=1 proposed line confirmed.")
    await page.get_by_role("link", name="Review").first.click()
    await page.wait_for_selector("text=What it pays")
    await page.screenshot(path=screenshot_path("finance-bank-line"), full_page=True)
    await page.goto(f"{demo.base_url}/backoffice/finance/bank")
    await page.screenshot(path=screenshot_path("finance-bank"), full_page=True)
    await page.goto(demo.portal_links[1])
    statement = await _statement_rows(page, demo)
    assert numbers[0] not in statement  # paid by the confirmed transfer
    assert numbers[1] in statement  # nothing allocated before finance confirms
    assert page.console_errors == []
