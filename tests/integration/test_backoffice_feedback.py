"""The feedback inbox: listing and filters, validation in one transaction with the history,
validating twice (two tabs) applies once, bulk validation, rejection with an email."""
# ruff: noqa: F811 - pytest fixtures imported from test_backoffice are parameters here

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta

import pytest

import receivables.history
from receivables.history import HistoryEvent
from receivables.ledger.tables import Item, ItemStatus
from receivables.mail.tables import OutboxMessage
from receivables.portal.tables import Feedback
from tests.conftest import app_client
from tests.factories import make_customer, make_item
from tests.integration.test_backoffice import (  # noqa: F401 - fixtures
    PDF_PROOF,
    answer,
    bo_app,
    sign_in,
    world,
)

HTMX_ROW = {"HX-Request": "true"}


def row_headers(token: str, feedback_id: int) -> dict[str, str]:
    """What htmx sends for the inbox's row forms (the card is the target)."""
    return {**HTMX_ROW, "HX-Target": f"fb-{feedback_id}", "x-csrftoken": token}


async def item_row(item_id: int) -> dict:
    return (
        await Item.select(
            Item.status, Item.promise_date, Item.dispute_reason, Item.comment, Item.open_minor
        )
        .where(Item.id == item_id)
        .first()
    )


async def feedback_status(feedback_id: int) -> str:
    row = await Feedback.select(Feedback.status).where(Feedback.id == feedback_id).first()
    return row["status"]


async def events(kind: str) -> int:
    return await HistoryEvent.count().where(HistoryEvent.kind == kind)


# ------------------------------------------------------------------ the inbox


async def test_inbox_shows_each_answer_oldest_first_with_its_proposal(bo_app, world):
    later = await answer(world, world.items[2], "dispute", dispute_reason="price", text="Too dear")
    async with app_client(bo_app) as client:
        await sign_in(client, world.users["viewer"].email)
        page = await client.get("/backoffice/feedback")
        assert page.status_code == 200
        ids = [
            int(i)
            for i in re.findall(r'<article class="card fb-card [^"]*" id="fb-(\d+)"', page.text)
        ]
        assert ids == [*world.feedback_ids, later]
        card = page.text[page.text.index(f'id="fb-{later}"') :]
        assert "F-1003" in card and "Brasserie du Port" in card and "Too dear" in card
        assert "Disputes the invoice" in card and "price" in card
        assert "Validating makes it" in card and "Disputed" in card
        paid = page.text[page.text.index(f'id="fb-{world.feedback_ids[1]}"') :]
        assert "Already paid" in paid and "VIR-77" in paid
        assert f"/backoffice/feedback/{world.feedback_ids[1]}/proof" in paid
        # A viewer reads but has no decision to make.
        assert "/validate" not in page.text and "/reject" not in page.text


async def test_inbox_filters_by_collector_kind_and_customer(bo_app, world):
    other = await make_customer(world.company, name="Hostal Marina", ref="C0099")
    other_item = await make_item(other, "50.00", due=date.today() - timedelta(days=3))
    orphan = await answer(world, other_item, "question", text="Which order is this?")
    collector = world.users["collector"]

    async def shown(client, query: str) -> list[int]:
        page = await client.get(f"/backoffice/feedback{query}")
        return [int(i) for i in re.findall(r'id="fb-(\d+)"', page.text)]

    async with app_client(bo_app) as client:
        await sign_in(client, collector.email)
        assert await shown(client, "") == [*world.feedback_ids, orphan]
        assert await shown(client, "?collector=me") == world.feedback_ids
        assert await shown(client, f"?collector={collector.id}") == world.feedback_ids
        assert await shown(client, "?collector=none") == [orphan]
        assert await shown(client, "?kind=paid") == [world.feedback_ids[1]]
        assert await shown(client, "?kind=question") == [orphan]
        assert await shown(client, f"?customer={other.id}") == [orphan]
        assert await shown(client, "?kind=dispute") == []
        # The filter form asks htmx for the results only.
        fragment = await client.get(
            "/backoffice/feedback?kind=paid",
            headers={"HX-Request": "true", "HX-Target": "inbox-results"},
        )
        assert "<html" not in fragment.text and f'id="fb-{world.feedback_ids[1]}"' in fragment.text


# ------------------------------------------------------------------ validation


async def test_validate_makes_the_answer_the_items_status_with_its_history(bo_app, world):
    feedback_id = world.feedback_ids[0]
    promised = (await Feedback.select(Feedback.promise_date).first())["promise_date"]
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post(
            f"/backoffice/feedback/{feedback_id}/validate",
            data={"return_to": "/backoffice/feedback"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303 and r.headers["location"] == "/backoffice/feedback"
        page = await client.get("/backoffice/feedback")
        assert "Validated: the invoice is now “promise to pay”" in page.text
        assert f'id="fb-{feedback_id}"' not in page.text
    item = await item_row(world.items[0].id)
    assert item["status"] == ItemStatus.promised.value and item["promise_date"] == promised
    assert await feedback_status(feedback_id) == "validated"
    event = await HistoryEvent.objects().get(HistoryEvent.kind == "feedback.validated")
    assert event.item == world.items[0].id and event.actor_label == world.users["collector"].email


async def test_validate_with_edits_and_refused_edits_keep_what_was_typed(bo_app, world):
    feedback_id = world.feedback_ids[0]
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        past = (date.today() - timedelta(days=1)).isoformat()
        r = await client.post(
            f"/backoffice/feedback/{feedback_id}/validate",
            data={"promise_date": past, "comment": "agreed by phone"},
            headers=row_headers(token, feedback_id),
        )
        assert r.status_code == 422
        assert f'value="{past}"' in r.text and 'value="agreed by phone"' in r.text
        assert re.search(r'id="f-promise_date-error">must be today or later', r.text)
        assert await feedback_status(feedback_id) == "pending"

        new_date = date.today() + timedelta(days=30)
        r = await client.post(
            f"/backoffice/feedback/{feedback_id}/validate",
            data={"promise_date": new_date.isoformat(), "comment": "agreed by phone"},
            headers=row_headers(token, feedback_id),
        )
        assert r.status_code == 200 and "the invoice is now “promise to pay”" in r.text
    item = await item_row(world.items[0].id)
    assert item["promise_date"] == new_date and item["comment"] == "agreed by phone"


async def test_validation_is_one_transaction_with_the_history(bo_app, world, monkeypatch):
    feedback_id = world.feedback_ids[0]
    before = await item_row(world.items[0].id)
    history_before = await HistoryEvent.count()

    async def broken_record(**kwargs):
        raise RuntimeError("the history table is unavailable")

    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        monkeypatch.setattr(receivables.history, "record", broken_record)
        r = await client.post(
            f"/backoffice/feedback/{feedback_id}/validate",
            data={"comment": "should not stick"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 500
        monkeypatch.undo()
    assert await feedback_status(feedback_id) == "pending"
    assert await item_row(world.items[0].id) == before
    assert await HistoryEvent.count() == history_before
    # Once the history works again the same answer validates normally.
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post(
            f"/backoffice/feedback/{feedback_id}/validate", headers={"x-csrftoken": token}
        )
        assert r.status_code == 303
    assert await feedback_status(feedback_id) == "validated"


async def test_validating_twice_applies_once_and_tells_the_second_tab(bo_app, world):
    feedback_id = world.feedback_ids[0]
    async with app_client(bo_app) as tab1:
        token = await sign_in(tab1, world.users["collector"].email)
        # Two tabs of one browser share the session; both show the same pending answer.
        first = await tab1.post(
            f"/backoffice/feedback/{feedback_id}/validate",
            data={"comment": "first tab"},
            headers=row_headers(token, feedback_id),
        )
        second = await tab1.post(
            f"/backoffice/feedback/{feedback_id}/validate",
            data={"comment": "second tab"},
            headers=row_headers(token, feedback_id),
        )
        assert first.status_code == 200 and "Validated" in first.text
        assert second.status_code == 409
        assert (
            "Already decided in another tab or by a colleague: nothing was changed" in second.text
        )
        # Without htmx the second tab lands on the inbox with the same message.
        third = await tab1.post(
            f"/backoffice/feedback/{feedback_id}/validate", headers={"x-csrftoken": token}
        )
        assert third.status_code == 303
        page = await tab1.get(third.headers["location"])
        assert "Already decided" in page.text
    assert await events("feedback.validated") == 1
    assert (await item_row(world.items[0].id))["comment"] == "first tab"


async def test_two_collectors_validating_at_once_apply_it_once(bo_app, world):
    feedback_id = world.feedback_ids[0]
    async with app_client(bo_app) as alice, app_client(bo_app) as bob:
        token_a = await sign_in(alice, world.users["collector"].email)
        token_b = await sign_in(bob, world.users["admin"].email)
        results = await asyncio.gather(
            alice.post(
                f"/backoffice/feedback/{feedback_id}/validate",
                data={"comment": "alice"},
                headers=row_headers(token_a, feedback_id),
            ),
            bob.post(
                f"/backoffice/feedback/{feedback_id}/validate",
                data={"comment": "bob"},
                headers=row_headers(token_b, feedback_id),
            ),
        )
    assert sorted(r.status_code for r in results) == [200, 409]
    assert await events("feedback.validated") == 1
    winner = "alice" if results[0].status_code == 200 else "bob"
    assert (await item_row(world.items[0].id))["comment"] == winner


async def test_bulk_validate_applies_each_selected_answer_once(bo_app, world):
    third = await answer(world, world.items[2], "dispute", dispute_reason="quality", text="Broken")
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        # One of them is decided in another tab meanwhile.
        r = await client.post(
            f"/backoffice/feedback/{world.feedback_ids[0]}/validate",
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303
        r = await client.post(
            "/backoffice/feedback/validate",
            data={"ids": [*map(str, world.feedback_ids), str(third)], "return_to": "/x"},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 303 and r.headers["location"] == "/backoffice/"
        page = await client.get("/backoffice/feedback")
        assert "2 answers validated. 1 had already been decided and was left as is." in page.text
        assert "Inbox zero" in page.text
    assert await events("feedback.validated") == 3
    assert (await item_row(world.items[1].id))["status"] == ItemStatus.paid_pending.value
    assert (await item_row(world.items[2].id))["status"] == ItemStatus.disputed.value


async def test_reject_keeps_the_status_and_can_tell_the_customer(bo_app, world):
    feedback_id = world.feedback_ids[1]
    before = await item_row(world.items[1].id)
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post(
            f"/backoffice/feedback/{feedback_id}/reject",
            data={"reason": "", "notify": "1"},
            headers=row_headers(token, feedback_id),
        )
        assert r.status_code == 422 and 'id="f-reason-error"' in r.text
        assert await feedback_status(feedback_id) == "pending"
        r = await client.post(
            f"/backoffice/feedback/{feedback_id}/reject",
            data={"reason": "No transfer VIR-77 reached our bank.", "notify": "1"},
            headers=row_headers(token, feedback_id),
        )
        assert r.status_code == 200 and "The customer is told by email" in r.text
    assert await feedback_status(feedback_id) == "rejected"
    assert await item_row(world.items[1].id) == before
    mail = await OutboxMessage.objects().get(OutboxMessage.kind == "feedback_rejected")
    assert world.contact.email in mail.to_addrs
    assert "No transfer VIR-77 reached our bank." in mail.text_body
    assert await events("feedback.rejected") == 1


async def test_the_notification_link_leads_to_the_item_after_sign_in(bo_app, world):
    feedback_id = world.feedback_ids[0]
    notice = await OutboxMessage.objects().get(OutboxMessage.kind == "feedback_notice")
    link = re.search(r"http://testserver.local(/backoffice/feedback/\d+)", notice.text_body)
    assert link and link.group(1) == f"/backoffice/feedback/{feedback_id}"
    async with app_client(bo_app) as client:
        r = await client.get(link.group(1))
        assert r.status_code == 303
        login = await client.get(r.headers["location"])
        assert f'name="next" value="/backoffice/feedback/{feedback_id}"' in login.text
        await sign_in(client, world.users["collector"].email, next_path=link.group(1))
        r = await client.get(link.group(1))
        assert r.status_code == 303
        assert r.headers["location"] == f"/backoffice/items/{world.items[0].id}#fb-{feedback_id}"
        page = await client.get(r.headers["location"])
        assert f'id="fb-{feedback_id}"' in page.text and "Will pay on" in page.text


async def test_the_proof_is_downloaded_never_rendered(bo_app, world):
    async with app_client(bo_app) as client:
        await sign_in(client, world.users["viewer"].email)
        r = await client.get(f"/backoffice/feedback/{world.feedback_ids[1]}/proof")
        assert r.status_code == 200 and r.content == PDF_PROOF
        assert r.headers["content-type"].startswith("application/pdf")
        assert r.headers["content-disposition"].startswith("attachment;")
        assert "sandbox" in r.headers["content-security-policy"]
        missing = await client.get(f"/backoffice/feedback/{world.feedback_ids[0]}/proof")
        assert missing.status_code == 404


@pytest.mark.parametrize("kind", ["question"])
async def test_a_question_validated_leaves_the_status_and_records_the_words(bo_app, world, kind):
    asked = await answer(world, world.items[2], kind, text="Is VAT included?")
    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        r = await client.post(
            f"/backoffice/feedback/{asked}/validate", headers=row_headers(token, asked)
        )
        assert r.status_code == 200 and "stays “open”" in r.text
    item = await item_row(world.items[2].id)
    assert item["status"] == ItemStatus.open.value and item["comment"] == "Is VAT included?"
