"""Customer answers per invoice: submitted from the portal, validated or rejected by staff.

An answer ("already paid", "will pay on", "disputed", "question") is stored pending with
its contact, time and IP, written to the history and announced to the assigned collector
(or the company's address) through the outbox, all in one transaction. A collector's
decision is a guarded UPDATE ... WHERE status = 'pending': deciding twice applies once.
Validation turns the answer into the invoice's status and comment.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from receivables import history
from receivables.access.tables import StaffUser
from receivables.clock import company_today
from receivables.db import atomic, is_postgres
from receivables.documents import storage
from receivables.errors import Conflict, FieldProblem, InvalidInput, NotFound
from receivables.history import Actor
from receivables.i18n import N_, choose_language, locale_for
from receivables.ledger.promises import open_promise
from receivables.ledger.tables import Company, Contact, Customer, Item, ItemKind, ItemStatus
from receivables.mail.outbox import Recipient, queue_email
from receivables.money import Money
from receivables.portal.emails import PortalMail
from receivables.portal.tables import (
    DisputeReason,
    Feedback,
    FeedbackKind,
    FeedbackStatus,
    PaidMethod,
)

log = logging.getLogger("relance.portal")
MAX_TEXT = 2000
MAX_REFERENCE = 100
MAX_ITEMS = 200
PROMISE_HORIZON = timedelta(days=366)


@dataclass(frozen=True)
class Proof:
    """A file the customer attached (its name as sent, its bytes)."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class AnswerForm:
    """The answer as typed; every field is text until `check_answer` accepts it."""

    kind: str = ""
    paid_on: str = ""
    method: str = ""
    reference: str = ""
    promise_date: str = ""
    dispute_reason: str = ""
    text: str = ""


@dataclass(frozen=True)
class Answer:
    kind: FeedbackKind
    paid_on: date | None = None
    method: str = ""
    reference: str = ""
    promise_date: date | None = None
    dispute_reason: str = ""
    text: str = ""
    proof_type: str = ""
    proof_ext: str = ""


def _date(value: str, name: str, problems: list[FieldProblem], missing: str) -> date | None:
    value = value.strip()
    if not value:
        problems.append(FieldProblem(name, missing))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(FieldProblem(name, N_("Enter a valid date.")))
        return None


def check_answer(form: AnswerForm, proof: Proof | None, today: date) -> Answer:
    """The answer if it is complete and sensible; InvalidInput naming each bad field."""
    problems: list[FieldProblem] = []
    try:
        kind = FeedbackKind(form.kind)
    except ValueError:
        raise InvalidInput.one("kind", N_("Choose what you want to tell us.")) from None
    text = form.text.strip()
    if len(text) > MAX_TEXT:
        problems.append(FieldProblem("text", N_("Keep your message under 2,000 characters.")))
    answer: dict[str, Any] = {"kind": kind, "text": text}

    if kind == FeedbackKind.paid:
        paid_on = _date(form.paid_on, "paid_on", problems, N_("Enter the date you paid."))
        if paid_on and paid_on > today:
            problems.append(
                FieldProblem("paid_on", N_("The payment date cannot be in the future."))
            )
        if form.method not in {m.value for m in PaidMethod}:
            problems.append(FieldProblem("method", N_("Choose how you paid.")))
        reference = form.reference.strip()
        if len(reference) > MAX_REFERENCE:
            problems.append(
                FieldProblem("reference", N_("Keep the reference under 100 characters."))
            )
        answer |= {"paid_on": paid_on, "method": form.method, "reference": reference}
        if proof is not None and proof.content:
            if len(proof.content) > storage.MAX_PROOF_BYTES:
                problems.append(FieldProblem("proof", N_("The file is larger than 5 MB.")))
            elif (sniffed := storage.sniff(proof.content)) is None:
                problems.append(FieldProblem("proof", N_("Attach a PDF, PNG or JPEG file.")))
            else:
                answer |= {"proof_type": sniffed[0], "proof_ext": sniffed[1]}
    elif kind == FeedbackKind.promise:
        promised = _date(
            form.promise_date, "promise_date", problems, N_("Enter the date you will pay.")
        )
        if promised and promised < today:
            problems.append(FieldProblem("promise_date", N_("The date cannot be in the past.")))
        elif promised and promised > today + PROMISE_HORIZON:
            problems.append(FieldProblem("promise_date", N_("Choose a date within a year.")))
        answer["promise_date"] = promised
    elif kind == FeedbackKind.dispute:
        if form.dispute_reason not in {r.value for r in DisputeReason}:
            problems.append(FieldProblem("dispute_reason", N_("Choose a reason.")))
        elif form.dispute_reason == DisputeReason.other.value and not text:
            problems.append(FieldProblem("text", N_("Describe the problem.")))
        answer["dispute_reason"] = form.dispute_reason
    elif not text:
        problems.append(FieldProblem("text", N_("Write your question.")))
    if problems:
        raise InvalidInput(problems)
    return Answer(**answer)


def _item_ids(raw: list[str]) -> list[int]:
    ids: list[int] = []
    for value in raw:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            raise InvalidInput.one("items", N_("Select at least one invoice.")) from None
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise InvalidInput.one("items", N_("Select at least one invoice."))
    if len(ids) > MAX_ITEMS:
        raise InvalidInput.one("items", N_("Select fewer invoices at once."))
    return ids


async def answerable_items(customer_id: int, raw_ids: list[str]) -> list[dict]:
    """The customer's open invoices among `raw_ids`, or InvalidInput if any is not one."""
    ids = _item_ids(raw_ids)
    rows = await Item.select(
        Item.id, Item.number, Item.currency, Item.open_minor, Item.due_date, Item.company
    ).where(
        Item.id.is_in(ids)
        & (Item.customer == customer_id)
        & (Item.kind == ItemKind.invoice.value)
        & (Item.open_minor > 0)
        & Item.status.not_in([ItemStatus.cancelled.value, ItemStatus.paid.value])
    )
    if len(rows) != len(ids):
        raise InvalidInput.one(
            "items", N_("One of the selected invoices can no longer be answered.")
        )
    order = {item_id: n for n, item_id in enumerate(ids)}
    return sorted(rows, key=lambda r: order[r["id"]])


@dataclass
class Submitted:
    batch: str
    feedback_ids: list[int] = field(default_factory=list)
    emailed_to: str = ""


async def submit_answer(
    *,
    customer_id: int,
    contact_id: int | None,
    actor: Actor,
    ip: str,
    item_ids: list[str],
    form: AnswerForm,
    proof: Proof | None,
    today: date,
    documents_dir: Path,
    mail: PortalMail,
) -> Submitted:
    """Store the answer on each selected invoice, record it, and tell the collector."""
    answer = check_answer(form, proof, today)
    items = await answerable_items(customer_id, item_ids)
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    company = await Company.objects().get(Company.id == customer.company)
    assert company is not None
    contact = await Contact.objects().get(Contact.id == contact_id) if contact_id else None

    proof_path = ""
    if answer.proof_ext and proof is not None:
        proof_path = await storage.save_proof(
            documents_dir, company.id, proof.content, answer.proof_ext
        )
    result = Submitted(batch=secrets.token_hex(8))
    try:
        async with atomic():
            await history.lock_accounts([customer_id], company_id=company.id)
            for item in items:
                row = Feedback(
                    company=company.id,
                    customer=customer_id,
                    item=item["id"],
                    contact=contact_id,
                    batch=result.batch,
                    kind=answer.kind.value,
                    paid_on=answer.paid_on,
                    method=answer.method,
                    reference=answer.reference,
                    promise_date=answer.promise_date,
                    dispute_reason=answer.dispute_reason,
                    text=answer.text,
                    proof_path=proof_path,
                    proof_name=(proof.filename if proof and proof_path else "")[-200:],
                    proof_type=answer.proof_type,
                    ip=ip[:45],
                )
                await row.save()
                result.feedback_ids.append(row.id)
                if answer.kind.value in HOLDING_KINDS:
                    await Item.update({Item.pending_answer: answer.kind.value}).where(
                        Item.id == item["id"]
                    )
                await history.record(
                    company_id=company.id,
                    actor=actor,
                    kind="portal.feedback_submitted",
                    customer_id=customer_id,
                    item_id=item["id"],
                    details={
                        "feedback": row.id,
                        "batch": result.batch,
                        "kind": answer.kind.value,
                        "paid_on": answer.paid_on,
                        "method": answer.method,
                        "reference": answer.reference,
                        "promise_date": answer.promise_date,
                        "dispute_reason": answer.dispute_reason,
                        "text": answer.text,
                        "proof": proof_path,
                        "ip": ip,
                    },
                )
            result.emailed_to = await _notify_collector(
                company, customer, contact, actor, answer, items, result, mail
            )
    except BaseException:
        if proof_path:
            storage.remove(documents_dir, proof_path)
        raise
    return result


async def _collector_of(customer: Customer) -> StaffUser | None:
    if not customer.collector:
        return None
    return await StaffUser.objects().get(
        (StaffUser.id == customer.collector) & (StaffUser.active == True)  # noqa: E712
    )


async def _notify_collector(
    company: Company,
    customer: Customer,
    contact: Contact | None,
    actor: Actor,
    answer: Answer,
    items: list[dict],
    result: Submitted,
    mail: PortalMail,
) -> str:
    collector = await _collector_of(customer)
    if collector is not None:
        to = Recipient(collector.email, collector.name)
    elif company.email:
        to = Recipient(company.email, company.name)
    else:
        log.warning("feedback %s: no collector nor company address to notify", result.batch)
        return ""
    # The collector reads it in their own language; the company's address in the company's.
    language = choose_language(collector.language if collector else "", company.locale)
    answers = [
        {
            "id": fid,
            "number": item["number"],
            "open": Money.from_minor(item["open_minor"], item["currency"]),
            "due_date": item["due_date"],
            "review_url": f"{mail.base_url}/backoffice/feedback/{fid}",
        }
        for fid, item in zip(result.feedback_ids, items, strict=True)
    ]
    context = {
        "company_name": company.name,
        "customer_name": customer.name,
        "customer_ref": customer.ref,
        "contact_name": contact.name if contact else "",
        "contact_email": contact.email if contact else "",
        "collector_name": collector.name if collector else "",
        "answer": answer,
        "answers": answers,
        "has_proof": bool(answer.proof_ext),
        "locale": locale_for(language, company.locale),
    }
    email = mail.compose("feedback_received", context, language)
    await queue_email(
        company_id=company.id,
        customer_id=customer.id,
        kind="feedback_notice",
        mail_from=mail.mail_from,
        to=[to],
        subject=email.subject,
        text_body=email.text,
        html_body=email.html,
        reply_to=contact.email if contact else "",
        actor=actor,
        details={"feedback": result.feedback_ids},
    )
    return to.email


@dataclass(frozen=True)
class PendingAnswer:
    """The latest pending answer on an item, as the portal shows it."""

    id: int
    kind: str
    promise_date: date | None
    paid_on: date | None
    dispute_reason: str
    created_at: datetime
    text: str = ""
    """The customer's own words."""


async def pending_by_item(customer_id: int) -> dict[int, PendingAnswer]:
    rows = (
        await Feedback.select(
            Feedback.id,
            Feedback.item,
            Feedback.kind,
            Feedback.promise_date,
            Feedback.paid_on,
            Feedback.dispute_reason,
            Feedback.created_at,
            Feedback.text,
        )
        .where(
            (Feedback.customer == customer_id) & (Feedback.status == FeedbackStatus.pending.value)
        )
        .order_by(Feedback.id)
    )
    return {
        r["item"]: PendingAnswer(
            r["id"],
            r["kind"],
            r["promise_date"],
            r["paid_on"],
            r["dispute_reason"],
            r["created_at"],
            r["text"],
        )
        for r in rows
    }


async def pending_feedback(
    *,
    company_id: int | None = None,
    customer_id: int | None = None,
    kind: str | None = None,
    collector_id: int | None = None,
    unassigned: bool = False,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Pending answers, oldest first, with what a collector needs to decide.

    Every filter is applied in SQL, so `limit` never hides a matching answer behind others.
    """
    query = Feedback.select(
        *Feedback.all_columns(),
        Feedback.item.number.as_alias("item_number"),
        Feedback.item.currency.as_alias("currency"),
        Feedback.item.open_minor.as_alias("open_minor"),
        Feedback.item.due_date.as_alias("due_date"),
        Feedback.item.status.as_alias("item_status"),
        Feedback.customer.name.as_alias("customer_name"),
        Feedback.customer.ref.as_alias("customer_ref"),
        Feedback.customer.collector.as_alias("collector_id"),
        Feedback.customer.collector.name.as_alias("collector_name"),  # type: ignore[union-attr]
        Feedback.contact.email.as_alias("contact_email"),
        Feedback.contact.name.as_alias("contact_name"),
    ).where(Feedback.status == FeedbackStatus.pending.value)
    if company_id is not None:
        query = query.where(Feedback.company == company_id)
    if customer_id is not None:
        query = query.where(Feedback.customer == customer_id)
    if kind:
        query = query.where(Feedback.kind == kind)
    if unassigned:
        query = query.where(Feedback.customer.collector.is_null())
    elif collector_id is not None:
        query = query.where(Feedback.customer.collector == collector_id)
    rows = await query.order_by(Feedback.id).limit(limit)
    for row in rows:
        row["open"] = Money.from_minor(row.pop("open_minor"), row["currency"])
    return rows


_DECIDED_COLUMNS = (
    Feedback.id,
    Feedback.company,
    Feedback.customer,
    Feedback.item,
    Feedback.contact,
    Feedback.kind,
    Feedback.paid_on,
    Feedback.method,
    Feedback.reference,
    Feedback.promise_date,
    Feedback.dispute_reason,
    Feedback.text,
)


HOLDING_KINDS = (FeedbackKind.paid.value, FeedbackKind.promise.value, FeedbackKind.dispute.value)
"""Answers that put their invoice on hold until a collector decides; a question holds nothing."""


async def _refresh_pending_answer(item_id: int) -> None:
    """Keep `Item.pending_answer` in step with the answers still waiting on it (the latest)."""
    latest = (
        await Feedback.select(Feedback.kind)
        .where(
            (Feedback.item == item_id)
            & (Feedback.status == FeedbackStatus.pending.value)
            & Feedback.kind.is_in(list(HOLDING_KINDS))
        )
        .order_by(Feedback.id, ascending=False)
        .first()
    )
    await Item.update({Item.pending_answer: latest["kind"] if latest else ""}).where(
        Item.id == item_id
    )


async def _customer_of_feedback(feedback_id: int) -> int:
    row = await Feedback.select(Feedback.customer).where(Feedback.id == feedback_id).first()
    if row is None:
        raise NotFound(f"feedback {feedback_id}")
    return int(row["customer"])


async def _decide(feedback_id: int, actor: Actor, status: FeedbackStatus, note: str) -> dict:
    rows = (
        await Feedback.update(
            {
                Feedback.status: status.value,
                Feedback.decided_by: actor.label[:254],
                Feedback.decided_by_id: actor.id,
                Feedback.decided_at: datetime.now(UTC),
                Feedback.decision_note: note,
            }
        )
        .where((Feedback.id == feedback_id) & (Feedback.status == FeedbackStatus.pending.value))
        .returning(*_DECIDED_COLUMNS)
    )
    if rows:
        return rows[0]
    if not await Feedback.exists().where(Feedback.id == feedback_id):
        raise NotFound(f"feedback {feedback_id}")
    raise Conflict(f"feedback {feedback_id} was already decided")


def _comment_for(fb: dict) -> str:
    if fb["kind"] == FeedbackKind.paid.value:
        parts = [f"Customer says paid on {fb['paid_on']:%Y-%m-%d}" if fb["paid_on"] else "Paid"]
        if fb["method"]:
            parts.append(f"by {fb['method'].replace('_', ' ')}")
        if fb["reference"]:
            parts.append(f"reference {fb['reference']}")
        return " ".join(parts) + (f". {fb['text']}" if fb["text"] else "")
    return fb["text"]


@dataclass(frozen=True)
class Decision:
    feedback_id: int
    item_id: int
    status: str
    item_status_before: str
    item_status_after: str


async def validate(
    feedback_id: int,
    actor: Actor,
    *,
    promise_date: date | None = None,
    dispute_reason: str | None = None,
    comment: str | None = None,
    note: str = "",
) -> Decision:
    """Make a pending answer the invoice's status and comment; a second call raises Conflict.

    A collector may correct the promised date, the dispute reason or the comment on the way.
    """
    if dispute_reason is not None and dispute_reason not in {r.value for r in DisputeReason}:
        raise InvalidInput.one("dispute_reason", f"'{dispute_reason}' is not a dispute reason")
    async with atomic():
        await history.lock_accounts([await _customer_of_feedback(feedback_id)])
        fb = await _decide(feedback_id, actor, FeedbackStatus.validated, note)
        query = Item.select(Item.status, Item.open_minor).where(Item.id == fb["item"])
        if is_postgres():
            query = query.lock_rows("UPDATE")
        item = (await query)[0]
        before = item["status"]
        values: dict[Any, Any] = {
            Item.comment: comment if comment is not None else _comment_for(fb)
        }
        settled = item["open_minor"] == 0 or before in (
            ItemStatus.paid.value,
            ItemStatus.cancelled.value,
        )
        kind = fb["kind"]
        after = before
        if not settled:
            if kind == FeedbackKind.paid.value:
                after = ItemStatus.paid_pending.value
            elif kind == FeedbackKind.promise.value:
                after = ItemStatus.promised.value
                values[Item.promise_date] = promise_date or fb["promise_date"]
            elif kind == FeedbackKind.dispute.value:
                after = ItemStatus.disputed.value
                values[Item.dispute_reason] = dispute_reason or fb["dispute_reason"]
        values[Item.status] = after
        await Item.update(values).where(Item.id == fb["item"])
        await _refresh_pending_answer(fb["item"])
        if after == ItemStatus.promised.value and values.get(Item.promise_date):
            await open_promise(
                company_id=fb["company"],
                customer_id=fb["customer"],
                item_id=fb["item"],
                promised_for=values[Item.promise_date],
                made_on=await company_today(fb["company"]),
                source="portal",
            )
        await history.record(
            company_id=fb["company"],
            actor=actor,
            kind="feedback.validated",
            customer_id=fb["customer"],
            item_id=fb["item"],
            details={
                "feedback": feedback_id,
                "kind": kind,
                "status_before": before,
                "status_after": after,
                "promise_date": values.get(Item.promise_date),
                "dispute_reason": values.get(Item.dispute_reason, ""),
                "comment": values[Item.comment],
                "note": note,
            },
        )
    return Decision(feedback_id, fb["item"], FeedbackStatus.validated.value, before, after)


async def reject(
    feedback_id: int,
    actor: Actor,
    reason: str,
    *,
    notify: bool = False,
    mail: PortalMail | None = None,
) -> Decision:
    """Refuse a pending answer (the invoice keeps its status); optionally tell the contact."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "say why the answer is rejected")
    if notify and mail is None:
        raise ValueError("notify needs a PortalMail to compose and send the email")
    async with atomic():
        await history.lock_accounts([await _customer_of_feedback(feedback_id)])
        fb = await _decide(feedback_id, actor, FeedbackStatus.rejected, reason)
        await _refresh_pending_answer(fb["item"])
        item = await Item.select(Item.status, Item.number).where(Item.id == fb["item"]).first()
        assert item is not None
        await history.record(
            company_id=fb["company"],
            actor=actor,
            kind="feedback.rejected",
            customer_id=fb["customer"],
            item_id=fb["item"],
            details={"feedback": feedback_id, "kind": fb["kind"], "reason": reason},
        )
        if notify and mail is not None:
            await _notify_rejection(fb, item["number"], reason, actor, mail)
    return Decision(
        feedback_id, fb["item"], FeedbackStatus.rejected.value, item["status"], item["status"]
    )


async def _notify_rejection(fb: dict, number: str, reason: str, actor: Actor, mail) -> None:
    customer = await Customer.objects().get(Customer.id == fb["customer"])
    company = await Company.objects().get(Company.id == fb["company"])
    contact = await Contact.objects().get(Contact.id == fb["contact"]) if fb["contact"] else None
    assert customer is not None and company is not None
    if contact is None:
        log.warning("feedback %s rejected: no contact to notify", fb["id"])
        return
    language = choose_language(contact.language, customer.language, company.locale)
    email = mail.compose(
        "feedback_rejected",
        {
            "company_name": company.name,
            "customer_name": customer.name,
            "contact_name": contact.name,
            "number": number,
            "kind": fb["kind"],
            "reason": reason,
            "company_email": company.email,
            "company_phone": company.phone,
        },
        language,
    )
    await queue_email(
        company_id=company.id,
        customer_id=customer.id,
        kind="feedback_rejected",
        mail_from=mail.mail_from,
        to=[Recipient(contact.email, contact.name)],
        subject=email.subject,
        text_body=email.text,
        html_body=email.html,
        reply_to=company.email,
        actor=actor,
        details={"feedback": fb["id"]},
    )
