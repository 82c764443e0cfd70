"""Cash application in headless Chromium against `relance demo`: the ERP sends a customer's
invoices, a credit note and a transfer that names no invoice; a finance user applies the
transfer to two invoices and the credit note to a third from Finance > Cash application;
the account page and the customer's portal then show the same open amounts. Screenshots."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from babel.numbers import format_currency

from tests.browser.conftest import screenshot_path

FINANCE = "finance@relance.demo"
TAG = secrets.token_hex(2).upper()  # the demo is shared by the session's browser tests
REF = f"NAV{TAG}"
NAME = f"Comptoir du Navigateur {TAG}"
N = {k: f"NAV{TAG}-{k}" for k in ("1", "2", "3", "CN")}
PAID = f"VIR-NAV{TAG}"


LOCALES = ("en_GB", "fr_FR")


def _spaces(text: str) -> str:
    """Amounts as the eye reads them: no-break and narrow spaces as plain ones."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def _relance(demo, *args: str) -> str:
    """The CLI on the demo's database, as an operator would run it."""
    folder = demo.folder
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{(folder / 'relance-demo.sqlite3').resolve()}",
        "SECRET_KEY": (folder / "relance-demo.secret").read_text().strip(),
        "BASE_URL": demo.base_url,
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("relance")), *args],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _erp_sends(demo) -> None:
    today = date.today()
    items = (
        (N["1"], "invoice", 40, "600.00"),
        (N["2"], "invoice", 20, "400.00"),
        (N["3"], "invoice", 10, "258.98"),
        (N["CN"], "credit_note", 5, "250.00"),
    )
    files = {
        "customers.csv": f"ref,name,payer_profile\n{REF},{NAME},negligent\n",
        "contacts.csv": "customer_ref,name,email,language\n"
        f"{REF},Nina Payables,nina{TAG}@navigateur.example,en\n",
        "items.csv": "number,customer_ref,kind,issue_date,due_date,total,currency\n"
        + "".join(
            f"{n},{REF},{k},{today - timedelta(days=d + 30)},{today - timedelta(days=d)},{t},EUR\n"
            for n, k, d, t in items
        ),
        "payments.csv": "ref,customer_ref,received_on,amount,currency,method\n"
        f"{PAID},{REF},{today},850.00,EUR,transfer\n",
    }
    paths = []
    for name, text in files.items():
        path = demo.folder / f"{REF}-{name}"
        path.write_text(text)
        paths.append(str(path))
    _relance(demo, "import", "--company", "ATL", "--decimal-separator", ".", *paths)


async def _apply(page, base: str, money_ref: str) -> dict:
    """From the finance pages to the money's Apply form; the amount field of each invoice."""
    await page.goto(f"{base}/backoffice/finance")
    await page.click("nav.fin-tabs >> text=Cash application")
    await page.wait_for_selector("h1:has-text('Cash application')")
    await page.locator("tr", has_text=money_ref).get_by_role("link", name="Apply…").click()
    form = page.locator("#apply-form")
    await form.wait_for()
    return {k: form.get_by_label(f"Amount to apply to {N[k]}") for k in ("1", "2", "3")}


async def test_finance_applies_a_transfer_and_a_credit_note(demo, page):
    _erp_sends(demo)
    base = demo.base_url
    await page.goto(f"{base}/backoffice/login")
    await page.fill("#f-email", FINANCE)
    await page.fill("#f-password", demo.password)
    await page.click("form[action='/backoffice/login'] button[type=submit]")
    await page.wait_for_load_state("networkidle")

    # The transfer: oldest first proposed, as the customer's remittance says.
    amount = await _apply(page, base, PAID)
    assert await amount["1"].input_value() == "600.00"
    assert await amount["2"].input_value() == "250.00"
    assert await amount["3"].input_value() == ""
    await page.screenshot(
        path=screenshot_path("finance-cash-apply"), full_page=True, caret="initial"
    )
    # More than an invoice's open amount: refused, nothing applied, the typed amounts kept.
    await amount["2"].fill("400.01")
    await page.locator("#apply-form").get_by_role("button", name="Apply").click()
    await page.wait_for_selector("text=Nothing was applied")
    assert f"{N['2']}: only €400.00 open" in await page.inner_text("main")
    assert await amount["2"].input_value() == "400.01"
    await page.screenshot(
        path=screenshot_path("finance-cash-refused"), full_page=True, caret="initial"
    )
    await amount["2"].fill("250.00")
    await page.locator("#apply-form").get_by_role("button", name="Apply").click()
    await page.wait_for_selector("text=applied to 2 invoices")
    assert await page.locator("ul.cash-applied > li").count() == 2

    # The credit note, to the third invoice rather than what is left of the second.
    amount = await _apply(page, base, N["CN"])
    await amount["2"].fill("")
    await amount["3"].fill("250.00")
    await page.locator("#apply-form").get_by_role("button", name="Apply").click()
    await page.wait_for_selector("text=applied to 1 invoice")
    # 8.98 left on the third: under a tolerance of 10.00, proposed and written off in one click.
    await page.goto(f"{base}/backoffice/finance/cash")
    main = await page.inner_text("main")
    assert PAID not in main and N["CN"] not in main and N["3"] not in main
    await page.get_by_label("Atelier Lumière SAS (EUR)").fill("10.00")
    await page.locator("form.cash-tolerance").get_by_role("button", name="Save").click()
    await page.wait_for_selector("text=Write-off tolerance of Atelier Lumière SAS: €10.00")
    remainder = page.locator("tr", has_text=N["3"])
    assert "€8.98" in await remainder.inner_text()
    await page.screenshot(path=screenshot_path("finance-cash"), full_page=True, caret="initial")
    await remainder.get_by_role("button", name="Write off €8.98").click()
    await page.wait_for_selector("text=Remainder written off")
    assert N["3"] not in await page.inner_text("main")
    await page.get_by_label("Atelier Lumière SAS (EUR)").fill("0")  # the demo is shared
    await page.locator("form.cash-tolerance").get_by_role("button", name="Save").click()
    await page.wait_for_selector("text=Write-off tolerance of Atelier Lumière SAS: €0.00")

    # The account page and the customer's portal show the same open amounts.
    await page.goto(f"{base}/backoffice/customers?q={REF}")
    await page.get_by_role("link", name=NAME).first.click()
    await page.wait_for_url(re.compile(r"/backoffice/customers/\d+$"))
    await page.wait_for_selector("h1:has-text('Comptoir du Navigateur')")
    account = await page.inner_text("main")
    assert "€150.00" in account and "€8.98" in account  # open; and the write-off's event
    assert f"Payment {PAID} applied" in account and "written off" in account
    link = re.search(r"https?://\S+/p/\S+", _relance(demo, "portal-link", REF)).group(0)
    await page.goto(link)
    await page.wait_for_load_state("networkidle")
    portal = await page.inner_text("main")
    await page.screenshot(path=screenshot_path("portal-after-cash-application"), full_page=True)
    portal = _spaces(portal)
    shown = {_spaces(format_currency(Decimal("150.00"), "EUR", locale=lc)) for lc in LOCALES}
    assert any(f in portal for f in shown), portal[:1500]  # in the customer's language
    assert N["2"] in portal
    assert N["3"] not in portal and N["CN"] not in portal and PAID not in portal
    # The refusal is a 422, which the browser and htmx note; nothing else went wrong.
    assert [e for e in page.console_errors if "422" not in e] == []
