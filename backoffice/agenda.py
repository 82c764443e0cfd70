"""The collector's agenda and the page of one action: preview, edit and send the email, log a
call, skip, postpone, confirm automatic ones in bulk, print and mark letters.

Previews are documents of their own, shown in a sandboxed <iframe> with the mail pages'
policy (inline styles only, no script, no network): the GET shows the step's template
filled in; the editor's "Preview" posts the typed words into the same frame.
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.calls import CALL_CHOICES, read_call
from backoffice.forms import checked, errors_of, form_values, optional_date, text
from backoffice.mail import FRAMED_HEADERS
from backoffice.pages import done, render, staff, tr
from backoffice.security import ALL_STAFF, PREFIX, WORKERS, roles
from receivables.access.tables import Role
from receivables.clock import company_today
from receivables.dunning import agenda as service
from receivables.dunning.agenda import Draft, Who
from receivables.dunning.hashtags import HASHTAGS
from receivables.dunning.letters import action_letter, mark_letter_sent
from receivables.dunning.scenarios import CHANNEL_LABELS, LEVEL_LABELS, MODE_LABELS
from receivables.dunning.tables import ACTION_STATUS_LABELS
from receivables.errors import Conflict, FieldProblem, InvalidInput
from receivables.i18n import N_
from receivables.ledger.account_changes import staff_actor
from web.deps import SettingsDep

AGENDA = f"{PREFIX}/agenda"
LANGUAGE_NAMES = {"en": "English", "fr": "French"}
LABELS = {
    "level": LEVEL_LABELS,
    "channel": CHANNEL_LABELS,
    "mode": MODE_LABELS,
    "status": ACTION_STATUS_LABELS,
}


def action_url(action_id: int, anchor: str = "") -> str:
    return f"{AGENDA}/{action_id}" + (f"#{anchor}" if anchor else "")


@get("/agenda", name="bo:agenda", opt=roles(ALL_STAFF))
async def agenda_page(request: Request) -> Template:
    user = staff(request)
    raw_who = str(request.query_params.get("who", ""))
    raw_collector = str(request.query_params.get("collector", ""))
    default = Who.mine if user.role == Role.collector.value else Who.everyone
    who = Who(raw_who) if raw_who in {w.value for w in Who} else default
    collector_id = int(raw_collector) if raw_collector.isdigit() else None
    today = await company_today()
    result = await service.agenda(today, who=who, user_id=user.id, collector_id=collector_id)
    return await render(
        request,
        "backoffice/dunning/agenda.html",
        page_title=N_("Agenda"),
        agenda=result,
        who=who.value,
        collector_id=collector_id,
        collectors=await service.collectors(),
        labels=LABELS,
        today=today,
    )


@post("/agenda/confirm", name="bo:agenda-confirm", opt=roles(WORKERS))
async def agenda_confirm(request: Request, settings: SettingsDep) -> Redirect:
    values = await form_values(request)
    raw = values.get("ids", [])
    ids = [int(v) for v in (raw if isinstance(raw, list) else [raw]) if str(v).isdigit()]
    back = text(values, "return_to")
    back = back if back.startswith(AGENDA) else AGENDA
    if not ids:
        return done(request, back, N_("Select the reminders to send first."), "warning")
    result = await service.confirm_actions(
        ids, staff_actor(staff(request)), settings, await company_today()
    )
    _ = tr(request)
    message = _.ngettext(
        "%(num)d reminder confirmed and sent.",
        "%(num)d reminders confirmed and sent.",
        len(result.done),
    )
    if result.refused:
        refused = "; ".join(f"#{k}: {v}" for k, v in result.refused.items())
        message += " " + _("Not sent: %(why)s", why=refused)
    return done(request, back, message, "warning" if result.refused else "success")


# ------------------------------------------------------------------ one action


def _draft_values(view: service.ActionView) -> dict[str, Any]:
    draft = view.draft
    return {
        "subject": draft.subject if draft else "",
        "body": draft.body if draft else "",
        "language": draft.language if draft else view.language,
        "recipients": [str(c.id) for c in view.facts.reminder_contacts],
        "override_spacing": "",
    }


async def _action_page(
    request: Request,
    action_id: int,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    form: str = "",
    status_code: int = 200,
) -> Template:
    today = await company_today()
    view = await service.action_view(action_id, today)
    draft_values = _draft_values(view)
    if form == "email" and values is not None:
        draft_values.update(values)
        recipients = values.get("recipients", [])
        draft_values["recipients"] = recipients if isinstance(recipients, list) else [recipients]
    return await render(
        request,
        "backoffice/dunning/action.html",
        status_code=status_code,
        page_title=f"{view.action.step_name} · {view.facts.customer.name}",
        view=view,
        action=view.action,
        facts=view.facts,
        statement=view.facts.statement,
        draft=draft_values,
        values=values or {},
        errors=errors or {},
        form=form,
        labels=LABELS,
        hashtags=HASHTAGS,
        call_choices=CALL_CHOICES,
        today=today,
        languages=[
            (lang, LANGUAGE_NAMES.get(lang, lang)) for lang in sorted(view.texts) or [view.language]
        ],
    )


@get("/agenda/{action_id:int}", name="bo:action", opt=roles(ALL_STAFF))
async def action_page(request: Request, action_id: FromPath[int]) -> Template:
    return await _action_page(request, action_id)


def framed(document: str, status_code: int = 200) -> Response:
    return Response(
        content=document,
        media_type="text/html; charset=utf-8",
        headers=FRAMED_HEADERS,
        status_code=status_code,
    )


def framed_problems(problems: list[FieldProblem]) -> Response:
    items = "".join(
        f"<li><strong>{escape(p.field)}</strong>: {escape(p.message)}</li>" for p in problems
    )
    return framed(
        '<!doctype html><meta charset="utf-8"><body style="font:15px sans-serif;color:#9b1c1c;'
        f'padding:16px">Cannot preview:<ul>{items}</ul></body>',
        status_code=422,
    )


def _draft_from(values: dict[str, Any]) -> Draft:
    recipients = values.get("recipients", [])
    recipients = recipients if isinstance(recipients, list) else [recipients]
    return Draft(
        subject=str(values.get("subject", "")),
        body=str(values.get("body", "")),
        language=text(values, "language") or "en",
        contact_ids=tuple(int(r) for r in recipients if str(r).isdigit()),
    )


@get("/agenda/{action_id:int}/email.html", name="bo:action-email", opt=roles(ALL_STAFF))
async def action_email(
    request: Request, action_id: FromPath[int], settings: SettingsDep
) -> Response:
    """The step's template filled in for this customer, as the recipient would see it."""
    view = await service.action_view(action_id, await company_today())
    values = _draft_values(view)
    if not values["body"]:
        return framed('<!doctype html><meta charset="utf-8"><p>No email for this step.</p>')
    try:
        email = service.preview(view.facts, _draft_from(values), settings.base_url)
    except InvalidInput as exc:
        return framed_problems(exc.problems)
    return framed(email.html)


@post("/agenda/{action_id:int}/preview", name="bo:action-preview", opt=roles(WORKERS))
async def action_preview(
    request: Request, action_id: FromPath[int], settings: SettingsDep
) -> Response:
    values = await form_values(request)
    view = await service.action_view(action_id, await company_today())
    try:
        email = service.preview(view.facts, _draft_from(values), settings.base_url)
    except InvalidInput as exc:
        return framed_problems(exc.problems)
    return framed(email.html)


@post("/agenda/{action_id:int}/send", name="bo:action-send", opt=roles(WORKERS))
async def action_send(
    request: Request, action_id: FromPath[int], settings: SettingsDep
) -> Template | Redirect:
    values = await form_values(request)
    try:
        ids = await service.send_action(
            action_id,
            _draft_from(values),
            staff_actor(staff(request)),
            settings,
            await company_today(),
            override_spacing=checked(values, "override_spacing"),
        )
    except InvalidInput as exc:
        return await _action_page(
            request, action_id, values=values, errors=errors_of(exc), form="email", status_code=422
        )
    except Conflict as exc:
        return done(request, action_url(action_id), str(exc), "warning")
    return done(
        request,
        action_url(action_id),
        tr(request).ngettext(
            "%(num)d email written to the outbox; the worker sends it within seconds.",
            "%(num)d emails written to the outbox; the worker sends them within seconds.",
            len(ids),
        ),
    )


@post("/agenda/{action_id:int}/call", name="bo:action-call", opt=roles(WORKERS))
async def action_call(request: Request, action_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    today = await company_today()
    try:
        call = read_call(values, today)
        await service.log_call(action_id, call, staff_actor(staff(request)), today)
    except InvalidInput as exc:
        return await _action_page(
            request, action_id, values=values, errors=errors_of(exc), form="call", status_code=422
        )
    except Conflict as exc:
        return done(request, action_url(action_id), str(exc), "warning")
    return done(request, AGENDA, N_("Call logged."))


@post("/agenda/{action_id:int}/litigation", name="bo:action-litigation", opt=roles(WORKERS))
async def action_litigation(request: Request, action_id: FromPath[int]) -> Template | Redirect:
    """The collector's decision that amicable collection has ended for this account."""
    values = await form_values(request)
    try:
        action = await service.confirm_litigation(
            action_id,
            text(values, "litigation_note"),
            staff_actor(staff(request)),
            await company_today(),
        )
    except InvalidInput as exc:
        errors = {("litigation_note" if k == "note" else k): v for k, v in errors_of(exc).items()}
        return await _action_page(
            request, action_id, values=values, errors=errors, form="litigation", status_code=422
        )
    except Conflict as exc:
        return done(request, action_url(action_id), str(exc), "warning")
    customer = await service.customer_name(action.customer)
    return done(
        request,
        AGENDA,
        N_("%(customer)s handed over to litigation: no more reminders go to this account."),
        customer=customer,
    )


@post("/agenda/{action_id:int}/skip", name="bo:action-skip", opt=roles(WORKERS))
async def action_skip(request: Request, action_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await service.skip_action(action_id, text(values, "reason"), staff_actor(staff(request)))
    except InvalidInput as exc:
        return await _action_page(
            request, action_id, values=values, errors=errors_of(exc), form="skip", status_code=422
        )
    except Conflict as exc:
        return done(request, action_url(action_id), str(exc), "warning")
    return done(request, AGENDA, N_("Step skipped."))


@post("/agenda/{action_id:int}/postpone", name="bo:action-postpone", opt=roles(WORKERS))
async def action_postpone(request: Request, action_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    problems: list[FieldProblem] = []
    until = optional_date(values, "until", problems)
    try:
        if problems:
            raise InvalidInput(problems)
        action = await service.postpone_action(
            action_id,
            until,
            text(values, "reason"),
            staff_actor(staff(request)),
            await company_today(),
        )
    except InvalidInput as exc:
        return await _action_page(
            request,
            action_id,
            values=values,
            errors=errors_of(exc),
            form="postpone",
            status_code=422,
        )
    except Conflict as exc:
        return done(request, action_url(action_id), str(exc), "warning")
    return done(request, AGENDA, N_("Postponed to %(day)s."), day=action.due_on.isoformat())


@get("/agenda/{action_id:int}/letter.pdf", name="bo:action-letter", opt=roles(ALL_STAFF))
async def action_letter_pdf(
    request: Request, action_id: FromPath[int], settings: SettingsDep
) -> Response:
    letter = await action_letter(action_id, settings, await company_today())
    return Response(
        content=letter.content,
        media_type="application/pdf",
        headers={
            "content-disposition": f'attachment; filename="{letter.filename}"',
            "cache-control": "no-store",
        },
    )


@post("/agenda/{action_id:int}/letter-sent", name="bo:action-letter-sent", opt=roles(WORKERS))
async def action_letter_sent(
    request: Request, action_id: FromPath[int], settings: SettingsDep
) -> Template | Redirect:
    values = await form_values(request)
    problems: list[FieldProblem] = []
    sent_on = optional_date(values, "sent_on", problems)
    try:
        if problems:
            raise InvalidInput(problems)
        await mark_letter_sent(
            action_id,
            sent_on,
            staff_actor(staff(request)),
            settings,
            await company_today(),
        )
    except InvalidInput as exc:
        return await _action_page(
            request, action_id, values=values, errors=errors_of(exc), form="letter", status_code=422
        )
    except Conflict as exc:
        return done(request, action_url(action_id), str(exc), "warning")
    return done(
        request, action_url(action_id), N_("Letter marked as posted; the PDF sent is kept.")
    )


ROUTES = [
    agenda_page,
    agenda_confirm,
    action_page,
    action_email,
    action_preview,
    action_send,
    action_call,
    action_litigation,
    action_skip,
    action_postpone,
    action_letter_pdf,
    action_letter_sent,
]
