"""Answers per invoice from the portal: stored pending with contact, time and IP, shown as
awaiting confirmation, recorded, and announced to the collector over real SMTP; bad input
re-shown with a message per field and nothing stored."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, timedelta
from pathlib import Path

from receivables.history import HistoryEvent
from receivables.mail.outbox import send_due
from receivables.mail.tables import OutboxMessage
from receivables.portal.tables import Feedback, FeedbackStatus
from tests.integration.test_portal_support import *  # noqa: F403 (fixtures)
from tests.integration.test_portal_support import csrf_of, hx, make_account, open_visit
from tests.smtp import start_smtp

TODAY = date.today()
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def _answer(client, page_html: str, items, htmx: bool = True, files=None, **fields):
    data = {"_csrf_token": csrf_of(page_html), "item": [str(i.id) for i in items], **fields}
    return await client.post("/p/answer", data=data, files=files, headers=hx() if htmx else {})


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


async def _nothing_stored(docs: Path | None = None) -> None:
    assert await Feedback.count() == 0
    assert await OutboxMessage.count() == 0
    assert await HistoryEvent.count().where(HistoryEvent.kind == "portal.feedback_submitted") == 0
    if docs is not None:
        assert _files_in(docs) == []


async def test_promise_is_stored_shown_recorded_and_mailed(pclient, portal_settings):
    account = await make_account(portal_settings)
    page = await open_visit(pclient, account)
    item = account.items["late"]
    on = TODAY + timedelta(days=10)
    r = await _answer(
        pclient, page.text, [item], kind="promise", promise_date=on.isoformat(), show="overdue"
    )
    assert r.status_code == 200
    assert "awaiting confirmation" in r.text
    # The table comes back out of band, still filtered as it was.
    assert 'id="statement-items" hx-swap-oob="true"' in r.text
    assert account.items["soon"].number not in r.text
    row = re.search(rf'<tr id="item-{item.id}".*?</tr>', r.text, re.S).group(0)
    assert "Your answer is awaiting confirmation" in row and "row-awaiting" in row

    [fb] = await Feedback.select()
    assert fb["status"] == FeedbackStatus.pending.value and fb["kind"] == "promise"
    assert fb["promise_date"] == on and fb["contact"] == account.contact.id
    assert fb["ip"] == "203.0.113.7" and fb["created_at"] is not None
    [event] = await HistoryEvent.select().where(HistoryEvent.kind == "portal.feedback_submitted")
    assert event["item"] == item.id and event["actor_id"] == account.contact.id
    assert event["actor_label"] == account.contact.email and on.isoformat() in event["details"]

    [mail] = await OutboxMessage.select()
    assert mail["kind"] == "feedback_notice"
    assert account.collector_email in mail["to_addrs"]
    assert mail["reply_to"] == account.contact.email
    assert item.number in mail["subject"] and "Will pay on" in mail["subject"]

    server, recorder, port = await start_smtp()
    try:
        smtp = dataclasses.replace(portal_settings, smtp_port=port, smtp_host="127.0.0.1")
        assert await send_due(smtp) == 1
    finally:
        server.close()
    [received] = recorder.messages
    assert received["To"].addresses[0].addr_spec == account.collector_email
    body = received.get_body(("plain",)).get_content()
    assert f"http://testserver.local/backoffice/feedback/{fb['id']}" in body
    assert "Ada Payables" in body and item.number in body
    assert on.strftime("%Y") in body
    html = received.get_body(("html",)).get_content()
    assert f'href="http://testserver.local/backoffice/feedback/{fb["id"]}"' in html

    again = await pclient.get("/p/statement")
    assert "Your answer: will pay on" in again.text


async def test_several_invoices_paid_with_one_proof(pclient, portal_settings):
    account = await make_account(portal_settings)
    page = await open_visit(pclient, account)
    items = [account.items["late"], account.items["late2"]]
    r = await _answer(
        pclient,
        page.text,
        items,
        kind="paid",
        paid_on=(TODAY - timedelta(days=2)).isoformat(),
        method="transfer",
        reference="VIR 2026/118",
        files={"proof": ("remittance.pdf", PDF, "application/pdf")},
    )
    assert r.status_code == 200, r.text[:400]
    rows = await Feedback.select().order_by(Feedback.id)
    assert [row["item"] for row in rows] == [i.id for i in items]
    assert len({row["batch"] for row in rows}) == 1
    assert rows[0]["proof_path"] == rows[1]["proof_path"] != ""
    assert rows[0]["proof_type"] == "application/pdf" and rows[0]["proof_name"] == "remittance.pdf"
    stored = portal_settings.documents_path / rows[0]["proof_path"]
    assert stored.read_bytes() == PDF
    assert await OutboxMessage.count() == 1  # one email for the batch
    mail = await OutboxMessage.objects().first()
    assert all(i.number in mail.text_body for i in items) and "VIR 2026/118" in mail.text_body


async def test_will_pay_on_a_past_date_is_refused_and_nothing_stored(pclient, portal_settings):
    account = await make_account(portal_settings)
    page = await open_visit(pclient, account)
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    r = await _answer(
        pclient,
        page.text,
        [account.items["late"]],
        kind="promise",
        promise_date=yesterday,
        text="end of month",
    )
    assert r.status_code == 422
    assert "The date cannot be in the past." in r.text
    assert f'value="{yesterday}"' in r.text and "end of month" in r.text
    assert 'id="f-promise_date-error"' in r.text and 'aria-invalid="true"' in r.text
    await _nothing_stored(portal_settings.documents_path)


async def test_each_bad_field_gets_its_message_and_values_stay(pclient, portal_settings):
    account = await make_account(portal_settings)
    page = await open_visit(pclient, account)
    item = account.items["late"]
    paid = await _answer(
        pclient,
        page.text,
        [item],
        kind="paid",
        reference="REF-KEPT",
        paid_on=(TODAY + timedelta(days=3)).isoformat(),
    )
    assert paid.status_code == 422
    assert "The payment date cannot be in the future." in paid.text
    assert "Choose how you paid." in paid.text and 'value="REF-KEPT"' in paid.text
    dispute = await _answer(pclient, page.text, [item], kind="dispute", dispute_reason="other")
    assert "Describe the problem." in dispute.text
    question = await _answer(pclient, page.text, [item], kind="question")
    assert "Write your question." in question.text
    nothing = await _answer(pclient, page.text, [item])
    assert "Choose what you want to tell us." in nothing.text
    none_selected = await _answer(pclient, page.text, [], kind="question", text="hello?")
    assert "Select at least one invoice." in none_selected.text
    await _nothing_stored()


async def test_proof_files_are_checked_by_content_and_size(pclient, portal_settings):
    account = await make_account(portal_settings)
    page = await open_visit(pclient, account)
    fields = dict(kind="paid", paid_on=TODAY.isoformat(), method="transfer")
    fake = await _answer(
        pclient,
        page.text,
        [account.items["late"]],
        files={"proof": ("invoice.pdf", b"MZ\x90\x00 not a pdf", "application/pdf")},
        **fields,
    )
    assert fake.status_code == 422 and "Attach a PDF, PNG or JPEG file." in fake.text
    big = PDF + b"0" * (5 * 1024 * 1024)
    too_big = await _answer(
        pclient,
        page.text,
        [account.items["late"]],
        files={"proof": ("big.pdf", big, "application/pdf")},
        **fields,
    )
    assert too_big.status_code == 422 and "The file is larger than 5 MB." in too_big.text
    await _nothing_stored(portal_settings.documents_path)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    ok = await _answer(
        pclient,
        page.text,
        [account.items["late"]],
        files={"proof": ("scan.png", png, "image/png")},
        **fields,
    )
    assert ok.status_code == 200
    assert (await Feedback.objects().first()).proof_type == "image/png"


async def test_someone_elses_invoice_cannot_be_answered(pclient, portal_settings):
    mine = await make_account(portal_settings)
    theirs = await make_account(portal_settings)
    page = await open_visit(pclient, mine)
    r = await _answer(
        pclient, page.text, [mine.items["late"], theirs.items["late"]], kind="question", text="?"
    )
    assert r.status_code == 422 and "can no longer be answered" in r.text
    await _nothing_stored()


async def test_without_htmx_the_answer_redirects_to_the_statement(pclient, portal_settings):
    account = await make_account(portal_settings, contact_language="fr")
    page = await open_visit(pclient, account)
    r = await _answer(
        pclient,
        page.text,
        [account.items["soon"]],
        htmx=False,
        kind="question",
        text="Bon de livraison ?",
    )
    assert r.status_code == 303 and r.headers["location"] == "/p/statement?answered=1"
    thanks = await pclient.get(r.headers["location"])
    assert "Merci. Votre réponse a été transmise" in thanks.text
    assert "Votre réponse est en attente de confirmation" in thanks.text
    form = await pclient.get(f"/p/answer?item={account.items['soon'].id}")
    assert form.status_code == 200 and "<html" in form.text and "Que souhaitez-vous" in form.text
    refused = await _answer(
        pclient, page.text, [account.items["soon"]], kind="promise", promise_date="2001-01-01"
    )
    assert "La date ne peut pas être dans le passé." in refused.text


async def test_without_collector_the_company_address_is_told(pclient, portal_settings):
    account = await make_account(portal_settings, with_collector=False)
    page = await open_visit(pclient, account)
    r = await _answer(
        pclient,
        page.text,
        [account.items["late"]],
        kind="dispute",
        dispute_reason="quality",
        text="Scratched panels",
    )
    assert r.status_code == 200
    mail = await OutboxMessage.objects().first()
    assert "ar@seller.example" in mail.to_addrs and "Quality" in mail.text_body
