"""Answers per invoice: the form (page or htmx fragment) and its submission."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.access import client_ip, portal_mail, require_csrf
from portal.display import KINDS, METHODS, REASONS, Listing
from portal.pages import page_data, visit_context, wants_fragment
from receivables.clock import customer_today
from receivables.documents.storage import MAX_PROOF_BYTES
from receivables.errors import InvalidInput
from receivables.portal.account import company_of
from receivables.portal.feedback import AnswerForm, Proof, answerable_items, submit_answer
from receivables.portal.sessions import Visit
from receivables.portal.tables import FeedbackKind
from web.deps import SettingsDep

FORM_FIELDS = ("kind", "paid_on", "method", "reference", "promise_date", "dispute_reason", "text")
MAX_BODY = MAX_PROOF_BYTES + 1024 * 1024


def _errors(exc: InvalidInput, _) -> dict[str, str]:
    errors: dict[str, str] = {}
    for problem in exc.problems:
        errors.setdefault(problem.field, _(problem.message))
    return errors


async def form_context(
    visit: NamedDependency[Visit],
    item_ids: list[str],
    listing: Listing,
    values: AnswerForm,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    ctx = visit_context(visit)
    _ = ctx["t"]
    items: list[dict] = []
    try:
        items = await answerable_items(visit.customer_id, item_ids)
    except InvalidInput as exc:
        errors = {**_errors(exc, _), **(errors or {})}
    today = await customer_today(visit.customer_id)
    ctx.update(
        items=items,
        values=values,
        errors=errors or {},
        listing=listing,
        kinds=[k.value for k in FeedbackKind],
        today=today,
        year_ahead=today + timedelta(days=366),
        max_mb=MAX_PROOF_BYTES // (1024 * 1024),
    )
    company = await company_of(visit.company_id)
    ctx.update(
        company=company,
        company_name=company.name,
        kind_labels=KINDS,
        methods_options=[(k, _(v)) for k, v in METHODS.items()],
        reasons_options=[(k, _(v)) for k, v in REASONS.items()],
    )
    return ctx


@get("/answer", name="portal:answer-form", include_in_schema=False)
async def answer_form(
    request: HTMXRequest,
    visit: NamedDependency[Visit],
    item: FromQuery[list[str] | None] = None,
    kind: FromQuery[str | None] = None,
    show: FromQuery[str | None] = None,
    sort: FromQuery[str | None] = None,
    order: FromQuery[str | None] = None,
    rows: FromQuery[str | None] = None,
) -> Template:
    listing = Listing.parse(show, sort, order, rows)
    ctx = await form_context(visit, item or [], listing, AnswerForm(kind=kind or ""))
    name = "portal/_answer_form.html" if wants_fragment(request) else "portal/answer.html"
    return Template(template_name=name, context=ctx)


@post(
    "/answer",
    name="portal:answer",
    include_in_schema=False,
    request_max_body_size=MAX_BODY,
    status_code=200,
)
async def answer_submit(
    request: HTMXRequest, visit: NamedDependency[Visit], settings: SettingsDep
) -> Response:
    form = await request.form()
    require_csrf(request, visit, form)
    values = AnswerForm(**{name: str(form.get(name) or "") for name in FORM_FIELDS})
    item_ids = [str(v) for v in form.getall("item", [])]
    listing = Listing.parse(form.get("show"), form.get("sort"), form.get("order"), form.get("rows"))
    upload = form.get("proof")
    proof = None
    if isinstance(upload, UploadFile) and upload.filename:
        proof = Proof(filename=upload.filename, content=await upload.read())
    try:
        done = await submit_answer(
            customer_id=visit.customer_id,
            contact_id=visit.contact_id,
            actor=visit.actor,
            ip=client_ip(request),
            item_ids=item_ids,
            form=values,
            proof=proof,
            today=await customer_today(visit.customer_id),
            documents_dir=settings.documents_path,
            mail=portal_mail(settings),
        )
    except InvalidInput as exc:
        ctx = await form_context(
            visit, item_ids, listing, values, _errors(exc, visit_context(visit)["t"])
        )
        name = "portal/_answer_form.html" if wants_fragment(request) else "portal/answer.html"
        return Template(template_name=name, context=ctx, status_code=422)
    if not wants_fragment(request):
        return Redirect(
            path="/p/statement",
            status_code=303,
            query_params={"answered": str(len(done.feedback_ids))},
        )
    ctx = await page_data(visit, listing)
    ctx.update(answered=len(done.feedback_ids))
    return Template(template_name="portal/_answer_done.html", context=ctx)
