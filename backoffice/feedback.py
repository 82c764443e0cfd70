"""The feedback inbox: customers' answers from the portal, validated or rejected by collectors.

Deciding is `receivables.portal.feedback.validate` / `reject` (a guarded UPDATE in the
history's transaction): a second tab deciding the same answer gets a Conflict, shown
as "already decided", and nothing changes twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.forms import checked, errors_of, form_values, optional_date, text
from backoffice.pages import done, fragment, is_fragment, render, staff, tr
from backoffice.security import ALL_STAFF, PREFIX, WORKERS, flash, roles, safe_next
from receivables.access.staff_accounts import active_collectors
from receivables.clock import company_today
from receivables.documents import storage
from receivables.errors import Conflict, FieldProblem, InvalidInput, NotFound
from receivables.feedback_inbox import (
    InboxFilters,
    feedback_ref,
    inbox,
)
from receivables.i18n import N_
from receivables.ledger.account_changes import staff_actor
from receivables.ledger.tables import Customer
from receivables.ledger.timeline import status_words
from receivables.portal import feedback as answers
from receivables.portal.emails import PortalMail
from receivables.portal.tables import DisputeReason, FeedbackKind
from receivables.settings import Settings
from web.deps import SettingsDep

INBOX = f"{PREFIX}/feedback"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
KINDS = [
    (FeedbackKind.paid.value, N_("Already paid")),
    (FeedbackKind.promise.value, N_("Will pay on")),
    (FeedbackKind.dispute.value, N_("Dispute")),
    (FeedbackKind.question.value, N_("Question")),
]
DISPUTE_CHOICES = [(r.value, r.value.replace("_", " ").capitalize()) for r in DisputeReason]


def _filters(request: Request) -> tuple[InboxFilters, dict[str, str]]:
    q = request.query_params
    raw = {k: str(q.get(k, "")).strip() for k in ("collector", "kind", "customer")}
    collector_id = None
    if raw["collector"] == "me":
        collector_id = staff(request).id
    elif raw["collector"].isdigit():
        collector_id = int(raw["collector"])
    kind = raw["kind"] if raw["kind"] in dict(KINDS) else ""
    customer_id = int(raw["customer"]) if raw["customer"].isdigit() else None
    filters = InboxFilters(
        collector_id=collector_id,
        unassigned=raw["collector"] == "none",
        kind=kind,
        customer_id=customer_id,
    )
    return filters, raw


def _inbox_url(raw: dict[str, str]) -> str:
    params = {k: v for k, v in raw.items() if v}
    return INBOX + (f"?{urlencode(params)}" if params else "")


@get("/feedback", name="bo:inbox", opt=roles(ALL_STAFF))
async def inbox_page(request: Request) -> Template:
    filters, raw = _filters(request)
    entries = await inbox(filters)
    customer = (
        await Customer.objects().get(Customer.id == filters.customer_id)
        if filters.customer_id
        else None
    )
    context: dict[str, Any] = {
        "page_title": "Feedback inbox",
        "entries": entries,
        "raw": raw,
        "filtered": any(raw.values()),
        "filter_customer": customer,
        "collectors": await active_collectors(),
        "kinds": KINDS,
        "dispute_choices": DISPUTE_CHOICES,
        "return_to": _inbox_url(raw),
        "status_words": status_words,
        "today": await company_today(),
    }
    if is_fragment(request, "inbox-results"):
        return fragment(request, "backoffice/feedback/_results.html", **context)
    return await render(request, "backoffice/feedback/inbox.html", **context)


@get("/feedback/{feedback_id:int}", name="bo:feedback", opt=roles(ALL_STAFF))
async def feedback_link(request: Request, feedback_id: FromPath[int]) -> Redirect:
    """Where the collector's notification email points: the answer, on its invoice's page."""
    ref = await feedback_ref(feedback_id)
    if ref is None:
        raise NotFound(f"feedback {feedback_id}")
    if ref.status != "pending":
        when = f" on {ref.decided_at:%d %b %Y at %H:%M}" if ref.decided_at else ""
        flash(
            request,
            f"This answer was already {ref.status} by {ref.decided_by or 'someone'}{when}.",
            "info",
        )
        return Redirect(path=f"{PREFIX}/items/{ref.item_id}", status_code=303)
    return Redirect(path=f"{PREFIX}/items/{ref.item_id}#fb-{ref.id}", status_code=303)


@get("/feedback/{feedback_id:int}/proof", name="bo:feedback-proof", opt=roles(ALL_STAFF))
async def feedback_proof(feedback_id: FromPath[int], settings: SettingsDep) -> Response:
    """The customer's proof file, downloaded (never rendered inside our origin)."""
    ref = await feedback_ref(feedback_id)
    path = storage.stored_file(settings.documents_path, ref.proof_path) if ref else None
    if ref is None or path is None:
        raise NotFoundException()
    name = "".join(c for c in (ref.proof_name or path.name) if c.isalnum() or c in "._- ")[:100]
    return Response(
        content=await storage.read_bytes(path),
        media_type=ref.proof_type or "application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{name or path.name}"',
            "content-security-policy": "default-src 'none'; sandbox",
            "cache-control": "private, no-store",
        },
    )


def _decided(
    request: Request, feedback_id: int, message: str, level: str, status_code: int = 200
) -> Template:
    return fragment(
        request,
        "backoffice/feedback/_decided.html",
        status_code=status_code,
        feedback_id=feedback_id,
        message=message,
        level=level,
    )


async def _entry_with_errors(
    request: Request, feedback_id: int, values: dict[str, Any], exc: InvalidInput, form: str
) -> Template:
    """The answer's card again, with what was typed and a message per field."""
    ref = await feedback_ref(feedback_id)
    entries = await inbox(InboxFilters(customer_id=ref.customer_id)) if ref else []
    entry = next((e for e in entries if e.id == feedback_id), None)
    if entry is None:
        return _decided(request, feedback_id, "This answer is no longer pending.", "warning", 409)
    return fragment(
        request,
        "backoffice/feedback/_entry.html",
        status_code=422,
        entry=entry,
        values=values,
        errors=errors_of(exc),
        form=form,
        dispute_choices=DISPUTE_CHOICES,
        return_to=safe_next(text(values, "return_to") or INBOX),
        status_words=status_words,
        today=await company_today(),
        with_customer=text(values, "with_customer") == "1",
    )


def _already(exc: Conflict) -> str:
    return f"Already decided in another tab or by a colleague: nothing was changed ({exc})."


@post("/feedback/{feedback_id:int}/validate", name="bo:feedback-validate", opt=roles(WORKERS))
async def feedback_validate(request: Request, feedback_id: FromPath[int]) -> Response:
    values = await form_values(request)
    back = safe_next(text(values, "return_to") or INBOX)
    row_target = is_fragment(request, f"fb-{feedback_id}")
    problems: list[FieldProblem] = []
    promise = optional_date(values, "promise_date", problems)
    if promise is not None and promise < await company_today():
        problems.append(FieldProblem("promise_date", "must be today or later"))
    reason = text(values, "dispute_reason") or None
    # An empty comment keeps the customer's own words (validate's default).
    comment = text(values, "comment") or None
    try:
        if problems:
            raise InvalidInput(problems)
        decision = await answers.validate(
            feedback_id,
            staff_actor(staff(request)),
            promise_date=promise,
            dispute_reason=reason,
            comment=comment,
        )
    except Conflict as exc:
        if row_target:
            return _decided(request, feedback_id, _already(exc), "warning", 409)
        return done(request, back, _already(exc), "warning")
    except InvalidInput as exc:
        if row_target:
            return await _entry_with_errors(request, feedback_id, values, exc, "validate")
        message = "Not validated: " + "; ".join(str(p) for p in exc.problems)
        return done(request, back, message, "error")
    after = status_words(decision.item_status_after)
    message = f"Validated: the invoice is now “{after}”."
    if decision.item_status_after == decision.item_status_before:
        message = f"Validated: comment recorded, the invoice stays “{after}”."
    if row_target:
        return _decided(request, feedback_id, message, "success")
    return done(request, back, message)


@post("/feedback/validate", name="bo:feedback-bulk", opt=roles(WORKERS))
async def feedback_bulk_validate(request: Request) -> Redirect:
    """Validate each selected answer as the customer gave it; each one on its own, so an
    answer a colleague decided meanwhile is reported and the others still go through."""
    values = await form_values(request)
    back = safe_next(text(values, "return_to") or INBOX)
    raw_ids = values.get("ids", [])
    ids = [int(v) for v in ([raw_ids] if isinstance(raw_ids, str) else raw_ids) if v.isdigit()]
    if not ids:
        return done(request, back, N_("Select at least one answer to validate."), "warning")
    actor = staff_actor(staff(request))
    validated, already = 0, 0
    for feedback_id in dict.fromkeys(ids):
        try:
            await answers.validate(feedback_id, actor)
        except (Conflict, NotFound):
            already += 1
        else:
            validated += 1
    _ = tr(request)
    message = _.ngettext("%(num)d answer validated.", "%(num)d answers validated.", validated)
    if already:
        message += " " + _.ngettext(
            "%(num)d had already been decided and was left as is.",
            "%(num)d had already been decided and were left as is.",
            already,
        )
    return done(request, back, message, "success" if validated else "warning")


def portal_mail(settings: Settings) -> PortalMail:
    """Emails to customers, composed exactly as the portal composes its own."""
    # The composer lives with the portal face for now; it belongs in web/ (shared by both
    # faces), see docs/BACKOFFICE.md.
    from web.mailing import TemplateComposer

    return PortalMail(
        compose=TemplateComposer(TEMPLATES),
        mail_from=settings.smtp_from,
        base_url=settings.base_url,
    )


@post("/feedback/{feedback_id:int}/reject", name="bo:feedback-reject", opt=roles(WORKERS))
async def feedback_reject(
    request: Request, feedback_id: FromPath[int], settings: SettingsDep
) -> Response:
    values = await form_values(request)
    back = safe_next(text(values, "return_to") or INBOX)
    row_target = is_fragment(request, f"fb-{feedback_id}")
    notify = checked(values, "notify")
    try:
        await answers.reject(
            feedback_id,
            staff_actor(staff(request)),
            text(values, "reason"),
            notify=notify,
            mail=portal_mail(settings) if notify else None,
        )
    except Conflict as exc:
        if row_target:
            return _decided(request, feedback_id, _already(exc), "warning", 409)
        return done(request, back, _already(exc), "warning")
    except InvalidInput as exc:
        if row_target:
            return await _entry_with_errors(request, feedback_id, values, exc, "reject")
        message = "Not rejected: " + "; ".join(str(p) for p in exc.problems)
        return done(request, back, message, "error")
    message = "Rejected." + (" The customer is told by email." if notify else "")
    if row_target:
        return _decided(request, feedback_id, message, "success")
    return done(request, back, message)


ROUTES = [
    inbox_page,
    feedback_link,
    feedback_proof,
    feedback_validate,
    feedback_bulk_validate,
    feedback_reject,
]
