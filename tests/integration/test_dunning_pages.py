"""The dunning pages through the real app: agenda, an action's email, calls, letters,
scenarios, the template editor and the penalty settings."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader

from app import create_app
from receivables.access.tables import PortalLink
from receivables.dunning.defaults import install_defaults
from receivables.dunning.run import run_dunning
from receivables.dunning.tables import (
    DunningAction,
    DunningStep,
    MessageTemplate,
    ReferenceRate,
    Scenario,
)
from receivables.history import Actor, HistoryEvent
from receivables.ledger.tables import Company, Customer, Item, PayerProfile
from receivables.mail.sealed_links import unseal
from receivables.mail.tables import OutboxMessage
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET, app_client, app_settings
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.integration.test_backoffice import make_staff, sign_in

TODAY = date.today()


@pytest.fixture
async def app(db, databases, tmp_path):
    settings = load_settings(
        {
            "SECRET_KEY": TEST_SECRET,
            "BASE_URL": "http://testserver.local",
            "DOCUMENTS_DIR": str(tmp_path / "documents"),
        }
    )
    return create_app(settings, engine=await databases.get(db))


@pytest.fixture
async def world(app):
    users = {r: await make_staff(r) for r in ("admin", "collector", "viewer")}
    other = await make_staff("collector", email="other@seller.example", name="Other Collector")
    company = await make_company(
        name="Atelier Lumière SAS",
        penalty_policy="france",
        penalty_margin_bp=1000,
        compensation_minor=4000,
        address="12 rue des Ateliers\n69002 Lyon\nFrance",
        locale="fr_FR",
    )
    await install_defaults(company.id)
    mine = await make_customer(
        company,
        name="Brasserie du Port",
        ref="C0042",
        collector=users["collector"].id,
        payer_profile=PayerProfile.bad_payer.value,
        language="en",
        address="3 quai du Port\n13002 Marseille",
    )
    julie = await make_contact(
        mine, name="Julie Lambert", email="julie@brasserie.example", phone="+33 4 91 00 00 00"
    )
    paul = await make_contact(
        mine, name="Paul Morel", email="paul@brasserie.example", receives_reminders=False
    )
    theirs = await make_customer(
        company,
        name="Hôtel des Arts",
        ref="C0043",
        collector=other.id,
        payer_profile=PayerProfile.bad_payer.value,
    )
    await make_contact(theirs, name="Anna", email="anna@hotel.example")
    items = [
        await make_item(mine, "1200.00", due=TODAY - timedelta(days=40), number="F-1001"),
        await make_item(mine, "300.00", due=TODAY + timedelta(days=10), number="F-1002"),
    ]
    await make_item(theirs, "80.00", due=TODAY - timedelta(days=20), number="H-1")
    return {
        "users": users,
        "company": company,
        "mine": mine,
        "theirs": theirs,
        "julie": julie,
        "paul": paul,
        "items": items,
    }


async def progress(app, world, days: int) -> DunningAction:
    """Run day after day from today-`days` to today, a collector confirming the reminders
    and logging the calls of every day before today; returns my customer's last action."""
    from receivables.dunning.agenda import CallInput, confirm_actions, log_call

    collector = Actor.system("collector")
    for d in range(days, -1, -1):
        on = TODAY - timedelta(days=d)
        await run_dunning(on, app_settings(app))
        if d == 0:
            break
        for a in await DunningAction.select().where(
            DunningAction.status.is_in(["due", "to_confirm"])
            & (DunningAction.customer == world["mine"].id)
        ):
            if a["status"] == "to_confirm":
                await confirm_actions([a["id"]], collector, app_settings(app), on)
            elif a["channel"] == "phone":
                await log_call(a["id"], CallInput(outcome="no_answer"), collector, on)
    return (
        await DunningAction.objects()
        .where(DunningAction.customer == world["mine"].id)
        .order_by(DunningAction.id, ascending=False)
        .first()
    )


async def test_the_agenda_shows_my_customers_actions_by_level(app, world):
    # Bad payers: first reminder (automatic) then a second one to confirm 7 days later (the
    # scenario says 6, the spacing between two reminders 7).
    action = await progress(app, world, 7)
    assert action.step_name == "Second reminder" and action.status == "to_confirm"
    async with app_client(app) as client:
        await sign_in(client, world["users"]["collector"].email)
        page = await client.get("/backoffice/agenda")
        assert page.status_code == 200
        assert "Brasserie du Port" in page.text and "Hôtel des Arts" not in page.text
        assert 'id="lvl-level_2"' in page.text and "Second reminder" in page.text
        assert "Confirm and send selected" in page.text
        everyone = await client.get("/backoffice/agenda?who=all")
        assert "Hôtel des Arts" in everyone.text


async def test_an_action_shows_its_email_built_from_the_template_and_issues_nothing(app, world):
    action = await progress(app, world, 7)
    links = await PortalLink.count()
    async with app_client(app) as client:
        await sign_in(client, world["users"]["collector"].email)
        page = await client.get(f"/backoffice/agenda/{action.id}")
        assert page.status_code == 200
        assert "Second reminder: #OverdueAmount overdue for #DaysLate days" in page.text
        email = await client.get(f"/backoffice/agenda/{action.id}/email.html")
        assert email.status_code == 200 and "sandbox" in email.headers["content-security-policy"]
        assert "Dear Julie Lambert" in email.text
        assert "F-1001" in email.text and "F-1002" in email.text  # overdue and coming due
        assert "€1,200.00" in email.text and "40 days" in email.text
        assert "a personal link is made for each recipient when sent" in email.text
    assert await PortalLink.count() == links  # a GET issues no link


async def test_the_collector_edits_and_sends_to_chosen_contacts(app, world):
    action = await progress(app, world, 7)
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        form = {
            "_csrf_token": token,
            "language": "en",
            "subject": "About #OverdueAmount, #ContactName",
            "body": (
                "Dear #ContactName,\n\nPay {{ config }} today:\n#OverdueItemsTable\n#PortalLink"
            ),
            "recipients": [str(world["julie"].id), str(world["paul"].id)],
        }
        preview = await client.post(f"/backoffice/agenda/{action.id}/preview", data=form)
        assert preview.status_code == 200 and "Pay {{ config }} today" in preview.text
        # The first reminder only: a preview sends nothing.
        assert await OutboxMessage.count().where(OutboxMessage.customer == world["mine"].id) == 1
        bad = await client.post(
            f"/backoffice/agenda/{action.id}/send", data={**form, "body": "Pay #Amount now"}
        )
        assert bad.status_code == 422 and "#Amount is not a hashtag Relance knows" in bad.text
        sent = await client.post(f"/backoffice/agenda/{action.id}/send", data=form)
        assert sent.status_code == 303
        again = await client.post(f"/backoffice/agenda/{action.id}/send", data=form)
        assert again.status_code == 303  # refused politely: already done
    messages = (
        await OutboxMessage.objects()
        .where(OutboxMessage.customer == world["mine"].id)
        .order_by(OutboxMessage.id)
    )
    assert len(messages) == 3  # the first reminder, then one per chosen contact
    to_julie, to_paul = messages[1], messages[2]
    assert to_julie.subject == "About €1,200.00, Julie Lambert"
    assert to_paul.subject == "About €1,200.00, Paul Morel"
    assert "Pay {{ config }} today" in to_julie.text_body
    # Each has its own link, sealed until it is sent (our stored copy shows it redacted);
    # each thread is its recipient's own: Julie's answers her first reminder, Paul's none.
    assert "/p/…redacted…" in to_julie.text_body
    link_a = unseal(to_julie.sealed_token, TEST_SECRET, to_julie.message_id)
    link_b = unseal(to_paul.sealed_token, TEST_SECRET, to_paul.message_id)
    assert link_a and link_b and link_a != link_b
    assert to_julie.thread_key == messages[0].thread_key != to_paul.thread_key
    action = await DunningAction.objects().get(DunningAction.id == action.id)
    assert action.status == "done" and action.done_by == world["users"]["collector"].email
    done = await HistoryEvent.objects().get(HistoryEvent.kind == "dunning.action_done")
    assert json.loads(done.details)["edited"] is True


async def test_bulk_confirmation_sends_the_built_reminders(app, world):
    action = await progress(app, world, 7)
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        r = await client.post(
            "/backoffice/agenda/confirm", data={"_csrf_token": token, "ids": [str(action.id)]}
        )
        assert r.status_code == 303
        page = await client.get("/backoffice/agenda")
        assert "1 reminder confirmed and sent." in page.text
    action = await DunningAction.objects().get(DunningAction.id == action.id)
    assert action.status == "done"
    last = await OutboxMessage.objects().order_by(OutboxMessage.id, ascending=False).first()
    # Only the contact who receives reminders; the statement travels as an attachment later.
    assert last.to_addrs == "Julie Lambert <julie@brasserie.example>"
    assert last.subject.startswith("Second reminder: €1,200.00 overdue for 40 days")


async def test_a_call_records_a_promise_on_the_spot(app, world):
    action = await progress(app, world, 10)
    assert action.step_name == "Phone call"
    promise = TODAY + timedelta(days=7)
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        bad = await client.post(
            f"/backoffice/agenda/{action.id}/call",
            data={
                "_csrf_token": token,
                "outcome": "reached",
                "record": "promise",
                "items": str(world["items"][0].id),
            },
        )
        assert bad.status_code == 422 and "a promise to pay needs its date" in bad.text
        r = await client.post(
            f"/backoffice/agenda/{action.id}/call",
            data={
                "_csrf_token": token,
                "outcome": "reached",
                "notes": "Will pay next week",
                "record": "promise",
                "items": str(world["items"][0].id),
                "promise_date": promise.isoformat(),
            },
        )
        assert r.status_code == 303
    item = await Item.objects().get(Item.id == world["items"][0].id)
    assert (item.status, item.promise_date, item.comment) == (
        "promised",
        promise,
        "Will pay next week",
    )
    kinds = [
        e["kind"] for e in await HistoryEvent.select(HistoryEvent.kind).order_by(HistoryEvent.id)
    ]
    assert kinds[-2:] == ["call.logged", "item.status_changed"]
    # The promised invoice no longer drives the cycle: the next run leaves the account alone.
    before = await DunningAction.count().where(DunningAction.customer == world["mine"].id)
    await run_dunning(TODAY + timedelta(days=5), app_settings(app))
    assert await DunningAction.count().where(DunningAction.customer == world["mine"].id) == before


async def test_skip_and_postpone(app, world):
    action = await progress(app, world, 10)
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        r = await client.post(
            f"/backoffice/agenda/{action.id}/postpone",
            data={"_csrf_token": token, "until": TODAY.isoformat()},
        )
        assert r.status_code == 422 and "a date after today" in r.text
        later = TODAY + timedelta(days=3)
        r = await client.post(
            f"/backoffice/agenda/{action.id}/postpone",
            data={"_csrf_token": token, "until": later.isoformat(), "reason": "on holiday"},
        )
        assert r.status_code == 303
        page = await client.get("/backoffice/agenda")
        assert "Phone call" not in page.text  # not due before its new date
        r = await client.post(
            f"/backoffice/agenda/{action.id}/skip", data={"_csrf_token": token, "reason": ""}
        )
        assert r.status_code == 422 and "say why this step is skipped" in r.text
        r = await client.post(
            f"/backoffice/agenda/{action.id}/skip",
            data={"_csrf_token": token, "reason": "Agreed a plan by phone"},
        )
        assert r.status_code == 303
    action = await DunningAction.objects().get(DunningAction.id == action.id)
    assert (action.status, action.outcome, action.due_on) == (
        "skipped",
        "Agreed a plan by phone",
        later,
    )


async def test_the_formal_notice_letter_is_downloaded_and_marked_sent(app, world):
    action = await progress(app, world, 15)
    assert action.step_name == "Formal notice" and action.channel == "letter"
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        pdf = await client.get(f"/backoffice/agenda/{action.id}/letter.pdf")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
        for expected in (
            "Atelier Lumière SAS",
            "Brasserie du Port",
            "3 quai du Port",
            "Formal notice to pay",
            "F-1001",
            "L441-10",
            "within eight days",
        ):
            assert expected in text, expected
        assert "recorded delivery with acknowledgement of receipt" in text.lower()
        assert re.search(r"Total penalties\s*€\d", text)  # the penalties, per item and in total
        r = await client.post(
            f"/backoffice/agenda/{action.id}/letter-sent",
            data={"_csrf_token": token, "sent_on": TODAY.isoformat()},
        )
        assert r.status_code == 303
        kept = await client.get(f"/backoffice/agenda/{action.id}/letter.pdf")
    action = await DunningAction.objects().get(DunningAction.id == action.id)
    assert action.status == "done" and action.letter_sent_on == TODAY
    stored = Path(app_settings(app).documents_path) / action.letter_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == action.letter_sha256
    assert kept.content == stored.read_bytes()  # the letter as posted, not a new rendering
    event = await HistoryEvent.objects().get(HistoryEvent.kind == "letter.sent")
    assert json.loads(event.details)["sha256"] == action.letter_sha256


async def test_admins_copy_and_edit_scenarios_and_assign_customers(app, world):
    default = await Scenario.objects().get(Scenario.payer_profile == "negligent")
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["admin"].email)
        page = await client.get("/backoffice/scenarios")
        assert page.status_code == 200 and page.text.count('class="card dn-scenario"') == 7
        r = await client.post(
            f"/backoffice/scenarios/{default.id}/copy", data={"_csrf_token": token}
        )
        assert r.status_code == 303
        copy = await Scenario.objects().get(Scenario.name == f"Copy of {default.name}")
        assert await DunningStep.count().where(DunningStep.scenario == copy.id) == 6
        bad = await client.post(
            f"/backoffice/scenarios/{copy.id}/steps",
            data={
                "_csrf_token": token,
                "name": "Letter",
                "level": "level_3",
                "offset_days": "x",
                "channel": "letter",
                "mode": "automatic",
                "template_code": "reminder_1",
            },
        )
        assert bad.status_code == 422
        for message in (
            "a whole number of days",
            "only emails are sent automatically",
            "&#39;reminder_1&#39; is written for a email",
        ):
            assert message in bad.text, message
        # One id per element (each step's form and the add form have their own), the error
        # under the add form's field and its label pointing to it.
        ids = re.findall(r'\sid="([^"]+)"', bad.text)
        assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
        assert 'for="f-add-offset_days"' in bad.text and 'id="f-add-offset_days-error"' in bad.text
        ok = await client.post(
            f"/backoffice/scenarios/{copy.id}/steps",
            data={
                "_csrf_token": token,
                "name": "Courtesy call",
                "level": "level_1",
                "offset_days": "1",
                "channel": "phone",
                "mode": "manual",
            },
        )
        assert ok.status_code == 303
        r = await client.post(
            f"/backoffice/scenarios/{copy.id}/customers",
            data={"_csrf_token": token, "customer_ref": "C0042"},
        )
        assert r.status_code == 303
        r = await client.post(
            f"/backoffice/scenarios/{default.id}/delete", data={"_csrf_token": token}
        )
        assert r.status_code == 303  # refused with a message: defaults stay
    assert (await Customer.objects().get(Customer.ref == "C0042")).scenario == copy.id
    assert await Scenario.exists().where(Scenario.id == default.id)
    # The customer now follows the copy: its new first step is the courtesy call on day 1.
    await run_dunning(TODAY, app_settings(app))
    action = await DunningAction.objects().get(DunningAction.customer == world["mine"].id)
    assert action.step_name == "Courtesy call"
    # A collector may read scenarios but not change them.
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        assert (await client.get(f"/backoffice/scenarios/{copy.id}")).status_code == 200
        r = await client.post(f"/backoffice/scenarios/{copy.id}/copy", data={"_csrf_token": token})
        assert r.status_code == 403


async def test_the_template_editor_refuses_unknown_hashtags_and_previews(app, world):
    template = await MessageTemplate.objects().get(
        (MessageTemplate.code == "reminder_1") & (MessageTemplate.language == "fr")
    )
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["admin"].email)
        page = await client.get(f"/backoffice/templates/{template.id}")
        assert page.status_code == 200
        for tag in ("#OpenItemsTable", "#PortalLink", "#Penalties", "#CollectorPhone"):
            assert tag in page.text
        bad = await client.post(
            f"/backoffice/templates/{template.id}",
            data={
                "_csrf_token": token,
                "name": "R1",
                "subject": "Relance #customername",
                "body": "Bonjour #ContactName, payez #Montant.",
            },
        )
        assert bad.status_code == 422
        assert (
            "#customername is not a hashtag Relance knows (did you mean #CustomerName?)" in bad.text
        )
        assert "#Montant is not a hashtag" in bad.text
        unchanged = await MessageTemplate.objects().get(MessageTemplate.id == template.id)
        assert unchanged.body == template.body
        preview = await client.post(
            f"/backoffice/templates/{template.id}/preview",
            data={
                "_csrf_token": token,
                "subject": "Relance",
                "customer": str(world["mine"].id),
                "body": "Bonjour #ContactName, {{ ''.__class__ }}\n#OverdueItemsTable",
            },
        )
        assert preview.status_code == 200
        assert "Bonjour Julie Lambert, {{ &#x27;&#x27;.__class__ }}" in preview.text
        assert "F-1001" in preview.text
        assert re.search(r"1\s200,00\s€", preview.text)  # French figures
        saved = await client.post(
            f"/backoffice/templates/{template.id}",
            data={
                "_csrf_token": token,
                "name": "R1",
                "subject": "Relance #CustomerName",
                "body": "Bonjour #ContactName,\n{{ ''.__class__ }}\n#OverdueItemsTable",
            },
        )
        assert saved.status_code == 303
        letter = await MessageTemplate.objects().get(
            (MessageTemplate.code == "formal_notice") & (MessageTemplate.language == "en")
        )
        r = await client.post(
            f"/backoffice/templates/{letter.id}",
            data={"_csrf_token": token, "name": "x", "subject": "x", "body": "See #PortalLink"},
        )
        assert r.status_code == 422 and "#PortalLink cannot be used in a letter" in r.text


async def test_penalty_presets_and_reference_rates(app, world):
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["admin"].email)
        page = await client.get("/backoffice/penalties")
        assert page.status_code == 200
        assert "ECB main refinancing rate" in page.text and "2.15 %" in page.text
        r = await client.post(
            "/backoffice/penalties/policy", data={"_csrf_token": token, "preset": "uk"}
        )
        assert r.status_code == 303
        company = await Company.objects().get(Company.id == world["company"].id)
        assert (company.penalty_policy, company.penalty_margin_bp) == ("uk", 800)
        bad = await client.post(
            "/backoffice/penalties/rates",
            data={
                "_csrf_token": token,
                "source": "boe",
                "effective_from": "2026-02-05",
                "rate": "3,755",
            },
        )
        assert bad.status_code == 422 and "two decimals at most" in bad.text
        r = await client.post(
            "/backoffice/penalties/rates",
            data={
                "_csrf_token": token,
                "source": "boe",
                "effective_from": "2026-02-05",
                "rate": "3.75",
            },
        )
        assert r.status_code == 303
    row = await ReferenceRate.objects().get(ReferenceRate.effective_from == date(2026, 2, 5))
    assert (row.source, row.rate_bp) == ("boe", 375)
    kinds = {e["kind"] for e in await HistoryEvent.select(HistoryEvent.kind)}
    assert {"dunning.penalty_policy_set", "dunning.reference_rate_set"} <= kinds


async def test_a_call_records_a_dispute_and_the_page_shows_the_penalties(app, world):
    action = await progress(app, world, 10)
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        page = await client.get(f"/backoffice/agenda/{action.id}")
        # France: ECB rate + 10 points; 40 days late on €1,200.00, plus EUR 40.
        assert "Late-payment penalties" in page.text and "FRANCE policy" in page.text
        assert re.search(r"F-1001</td><td class=\"num\">40 d</td>", page.text)
        assert "€40.00" in page.text
        r = await client.post(
            f"/backoffice/agenda/{action.id}/call",
            data={
                "_csrf_token": token,
                "outcome": "reached",
                "record": "dispute",
                "items": str(world["items"][0].id),
                "dispute_reason": "quality",
                "notes": "Says the lamps arrived broken",
            },
        )
        assert r.status_code == 303
    item = await Item.objects().get(Item.id == world["items"][0].id)
    assert (item.status, item.dispute_reason) == ("disputed", "quality")
    call = await HistoryEvent.objects().get(HistoryEvent.kind == "call.logged")
    details = json.loads(call.details)
    assert details["recorded"] == "dispute" and details["items"] == ["F-1001"]
    assert details["text"] == "Says the lamps arrived broken"
