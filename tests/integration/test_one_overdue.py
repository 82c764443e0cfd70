"""One definition of "overdue": the statement, the portal headline, the reminder, the list.

Past due and not on hold; held invoices (a pending answer, a dispute, a payment under way,
a promise still running) are shown apart everywhere. The SQL form of a hold used by the
lists agrees with `hold_of` item by item.
"""

from __future__ import annotations

import re
from datetime import timedelta

from receivables.clock import company_today
from receivables.dunning.defaults import install_defaults
from receivables.dunning.run import run_dunning
from receivables.ledger.customer_list import CustomerFilters, list_customers
from receivables.ledger.statement import build_statement, hold_of, not_held_sql, promise_floor
from receivables.ledger.tables import Item, ItemKind
from receivables.mail.tables import OutboxMessage
from receivables.portal.feedback import AnswerForm, submit_answer
from receivables.portal.sessions import contact_actor
from tests.factories import make_company, make_customer, make_item
from tests.integration.test_portal_support import *  # noqa: F403 (fixtures)
from tests.integration.test_portal_support import make_account, open_visit
from tests.simulation import ROOT


async def test_the_sql_hold_agrees_with_hold_of_item_by_item(db):
    company = await make_company()
    customer = await make_customer(company)
    today = await company_today(company.id)
    cases = []
    for status in ("open", "promised", "disputed", "paid_pending", "payment_in_progress"):
        for promise_days in (None, -10, -4, -3, -1, 0, 5):
            if status != "promised" and promise_days is not None:
                continue
            for pending in ("", "paid", "dispute"):
                cases.append((status, promise_days, pending))
    for n, (status, promise_days, pending) in enumerate(cases):
        await make_item(
            customer,
            "10.00",
            due=today - timedelta(days=20),
            number=f"H-{n}",
            status=status,
            promise_date=None if promise_days is None else today + timedelta(days=promise_days),
            pending_answer=pending,
        )
    rows = await Item.select(Item.id, Item.status, Item.promise_date, Item.pending_answer)
    expected = {
        r["id"]
        for r in rows
        if not hold_of(r["status"], r["promise_date"], r["pending_answer"], today)
    }
    found = await Item.raw(
        f"SELECT i.id FROM item i WHERE {not_held_sql()}",  # noqa: S608
        promise_floor(today),
    )
    assert {r["id"] for r in found} == expected
    assert 0 < len(expected) < len(rows)


async def test_portal_headline_reminder_and_list_show_the_same_overdue(pclient, portal_settings):
    account = await make_account(portal_settings)  # late 1,200.00 and 300.50, soon 800.00
    customer = account.customer
    today = await company_today(account.company.id)
    await install_defaults(account.company.id)
    await customer.update_self({customer.__class__.payer_profile: "negligent"})
    await make_item(
        customer, "200.00", due=today - timedelta(days=12), number="DISP", status="disputed"
    )
    await make_item(
        customer,
        "400.00",
        due=today - timedelta(days=15),
        number="PROM",
        status="promised",
        promise_date=today + timedelta(days=4),
    )
    await make_item(
        customer, "50.00", due=today - timedelta(days=3), kind=ItemKind.credit_note, number="CN"
    )
    # The customer says the 300.50 one is paid: on hold until a collector decides.
    from receivables.portal.emails import PortalMail
    from web.mailing import TemplateComposer

    await submit_answer(
        customer_id=customer.id,
        contact_id=account.contact.id,
        actor=contact_actor(account.contact.id, account.contact.email),
        ip="198.51.100.4",
        item_ids=[str(account.items["late2"].id)],
        form=AnswerForm(kind="paid", paid_on=today.isoformat(), method="transfer"),
        proof=None,
        today=today,
        documents_dir=portal_settings.documents_path,
        mail=PortalMail(
            compose=TemplateComposer(ROOT / "templates"),
            mail_from=portal_settings.smtp_from,
            base_url=portal_settings.base_url,
        ),
    )
    statement = await build_statement(customer.id, today)
    eur = statement.totals["EUR"]
    assert str(eur.overdue.amount) == "1200.00"  # only the invoice that asks for payment
    assert str(eur.on_hold.amount) == "900.50"  # 300.50 answered, 200 disputed, 400 promised
    assert str(eur.open.amount) == "2850.50"  # 1200 + 900.50 + 800 - 50

    # The reminder asks for exactly that.
    report = await run_dunning(today, portal_settings)
    assert report.queued == 1
    reminder = await OutboxMessage.objects().get(
        (OutboxMessage.customer == customer.id) & (OutboxMessage.kind == "dunning")
    )
    assert "€1,200.00" in reminder.subject
    assert "€2,100.50" not in reminder.subject + reminder.text_body  # the gross overdue
    # Held invoices are listed apart, after what is asked for.
    body = reminder.text_body
    assert body.index("On hold") < body.index("DISP") and body.index("On hold") < body.index("PROM")
    # The portal's headline.
    page = await open_visit(pclient, account)
    headline = re.search(r"Overdue.{0,400}?(€[\d,.]+)", page.text, re.S)
    assert headline and headline.group(1) == "€1,200.00", page.text[:2000]
    # The back office list: the same overdue, and open net of the credit note.
    listed = (await list_customers(CustomerFilters(), today)).rows
    row = next(r for r in listed if r.id == customer.id)
    assert [str(m.amount) for m in row.overdue_amounts] == ["1200.00"]
    assert [str(m.amount) for m in row.open_amounts] == ["2850.50"]
