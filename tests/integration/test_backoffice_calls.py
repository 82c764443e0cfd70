"""Calls, notes and emails from the account page and the agenda; the escalation panel and its
forms; the agenda's late tasks, litigation hand-over and reminder spacing. Refused forms
come back with the field named and what was typed, never a 500."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from app import create_app
from receivables.access.portal_links import resolve_token
from receivables.access.tables import PortalLink
from receivables.clock import company_today
from receivables.dunning.defaults import install_defaults
from receivables.dunning.tables import DunningAction, DunningStep, Scenario
from receivables.history import HistoryEvent
from receivables.ledger.tables import Customer, Item, PayerProfile, PromiseToPay
from receivables.mail.sealed_links import unseal
from receivables.mail.tables import OutboxMessage
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET, app_client
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.integration.test_backoffice import make_staff, sign_in


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
    today = await company_today()
    users = {r: await make_staff(r) for r in ("admin", "collector", "viewer")}
    company = await make_company(name="Atelier Lumière SAS")
    await install_defaults(company.id)
    customer = await make_customer(
        company,
        name="Brasserie du Port",
        ref="C0042",
        collector=users["collector"].id,
        payer_profile=PayerProfile.bad_payer.value,
        language="en",
    )
    julie = await make_contact(
        customer, name="Julie Lambert", email="julie@brasserie.example", phone="+33 4 91 00"
    )
    paul = await make_contact(
        customer, name="Paul Morel", email="paul@brasserie.example", receives_reminders=False
    )
    items = [
        await make_item(customer, "1200.00", due=today - timedelta(days=40), number="F-1001"),
        await make_item(customer, "300.00", due=today + timedelta(days=10), number="F-1002"),
    ]
    return {
        "today": today,
        "users": users,
        "company": company,
        "customer": customer,
        "julie": julie,
        "paul": paul,
        "items": items,
    }


async def make_action(world, *, level="level_2", channel="phone", due_days=0, **kw):
    """An open task of the customer, as the daily run would have made it."""
    today = world["today"]
    action = DunningAction(
        company=world["company"].id,
        customer=world["customer"].id,
        step_name=kw.pop("step_name", "Phone call"),
        level=level,
        channel=channel,
        mode=kw.pop("mode", "manual"),
        offset_days=10,
        template_code=kw.pop("template_code", ""),
        cycle_start=today - timedelta(days=40),
        due_on=today - timedelta(days=due_days),
        items=json.dumps(
            [
                {
                    "id": world["items"][0].id,
                    "number": "F-1001",
                    "open_minor": 120000,
                    "currency": "EUR",
                    "status": "open",
                    "due": "x",
                }
            ]
        ),
        **kw,
    )
    await action.save()
    return action


def account(world) -> str:
    return f"/backoffice/customers/{world['customer'].id}"


async def kinds(customer_id: int) -> list[str]:
    rows = await HistoryEvent.select(HistoryEvent.kind).where(HistoryEvent.customer == customer_id)
    return [r["kind"] for r in rows]


# ------------------------------------------------------------------ calls


async def test_a_promise_without_an_invoice_names_the_field_and_keeps_what_was_typed(app, world):
    promised = (world["today"] + timedelta(days=7)).isoformat()
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        r = await client.post(
            f"{account(world)}/calls",
            data={
                "_csrf_token": token,
                "outcome": "reached",
                "notes": "Will pay on Friday, says Julie",
                "record": "promise",
                "promise_date": promised,
            },
        )
    assert r.status_code == 422, r.text[:300]
    assert 'id="f-items-error"' in r.text and "choose the invoices concerned" in r.text
    assert f'value="{promised}"' in r.text
    assert "Will pay on Friday, says Julie" in r.text
    assert re.search(r'<option value="promise" selected>', r.text)
    assert "call.logged" not in await kinds(world["customer"].id)


async def test_bad_dates_are_named_and_nothing_is_written(app, world):
    item = world["items"][0]
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        r = await client.post(
            f"{account(world)}/calls",
            data={
                "_csrf_token": token,
                "outcome": "reached",
                "record": "promise",
                "items": str(item.id),
                "promise_date": "31/12/2026",
                "callback_on": world["today"].isoformat(),
            },
        )
        assert r.status_code == 422
        assert 'id="f-promise_date-error"' in r.text and "a date like 2026-12-31" in r.text
        assert "a promise to pay needs its date" not in r.text  # named once, as unreadable
        assert 'id="f-callback_on-error"' in r.text and "a date after today" in r.text
        assert 'value="31/12/2026"' in r.text
        # A promise needs someone on the line.
        r = await client.post(
            f"{account(world)}/calls",
            data={
                "_csrf_token": token,
                "outcome": "no_answer",
                "record": "promise",
                "items": str(item.id),
                "promise_date": (world["today"] + timedelta(days=3)).isoformat(),
            },
        )
        assert r.status_code == 422 and "needs the customer reached" in r.text
    assert (await Item.objects().get(Item.id == item.id)).status == "open"
    assert "call.logged" not in await kinds(world["customer"].id)


async def test_a_call_from_the_account_page_records_the_promise_on_the_invoice(app, world):
    item = world["items"][0]
    promised = world["today"] + timedelta(days=7)
    callback = world["today"] + timedelta(days=9)
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        r = await client.post(
            f"{account(world)}/calls",
            data={
                "_csrf_token": token,
                "outcome": "reached",
                "notes": "Will pay next week",
                "record": "promise",
                "items": str(item.id),
                "promise_date": promised.isoformat(),
                "callback_on": callback.isoformat(),
            },
        )
        assert r.status_code == 303
        page = await client.get(account(world))
    assert "Call logged. 1 invoice set to promise to pay." in page.text
    assert "Call logged: promise to pay on" in page.text and "for F-1001" in page.text
    assert "Call back on" in page.text
    item = await Item.objects().get(Item.id == item.id)
    assert (item.status, item.promise_date, item.comment) == (
        "promised",
        promised,
        "Will pay next week",
    )
    call = await HistoryEvent.objects().get(HistoryEvent.kind == "call.logged")
    details = json.loads(call.details)
    assert details["outcome"] == "reached" and details["items"] == ["F-1001"]
    assert details["promise_date"] == promised.isoformat()
    assert details["callback_on"] == callback.isoformat()
    assert "action" not in details  # no agenda action behind it
    promise = await PromiseToPay.objects().get(PromiseToPay.item == item.id)
    assert (promise.promised_for, promise.source, promise.status) == (promised, "call", "running")


async def test_a_call_without_an_outcome_to_record_is_just_logged(app, world):
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        r = await client.post(
            f"{account(world)}/calls",
            data={"_csrf_token": token, "outcome": "voicemail", "notes": "Left a message"},
        )
        assert r.status_code == 303
        page = await client.get(account(world))
    assert "Call logged" in page.text and "voicemail</blockquote>" in page.text
    assert "Left a message" in page.text
    assert [i.status for i in await Item.objects().order_by(Item.id)] == ["open", "open"]


# ------------------------------------------------------------------ notes


async def test_a_note_appears_in_the_timeline(app, world):
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        empty = await client.post(f"{account(world)}/notes", data={"_csrf_token": token})
        assert empty.status_code == 422 and 'id="f-note-error"' in empty.text
        r = await client.post(
            f"{account(world)}/notes",
            data={"_csrf_token": token, "note": "They change ERP in March <b>watch</b>"},
        )
        assert r.status_code == 303
        page = await client.get(account(world))
        calls_only = await client.get(
            f"{account(world)}?kind=call", headers={"HX-Request": "true", "HX-Target": "timeline"}
        )
    assert "Note added to the timeline." in page.text
    assert "They change ERP in March &lt;b&gt;watch&lt;/b&gt;" in page.text
    assert "They change ERP in March" in calls_only.text  # notes sit with the calls
    event = await HistoryEvent.objects().get(HistoryEvent.kind == "note.added")
    assert event.actor_label == world["users"]["collector"].email


# ------------------------------------------------------------------ statement emails


async def test_a_statement_email_goes_to_the_chosen_contact_with_a_portal_link(app, world):
    links = await PortalLink.count()
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        form = {
            "_csrf_token": token,
            "template": "statement_before_due",
            "recipients": str(world["paul"].id),
        }
        preview = await client.post(f"{account(world)}/emails/preview", data=form)
        assert preview.status_code == 200 and "Dear Paul Morel" in preview.text
        assert "sandbox" in preview.headers["content-security-policy"]
        assert await PortalLink.count() == links  # a preview issues nothing
        refused = await client.post(
            f"{account(world)}/emails", data={**form, "recipients": [], "template": "nope"}
        )
        assert refused.status_code == 422
        assert 'id="f-template-error"' in refused.text
        assert 'id="f-recipients-error"' in refused.text
        r = await client.post(f"{account(world)}/emails", data=form)
        assert r.status_code == 303
        page = await client.get(account(world))
    assert "1 email written to the outbox" in page.text
    message = await OutboxMessage.objects().get(OutboxMessage.customer == world["customer"].id)
    assert message.to_addrs == "Paul Morel <paul@brasserie.example>"
    assert message.kind == "statement" and message.status == "queued"
    assert "your statement of account" in message.subject
    assert "F-1001" in message.text_body and "F-1002" in message.text_body
    token_in_mail = unseal(message.sealed_token, TEST_SECRET, message.message_id)
    link = await resolve_token(token_in_mail, TEST_SECRET)
    assert link is not None and link.customer == world["customer"].id
    assert link.contact == world["paul"].id
    queued = await HistoryEvent.objects().get(HistoryEvent.kind == "email.queued")
    details = json.loads(queued.details)
    assert details["template"] == "statement_before_due" and details["outbox"] == message.id
    assert details["to"] == ["paul@brasserie.example"] and details["portal_link"] == link.id
    assert "Email “" in page.text  # the timeline tells it


# ------------------------------------------------------------------ the agenda


async def test_the_agenda_call_form_with_a_promise_and_no_invoice_is_refused_not_a_500(app, world):
    action = await make_action(world)
    promised = (world["today"] + timedelta(days=5)).isoformat()
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        r = await client.post(
            f"/backoffice/agenda/{action.id}/call",
            data={
                "_csrf_token": token,
                "outcome": "reached",
                "notes": "Promised by phone",
                "record": "promise",
                "promise_date": promised,
            },
        )
        assert r.status_code == 422, r.text[:300]
        assert 'id="f-items-error"' in r.text
        assert f'value="{promised}"' in r.text and "Promised by phone" in r.text
        r = await client.post(
            f"/backoffice/agenda/{action.id}/call",
            data={
                "_csrf_token": token,
                "outcome": "reached",
                "notes": "Promised by phone",
                "record": "promise",
                "promise_date": promised,
                "items": str(world["items"][0].id),
            },
        )
        assert r.status_code == 303
    action = await DunningAction.objects().get(DunningAction.id == action.id)
    assert action.status == "done" and action.outcome == "call: reached — Promised by phone"
    call = await HistoryEvent.objects().get(HistoryEvent.kind == "call.logged")
    assert json.loads(call.details)["action"] == action.id


async def test_the_agenda_shows_the_age_of_late_tasks_and_why_one_waits(app, world):
    await make_action(world, due_days=6, step_name="Phone call")
    await make_action(
        world,
        step_name="Second reminder",
        channel="email",
        mode="automatic",
        held_reason="Account blocked: automatic mail stopped.",
    )
    async with app_client(app) as client:
        await sign_in(client, world["users"]["collector"].email)
        page = await client.get("/backoffice/agenda")
    assert page.status_code == 200
    assert "overdue 6 days" in page.text
    assert "Why it is not sent:</span> Account blocked: automatic mail stopped." in page.text
    # The late task comes before today's.
    assert page.text.index("overdue 6 days") < page.text.index("Second reminder")


async def test_a_litigation_task_is_handed_over_by_a_collector(app, world):
    action = await make_action(world, level="litigation", step_name="Litigation", channel="letter")
    other = await make_action(world, step_name="Reminder", channel="email")
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        page = await client.get(f"/backoffice/agenda/{action.id}")
        assert page.status_code == 200 and "Hand over to litigation" in page.text
        r = await client.post(
            f"/backoffice/agenda/{action.id}/litigation",
            data={"_csrf_token": token, "litigation_note": "x" * 2001},
        )
        assert r.status_code == 422 and 'id="f-litigation_note-error"' in r.text
        r = await client.post(
            f"/backoffice/agenda/{action.id}/litigation",
            data={"_csrf_token": token, "litigation_note": "Notice unanswered"},
        )
        assert r.status_code == 303
        again = await client.post(
            f"/backoffice/agenda/{action.id}/litigation",
            data={"_csrf_token": token, "litigation_note": "twice"},
        )
        assert again.status_code == 303  # refused politely: already done
    action = await DunningAction.objects().get(DunningAction.id == action.id)
    assert action.status == "done"
    other = await DunningAction.objects().get(DunningAction.id == other.id)
    assert other.status == "cancelled"
    assert "dunning.litigation_confirmed" in await kinds(world["customer"].id)


async def test_an_email_too_close_to_the_last_reminder_needs_the_override(app, world):
    action = await make_action(
        world, step_name="Second reminder", channel="email", template_code="statement_before_due"
    )
    await Customer.update({Customer.last_reminder_on: world["today"] - timedelta(days=2)}).where(
        Customer.id == world["customer"].id
    )
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        form = {
            "_csrf_token": token,
            "language": "en",
            "subject": "Kept subject",
            "body": "Dear #ContactName, kept body",
            "recipients": str(world["julie"].id),
        }
        r = await client.post(f"/backoffice/agenda/{action.id}/send", data=form)
        assert r.status_code == 422
        assert 'id="f-override_spacing-error"' in r.text and "spaced" in r.text
        assert 'value="Kept subject"' in r.text and "Dear #ContactName, kept body" in r.text
        r = await client.post(
            f"/backoffice/agenda/{action.id}/send", data={**form, "override_spacing": "1"}
        )
        assert r.status_code == 303
    assert await OutboxMessage.count().where(OutboxMessage.customer == world["customer"].id) == 1


# ------------------------------------------------------------------ escalation


async def test_the_account_shows_its_escalation_and_collectors_reset_or_set_it(app, world):
    customer_id = world["customer"].id
    scenario = await Scenario.objects().get(Scenario.payer_profile == "bad_payer")
    steps = await DunningStep.objects().where(DunningStep.scenario == scenario.id)
    notice = next(s for s in steps if s.level == "level_3")
    async with app_client(app) as client:
        token = await sign_in(client, world["users"]["collector"].email)
        page = await client.get(account(world))
        assert page.status_code == 200 and 'id="escalation-title"' in page.text
        assert "Set the level" in page.text and "Reset the escalation" in page.text
        r = await client.post(
            f"{account(world)}/escalation/reset", data={"_csrf_token": token, "reset_reason": ""}
        )
        assert r.status_code == 422 and 'id="f-reset_reason-error"' in r.text
        r = await client.post(
            f"{account(world)}/escalation/step",
            data={"_csrf_token": token, "step": "999999", "step_reason": "Straight to notice"},
        )
        assert r.status_code == 422 and 'id="f-step-error"' in r.text
        assert "Straight to notice" in r.text
        r = await client.post(
            f"{account(world)}/escalation/step",
            data={"_csrf_token": token, "step": str(notice.id), "step_reason": "Sales agreed"},
        )
        assert r.status_code == 303
        page = await client.get(account(world))
        assert "Escalation set at the chosen step." in page.text
        assert notice.name in page.text
        r = await client.post(
            f"{account(world)}/escalation/reset",
            data={"_csrf_token": token, "reset_reason": "New payables contact"},
        )
        assert r.status_code == 303
    history = await kinds(customer_id)
    assert "dunning.escalation_set" in history and "dunning.escalation_reset" in history
    customer = await Customer.objects().get(Customer.id == customer_id)
    assert customer.escalation == 3 and customer.escalation_step is None


async def test_viewers_see_the_panels_without_the_forms(app, world):
    async with app_client(app) as client:
        await sign_in(client, world["users"]["viewer"].email)
        page = await client.get(account(world))
    assert page.status_code == 200
    assert 'id="escalation-title"' in page.text and 'id="work-title"' in page.text
    assert "Log the call" not in page.text and "Reset the escalation" not in page.text
