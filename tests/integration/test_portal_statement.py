"""The statement page: every figure of build_statement, penalties, filters and sorting by
htmx, inert customer text, credit notes and unapplied payments."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

from receivables.history import Actor
from receivables.ledger.allocations import allocate
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import Company, ItemKind
from receivables.money import Money
from tests.factories import make_item, make_payment
from tests.integration.test_portal_support import *  # noqa: F403 (fixtures)
from tests.integration.test_portal_support import csrf_of, hx, make_account, open_visit
from web.filters import money

TODAY = date.today()


def numbers_in_table(html: str) -> list[str]:
    return re.findall(
        r'<td data-label="[^"]*" class="item-number">\s*<span class="strong">([^<]+)<', html
    )


async def test_every_figure_of_the_statement_is_on_the_page(pclient, portal_settings):
    account = await make_account(portal_settings)
    customer = account.customer
    await make_item(
        customer, "99.99", due=TODAY - timedelta(days=3), currency="USD", number="INV-USD"
    )
    await make_item(
        customer, "150.00", due=TODAY - timedelta(days=9), kind=ItemKind.credit_note, number="CN-7"
    )
    partly = await make_item(customer, "500.00", due=TODAY - timedelta(days=70), number="INV-PART")
    payment = await make_payment(customer, "225.00", ref="VIR-77")
    await allocate(payment.id, partly.id, Money(Decimal("200.00"), "EUR"), Actor.system())

    page = await open_visit(pclient, account)
    html = page.text
    st = await build_statement(customer.id, TODAY)
    assert set(st.totals) == {"EUR", "USD"}
    for totals in st.totals.values():
        for figure in (totals.overdue, totals.not_due, totals.open):
            assert money(figure, "en_GB") in html, figure
    assert money(st.totals["EUR"].credits, "en_GB") in html  # "after X of credit notes..."
    shown = numbers_in_table(html)
    assert shown == [i.number for i in st.invoices]  # overdue first, oldest first
    assert shown[0] == "INV-PART" and shown[-1] == account.items["soon"].number
    for item in st.invoices:
        assert money(item.open, "en_GB") in html and money(item.total, "en_GB") in html
    assert ">70<" in html  # days late of INV-PART
    assert "CN-7" in html and "VIR-77" in html and money(Money(Decimal("25.00"), "EUR")) in html
    assert "Received, not yet matched to invoices" in html
    assert "Late-payment penalties" not in html  # policy 'none'
    # The company and the collector, the bank details and the reference to quote.
    assert "Seller &amp; Co SAS" in html and "Colette Collector" in html
    assert account.collector_email in html
    assert "FR76 3000 6000 0112 3456 7890 189" in html and "AGRIFRPP" in html
    assert f'<span class="pay-reference mono">{customer.ref}</span>' in html


async def test_penalties_under_a_fixed_rate_policy(pclient, portal_settings):
    account = await make_account(
        portal_settings, policy="fixed", penalty_fixed_rate_bp=1200, compensation_minor=4000
    )
    html = (await open_visit(pclient, account)).text
    # 1200.00 x 12% x 40/365 = 15.78; 300.50 x 12% x 5/365 = 0.49; 2 x 40.00 compensation.
    assert "Late-payment penalties" in html and "Interest at 12% a year" in html
    assert "€16.27" in html and "€80.00" in html and "€96.27" in html
    assert "not included in the totals above" in html


async def test_reference_rate_policy_shows_interest_and_compensation(pclient, portal_settings):
    account = await make_account(
        portal_settings,
        policy=Company.PenaltyPolicy.france.value,
        compensation_minor=4000,
        penalty_margin_bp=1000,
    )
    html = (await open_visit(pclient, account)).text
    assert "Fixed compensation for recovery costs" in html and "€80.00" in html
    # The ECB rate in force (seeded reference rates) plus the French 10 points.
    assert "Interest at 12.15% a year" in html
    assert "Interest at the reference rate may be added" not in html


async def test_filters_and_sorting_answer_with_the_table_fragment(pclient, portal_settings):
    account = await make_account(portal_settings)
    await open_visit(pclient, account)
    late, late2, soon = (account.items[k].number for k in ("late", "late2", "soon"))

    overdue = await pclient.get("/p/statement?show=overdue", headers=hx())
    assert overdue.status_code == 200
    assert "<html" not in overdue.text and 'id="statement-filters"' in overdue.text
    assert numbers_in_table(overdue.text) == [late, late2]
    coming = await pclient.get("/p/statement?show=due", headers=hx())
    assert numbers_in_table(coming.text) == [soon]
    by_open = await pclient.get("/p/statement?sort=open&order=desc", headers=hx())
    assert numbers_in_table(by_open.text) == [late, soon, late2]
    assert 'aria-sort="descending"' in by_open.text
    # A boosted navigation or a plain visit gets the whole page.
    boosted = await pclient.get("/p/statement?show=overdue", headers=hx(**{"HX-Boosted": "true"}))
    assert "<html" in boosted.text
    plain = await pclient.get("/p/statement?show=nonsense&sort=evil")
    assert plain.status_code == 200 and numbers_in_table(plain.text) == [late, late2, soon]


async def test_customer_text_renders_inert(pclient, portal_settings):
    account = await make_account(portal_settings)
    await make_item(
        account.customer,
        "10.00",
        due=TODAY - timedelta(days=1),
        number="INV-XSS",
        po_number='<img src=x onerror="alert(1)">',
    )
    page = await open_visit(pclient, account)
    assert '<img src=x onerror="alert(1)">' not in page.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text
    evil = '<script>alert(1)</script><b hx-get="/x" hx-trigger="load">boo</b>'
    item = account.items["late"].id
    # Re-shown after a refusal (no reason chosen): escaped, never live markup.
    refused = await pclient.post(
        "/p/answer",
        data={
            "item": str(item),
            "kind": "dispute",
            "text": evil,
            "_csrf_token": csrf_of(page.text),
        },
        headers=hx(),
    )
    assert refused.status_code == 422
    assert "<script>alert(1)</script>" not in refused.text
    assert 'hx-get="/x"' not in refused.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in refused.text
    # Accepted: stored as typed, shown nowhere as markup (page, email to the collector).
    accepted = await pclient.post(
        "/p/answer",
        data={
            "item": str(item),
            "kind": "dispute",
            "dispute_reason": "price",
            "text": evil,
            "_csrf_token": csrf_of(page.text),
        },
        headers=hx(),
    )
    assert accepted.status_code == 200
    again = await pclient.get("/p/statement")
    for html in (accepted.text, again.text):
        assert "<script>alert(1)</script>" not in html and 'hx-get="/x"' not in html
    from receivables.mail.tables import OutboxMessage

    mail = await OutboxMessage.objects().first()
    assert "<script>alert(1)</script>" not in mail.html_body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html_body
    assert 'hx-get="/x"' not in mail.html_body
    assert evil in mail.text_body  # the plain-text part is text: shown, never run


async def test_empty_account_says_so(pclient, portal_settings):
    account = await make_account(portal_settings)
    from receivables.ledger.tables import Item

    await Item.update({Item.open_minor: 0}).where(Item.customer == account.customer.id)
    html = (await open_visit(pclient, account)).text
    assert "Nothing is open on your account" in html and "Open invoices" not in html


async def test_long_statements_show_the_first_rows_then_all_on_demand(pclient, portal_settings):
    from receivables.ledger.tables import Item

    account = await make_account(portal_settings)
    await Item.insert(
        *[
            Item(
                company=account.company.id,
                customer=account.customer.id,
                kind="invoice",
                number=f"BULK-{n:03d}",
                issue_date=TODAY - timedelta(days=60),
                due_date=TODAY - timedelta(days=30),
                currency="EUR",
                total_minor=1000 + n,
                open_minor=1000 + n,
            )
            for n in range(100)
        ]
    )
    page = await open_visit(pclient, account)
    assert len(numbers_in_table(page.text)) == 100
    assert "Showing the first 100 of 103 invoices." in page.text
    everything = await pclient.get("/p/statement?rows=all", headers=hx())
    assert len(numbers_in_table(everything.text)) == 103
    assert "Showing the first" not in everything.text
    # Sorting keeps every row once they are all shown.
    assert "rows=all" in re.search(
        r'href="(/p/statement\?[^"]*sort=open[^"]*)"', everything.text
    ).group(1)
