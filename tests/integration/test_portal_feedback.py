"""The collectors' side of answers: pending list, validate, reject; deciding twice applies once."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.history import Actor, ActorKind, HistoryEvent
from receivables.ledger.tables import Item, ItemStatus
from receivables.mail.tables import OutboxMessage
from receivables.money import Money
from receivables.portal.emails import PortalMail
from receivables.portal.feedback import (
    AnswerForm,
    pending_feedback,
    reject,
    submit_answer,
    validate,
)
from receivables.portal.sessions import contact_actor
from receivables.portal.tables import Feedback, FeedbackStatus
from tests.integration.test_portal_support import *  # noqa: F403 (fixtures)
from tests.integration.test_portal_support import make_account
from web.mailing import TemplateComposer

TODAY = date.today()
COLLECTOR = Actor(ActorKind.staff, "colette@seller.example", 7)
ROOT = Path(__file__).resolve().parents[2]


def _mail(settings) -> PortalMail:
    return PortalMail(
        compose=TemplateComposer(ROOT / "templates"),
        mail_from=settings.smtp_from,
        base_url=settings.base_url,
    )


async def _submit(account, settings, item_key: str, **fields) -> int:
    done = await submit_answer(
        customer_id=account.customer.id,
        contact_id=account.contact.id,
        actor=contact_actor(account.contact.id, account.contact.email),
        ip="198.51.100.4",
        item_ids=[str(account.items[item_key].id)],
        form=AnswerForm(**fields),
        proof=None,
        today=TODAY,
        documents_dir=settings.documents_path,
        mail=_mail(settings),
    )
    return done.feedback_ids[0]


async def _item(account, key: str) -> Item:
    return await Item.objects().get(Item.id == account.items[key].id)


async def test_pending_list_then_validate_a_promise_once(db, portal_settings):
    account = await make_account(portal_settings)
    on = TODAY + timedelta(days=12)
    fid = await _submit(
        account, portal_settings, "late", kind="promise", promise_date=on.isoformat()
    )
    [pending] = await pending_feedback(company_id=account.company.id)
    assert pending["id"] == fid and pending["item_number"] == account.items["late"].number
    assert (
        pending["customer_name"] == "Buyer Ltd"
        and pending["contact_email"] == account.contact.email
    )
    assert pending["open"] == Money(Decimal("1200.00"), "EUR")

    decision = await validate(fid, COLLECTOR, note="confirmed by phone")
    assert (decision.item_status_before, decision.item_status_after) == ("open", "promised")
    item = await _item(account, "late")
    assert item.status == ItemStatus.promised.value and item.promise_date == on
    row = await Feedback.objects().get(Feedback.id == fid)
    assert row.status == FeedbackStatus.validated.value and row.decided_by == COLLECTOR.label
    assert row.decided_by_id == 7 and row.decided_at is not None
    assert await pending_feedback(company_id=account.company.id) == []

    with pytest.raises(Conflict):
        await validate(fid, COLLECTOR, promise_date=TODAY + timedelta(days=90))
    with pytest.raises(Conflict):
        await reject(fid, COLLECTOR, "too late")
    assert (await _item(account, "late")).promise_date == on
    events = await HistoryEvent.count().where(
        HistoryEvent.kind.is_in(["feedback.validated", "feedback.rejected"])
    )
    assert events == 1
    with pytest.raises(NotFound):
        await validate(999999, COLLECTOR)


async def test_two_collectors_deciding_at_once_apply_once(db, portal_settings):
    account = await make_account(portal_settings)
    fid = await _submit(account, portal_settings, "late", kind="dispute", dispute_reason="price")
    results = await asyncio.gather(
        validate(fid, COLLECTOR), reject(fid, COLLECTOR, "no"), return_exceptions=True
    )
    assert sum(isinstance(r, Conflict) for r in results) == 1
    decided = await HistoryEvent.count().where(
        HistoryEvent.kind.is_in(["feedback.validated", "feedback.rejected"])
    )
    assert decided == 1


async def test_validation_turns_each_kind_into_the_item(db, portal_settings):
    account = await make_account(portal_settings)
    paid = await _submit(
        account,
        portal_settings,
        "late",
        kind="paid",
        paid_on=TODAY.isoformat(),
        method="cheque",
        reference="CHQ 5521",
    )
    dispute = await _submit(
        account,
        portal_settings,
        "late2",
        kind="dispute",
        dispute_reason="quantity",
        text="Only 8 of 10 delivered",
    )
    question = await _submit(account, portal_settings, "soon", kind="question", text="PO number?")

    await validate(paid, COLLECTOR)
    item = await _item(account, "late")
    assert item.status == ItemStatus.paid_pending.value
    assert "cheque" in item.comment and "CHQ 5521" in item.comment

    with pytest.raises(InvalidInput):
        await validate(dispute, COLLECTOR, dispute_reason="bogus")
    await validate(dispute, COLLECTOR, dispute_reason="quality", comment="Checked: quality issue")
    item = await _item(account, "late2")
    assert item.status == ItemStatus.disputed.value and item.dispute_reason == "quality"
    assert item.comment == "Checked: quality issue"

    await validate(question, COLLECTOR)
    item = await _item(account, "soon")
    assert item.status == ItemStatus.open.value and item.comment == "PO number?"
    details = [
        r["details"]
        for r in await HistoryEvent.select(HistoryEvent.details).where(
            HistoryEvent.kind == "feedback.validated"
        )
    ]
    assert len(details) == 3 and '"status_after":"disputed"' in details[1]


async def test_reject_keeps_the_item_and_can_tell_the_contact(db, portal_settings):
    account = await make_account(portal_settings, contact_language="fr")
    fid = await _submit(
        account,
        portal_settings,
        "late",
        kind="promise",
        promise_date=(TODAY + timedelta(days=200)).isoformat(),
    )
    await OutboxMessage.delete(force=True)
    decision = await reject(
        fid,
        COLLECTOR,
        "Nous ne pouvons pas accepter ce délai.",
        notify=True,
        mail=_mail(portal_settings),
    )
    assert decision.item_status_after == "open"
    assert (await _item(account, "late")).status == ItemStatus.open.value
    assert (await Feedback.objects().get(Feedback.id == fid)).decision_note.startswith("Nous ne")
    [mail] = await OutboxMessage.select()
    assert account.contact.email in mail["to_addrs"] and mail["kind"] == "feedback_rejected"
    assert account.items["late"].number in mail["subject"]
    assert "Nous n’avons pas pu confirmer" in mail["text_body"]
    assert "Nous ne pouvons pas accepter ce délai." in mail["text_body"]
    with pytest.raises(InvalidInput):
        await reject(fid, COLLECTOR, "   ")


async def test_filters_apply_before_the_limit(db, portal_settings):
    account = await make_account(portal_settings)
    question = await _submit(account, portal_settings, "late", kind="question", text="Which PO?")
    promise = await _submit(
        account,
        portal_settings,
        "soon",
        kind="promise",
        promise_date=(TODAY + timedelta(days=5)).isoformat(),
    )
    # The oldest answer is a question: a limit of one still finds the promise.
    [row] = await pending_feedback(kind="promise", limit=1)
    assert row["id"] == promise
    # The account has an assigned collector.
    collector = account.customer.collector
    assert [r["id"] for r in await pending_feedback(collector_id=collector)] == [question, promise]
    assert await pending_feedback(unassigned=True) == []
    assert await pending_feedback(collector_id=collector + 1000) == []
