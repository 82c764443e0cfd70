"""Customers: the list, the account page and the changes collectors make to an account:
contacts, statuses, blocking, portal links, calls, notes, statement emails, escalation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from backoffice.agenda import framed, framed_problems
from backoffice.calls import CALL_CHOICES, listed, read_call
from backoffice.forms import checked, errors_of, form_values, optional_date, optional_int, text
from backoffice.pages import done, fragment, is_fragment, render, staff, tr
from backoffice.security import ALL_STAFF, FINANCE, PREFIX, WORKERS, roles, safe_next
from receivables.access.staff_accounts import active_collectors
from receivables.access.tables import PortalLink, StaffUser
from receivables.clock import company_today, customer_today
from receivables.dunning import calls
from receivables.dunning.escalation import (
    escalation_view,
    reset_escalation,
    set_escalation_step,
)
from receivables.dunning.payer_profiles import (
    accept_suggestion,
    profile_label,
    profile_suggestions,
)
from receivables.dunning.scenarios import LEVEL_LABELS, scenario_name
from receivables.errors import Conflict, FieldProblem, InvalidInput, NotFound
from receivables.feedback_inbox import pending_for_customer
from receivables.i18n import N_
from receivables.labels import label
from receivables.ledger import account_changes as changes
from receivables.ledger import cash_application
from receivables.ledger.account_changes import ContactInput, DisputeReason, StatusInput
from receivables.ledger.customer_list import (
    CustomerFilters,
    Sort,
    list_customers,
    profile_choices,
)
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import Company, Contact, Customer, Item, ItemStatus
from receivables.ledger.timeline import CATEGORIES, customer_timeline, status_words
from receivables.money import Money
from web.deps import SettingsDep

SORTS = [
    (Sort.overdue.value, N_("Most overdue")),
    (Sort.oldest_due.value, N_("Oldest due")),
    (Sort.name.value, N_("Name")),
]
STATUS_CHOICES = [(s.value, status_words(s.value).capitalize()) for s in changes.SETTABLE_STATUSES]
DISPUTE_CHOICES = [("", "—")] + [
    (r.value, r.value.replace("_", " ").capitalize()) for r in DisputeReason
]


def account_url(customer_id: int, anchor: str = "") -> str:
    return f"{PREFIX}/customers/{customer_id}" + (f"#{anchor}" if anchor else "")


def item_url(item_id: int) -> str:
    return f"{PREFIX}/items/{item_id}"


# ------------------------------------------------------------------ the list


def _filters(request: Request) -> tuple[CustomerFilters, dict[str, str]]:
    """Filters from the query string, and the raw values to show back in the form."""
    q = request.query_params
    raw = {
        k: str(q.get(k, "")).strip()
        for k in ("q", "collector", "profile", "overdue_days", "pending", "blocked", "sort")
    }
    user = staff(request)
    collector_id = None
    unassigned = False
    if raw["collector"] == "me":
        collector_id = user.id
    elif raw["collector"] == "none":
        unassigned = True
    elif raw["collector"].isdigit():
        collector_id = int(raw["collector"])
    overdue_days = int(raw["overdue_days"]) if raw["overdue_days"].isdigit() else None
    if overdue_days is None:
        raw["overdue_days"] = ""
    sort = Sort(raw["sort"]) if raw["sort"] in {s.value for s in Sort} else Sort.overdue
    page = str(q.get("page", "1"))
    filters = CustomerFilters(
        q=raw["q"][:200],
        collector_id=collector_id,
        unassigned=unassigned,
        payer_profile=raw["profile"] if raw["profile"] in dict(profile_choices()) else "",
        overdue_days=overdue_days,
        pending_feedback=raw["pending"] == "1",
        blocked={"yes": True, "no": False}.get(raw["blocked"]),
        sort=sort,
        page=int(page) if page.isdigit() and int(page) > 0 else 1,
    )
    return filters, raw


def _query(raw: dict[str, str], **changes_: Any) -> str:
    params = {k: v for k, v in {**raw, **changes_}.items() if v not in ("", None)}
    return f"{PREFIX}/customers" + (f"?{urlencode(params)}" if params else "")


@get("/customers", name="bo:customers", opt=roles(ALL_STAFF))
async def customer_list(request: Request) -> Template:
    filters, raw = _filters(request)
    today = await company_today()
    result = await list_customers(filters, today)
    context = {
        "page_title": "Customers",
        "result": result,
        # The page's rows only: a few set-based queries whatever the number of customers.
        "suggestions": await profile_suggestions([r.id for r in result.rows], today),
        "list_url": _query(raw, page=result.page if result.page > 1 else ""),
        "raw": raw,
        "filtered": any(raw[k] for k in raw if k != "sort"),
        "prev_url": _query(raw, page=result.page - 1) if result.page > 1 else None,
        "next_url": _query(raw, page=result.page + 1) if result.has_next else None,
        "sort_url": {s: _query(raw, sort=s) for s, _ in SORTS},
        "collectors": await active_collectors(),
        "profiles": profile_choices(),
        "sorts": SORTS,
    }
    if is_fragment(request, "customer-results"):
        return fragment(request, "backoffice/customers/_results.html", **context)
    return await render(request, "backoffice/customers/list.html", **context)


# ------------------------------------------------------------------ the account


async def _account_context(
    request: Request, customer_id: int, *, category: str = "", before: int | None = None
) -> dict[str, Any]:
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    today = await customer_today(customer_id)
    statement = await build_statement(customer_id, today)
    collector = (
        await StaffUser.objects().get(StaffUser.id == customer.collector)
        if customer.collector
        else None
    )
    contacts = await Contact.objects().where(Contact.customer == customer_id).order_by(Contact.id)
    links = (
        await PortalLink.select(
            PortalLink.id,
            PortalLink.contact,
            PortalLink.issued_by,
            PortalLink.message_ref,
            PortalLink.created_at,
            PortalLink.expires_at,
            PortalLink.revoked_at,
            PortalLink.last_used_at,
        )
        .where(PortalLink.customer == customer_id)
        .order_by(PortalLink.id, ascending=False)
        .limit(20)
    )
    contact_email = {c.id: c.email for c in contacts}
    feedback = await pending_for_customer(customer_id)
    feedback_by_item: dict[int, int] = {}
    for f in feedback:
        feedback_by_item[f.item_id] = feedback_by_item.get(f.item_id, 0) + 1
    credit_limit = (
        Money.from_minor(customer.credit_limit_minor, customer.currency)
        if customer.credit_limit_minor is not None
        else None
    )
    return {
        "page_title": customer.name,
        "customer": customer,
        "company": statement.company,
        "statement": statement,
        "collector": collector,
        "credit_limit": credit_limit,
        "scenario": await scenario_name(customer.scenario),
        "profile_suggestion": (await profile_suggestions([customer_id], today))[customer_id],
        "contacts": contacts,
        "links": links,
        "contact_email": contact_email,
        "feedback": feedback,
        "feedback_by_item": feedback_by_item,
        "timeline": await customer_timeline(customer_id, category=category, before=before),
        "categories": CATEGORIES,
        "today": today,
        "now_utc": datetime.now(UTC),
        "collectors": await active_collectors(),
        "profiles": profile_choices(),
        "status_words": status_words,
        "escalation": await escalation_view(customer_id, today),
        "small_remainders": await cash_application.small_remainders(customer_id=customer_id),
        "can_apply_cash": staff(request).role in FINANCE,
        "level_labels": LEVEL_LABELS,
        "last_call": await calls.last_call(customer_id),
        "email_templates": await calls.email_templates(customer.company),
        "call_choices": CALL_CHOICES,
        "errors": {},
        "values": {},
        "form": "",
    }


@get("/customers/{customer_id:int}", name="bo:account", opt=roles(ALL_STAFF))
async def account(
    request: Request,
    customer_id: FromPath[int],
    kind: FromQuery[str] = "",
    before: FromQuery[int | None] = None,
) -> Template:
    if is_fragment(request, "timeline", "tl-more"):
        timeline = await customer_timeline(customer_id, category=kind, before=before)
        return fragment(
            request,
            "backoffice/customers/_timeline.html",
            timeline=timeline,
            categories=CATEGORIES,
            customer_id=customer_id,
            append=before is not None,
        )
    context = await _account_context(request, customer_id, category=kind, before=before)
    return await render(request, "backoffice/customers/account.html", **context)


async def _account_with_errors(
    request: Request,
    customer_id: int,
    form: str,
    values: dict[str, Any],
    exc: InvalidInput,
    fields: dict[str, str] | None = None,
) -> Template:
    """The account page again, the refused form open with what was typed and its errors
    (`fields` renames the domain's field names to the form's own where they differ)."""
    context = await _account_context(request, customer_id)
    errors = {(fields or {}).get(k, k): v for k, v in errors_of(exc).items()}
    context.update(errors=errors, values=values, form=form)
    return await render(request, "backoffice/customers/account.html", status_code=422, **context)


@post("/customers/{customer_id:int}/assign", name="bo:assign", opt=roles(WORKERS))
async def assign(request: Request, customer_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await changes.assign_account(
            customer_id,
            collector_id=optional_int(values, "collector"),
            payer_profile=text(values, "payer_profile"),
            actor=changes.staff_actor(staff(request)),
        )
    except InvalidInput as exc:
        return await _account_with_errors(request, customer_id, "assign", values, exc)
    return done(request, account_url(customer_id), N_("Collector and payer profile saved."))


@post(
    "/customers/{customer_id:int}/payer-profile/accept",
    name="bo:profile-accept",
    opt=roles(WORKERS),
)
async def profile_accept(request: Request, customer_id: FromPath[int]) -> Redirect:
    """The payer profile the behaviour suggests, accepted in one click (from the account page
    or the customer list, which it returns to)."""
    values = await form_values(request)
    back = text(values, "back")
    to = back if back.startswith(f"{PREFIX}/customers") and safe_next(back) == back else ""
    to = to or account_url(customer_id)
    try:
        accepted = await accept_suggestion(
            customer_id,
            text(values, "profile"),
            changes.staff_actor(staff(request)),
            await customer_today(customer_id),
        )
    except (Conflict, InvalidInput) as exc:
        return done(request, to, str(exc), "warning")
    message = f"Payer profile set to {profile_label(accepted.suggested or '').lower()}"
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is not None and customer.scenario:
        name = await scenario_name(customer.scenario)
        message += f"; the account keeps its own scenario “{name}”."
    else:
        message += "; its default scenario now applies."
    return done(request, to, message)


@post("/customers/{customer_id:int}/block", name="bo:block", opt=roles(WORKERS))
async def block(request: Request, customer_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await changes.block_account(
            customer_id, text(values, "reason"), changes.staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return await _account_with_errors(request, customer_id, "block", values, exc)
    except Conflict as exc:
        return done(request, account_url(customer_id), str(exc), "warning")
    return done(
        request, account_url(customer_id), N_("Account blocked: no more deliveries until payment.")
    )


@post("/customers/{customer_id:int}/unblock", name="bo:unblock", opt=roles(WORKERS))
async def unblock(request: Request, customer_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await changes.unblock_account(
            customer_id, text(values, "reason"), changes.staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return await _account_with_errors(request, customer_id, "unblock", values, exc)
    except Conflict as exc:
        return done(request, account_url(customer_id), str(exc), "warning")
    return done(request, account_url(customer_id), N_("Account unblocked."))


# ------------------------------------------------------------------ calls, notes, emails


@post("/customers/{customer_id:int}/calls", name="bo:account-call", opt=roles(WORKERS))
async def account_call(request: Request, customer_id: FromPath[int]) -> Template | Redirect:
    """A call logged from the account page, without an agenda action."""
    values = await form_values(request)
    today = await customer_today(customer_id)
    try:
        call = read_call(values, today)
        await calls.log_customer_call(customer_id, call, changes.staff_actor(staff(request)), today)
    except InvalidInput as exc:
        return await _account_with_errors(request, customer_id, "call", values, exc)
    message = "Call logged."
    if call.record:
        message += f" {len(call.item_ids)} invoice{'s' if len(call.item_ids) != 1 else ''} set to "
        message += "promise to pay." if call.record == "promise" else "disputed."
    if call.callback_on:
        message += f" Call back on {call.callback_on.isoformat()}."
    return done(request, account_url(customer_id), message)


@post("/customers/{customer_id:int}/notes", name="bo:account-note", opt=roles(WORKERS))
async def account_note(request: Request, customer_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await calls.add_note(
            customer_id, str(values.get("note", "")), changes.staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return await _account_with_errors(request, customer_id, "note", values, exc)
    return done(request, account_url(customer_id), N_("Note added to the timeline."))


def _contact_ids(values: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(c) for c in listed(values, "recipients") if c.isdigit())


@post("/customers/{customer_id:int}/emails", name="bo:account-email", opt=roles(WORKERS))
async def account_email(
    request: Request, customer_id: FromPath[int], settings: SettingsDep
) -> Template | Redirect:
    """An email from a message template to chosen contacts, outside any dunning step."""
    values = await form_values(request)
    try:
        ids = await calls.send_statement_email(
            customer_id,
            text(values, "template"),
            _contact_ids(values),
            changes.staff_actor(staff(request)),
            settings,
            await customer_today(customer_id),
        )
    except InvalidInput as exc:
        return await _account_with_errors(request, customer_id, "email", values, exc)
    return done(
        request,
        account_url(customer_id),
        tr(request).ngettext(
            "%(num)d email written to the outbox; the worker sends it within seconds.",
            "%(num)d emails written to the outbox; the worker sends them within seconds.",
            len(ids),
        ),
    )


@post(
    "/customers/{customer_id:int}/emails/preview",
    name="bo:account-email-preview",
    opt=roles(WORKERS),
)
async def account_email_preview(
    request: Request, customer_id: FromPath[int], settings: SettingsDep
) -> Response:
    """The chosen template filled in for the first chosen contact; nothing is issued."""
    values = await form_values(request)
    try:
        email = await calls.preview_statement_email(
            customer_id,
            text(values, "template"),
            _contact_ids(values),
            settings.base_url,
            await customer_today(customer_id),
        )
    except InvalidInput as exc:
        return framed_problems(exc.problems)
    return framed(email.html)


# ------------------------------------------------------------------ escalation


@post(
    "/customers/{customer_id:int}/escalation/reset",
    name="bo:escalation-reset",
    opt=roles(WORKERS),
)
async def escalation_reset(request: Request, customer_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await reset_escalation(
            customer_id, text(values, "reset_reason"), changes.staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return await _account_with_errors(
            request, customer_id, "escalation-reset", values, exc, {"reason": "reset_reason"}
        )
    return done(
        request,
        account_url(customer_id),
        N_("Escalation reset: the next reminder starts again from the first step."),
    )


@post(
    "/customers/{customer_id:int}/escalation/step",
    name="bo:escalation-step",
    opt=roles(WORKERS),
)
async def escalation_step(request: Request, customer_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await set_escalation_step(
            customer_id,
            optional_int(values, "step") or 0,
            text(values, "step_reason"),
            changes.staff_actor(staff(request)),
            await customer_today(customer_id),
        )
    except InvalidInput as exc:
        return await _account_with_errors(
            request, customer_id, "escalation-step", values, exc, {"reason": "step_reason"}
        )
    return done(request, account_url(customer_id), N_("Escalation set at the chosen step."))


# ------------------------------------------------------------------ contacts


def _contact_input(values: dict[str, Any]) -> ContactInput:
    return ContactInput(
        name=text(values, "name"),
        email=text(values, "email"),
        phone=text(values, "phone"),
        role=text(values, "role"),
        language=text(values, "language"),
        receives_reminders=checked(values, "receives_reminders"),
    )


async def _contact_page(
    request: Request,
    customer_id: int,
    *,
    contact: Contact | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    _ = tr(request)
    return await render(
        request,
        "backoffice/customers/contact_form.html",
        status_code=status_code,
        page_title=(_("Edit contact") if contact else _("New contact")) + f" · {customer.name}",
        customer=customer,
        contact=contact,
        values=values,
        errors=errors or {},
    )


@get("/customers/{customer_id:int}/contacts/new", name="bo:contact-new", opt=roles(WORKERS))
async def contact_new(request: Request, customer_id: FromPath[int]) -> Template:
    return await _contact_page(
        request, customer_id, contact=None, values={"receives_reminders": "1"}
    )


@post("/customers/{customer_id:int}/contacts", name="bo:contact-add", opt=roles(WORKERS))
async def contact_add(request: Request, customer_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        contact = await changes.add_contact(
            customer_id, _contact_input(values), changes.staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return await _contact_page(
            request,
            customer_id,
            contact=None,
            values=values,
            errors=errors_of(exc),
            status_code=422,
        )
    return done(
        request,
        account_url(customer_id, "contacts"),
        N_("Contact %(email)s added."),
        email=contact.email,
    )


async def _contact(customer_id: int, contact_id: int) -> Contact:
    contact = await Contact.objects().get(
        (Contact.id == contact_id) & (Contact.customer == customer_id)
    )
    if contact is None:
        raise NotFound(f"contact {contact_id}")
    return contact


@get(
    "/customers/{customer_id:int}/contacts/{contact_id:int}",
    name="bo:contact-edit",
    opt=roles(WORKERS),
)
async def contact_edit(
    request: Request, customer_id: FromPath[int], contact_id: FromPath[int]
) -> Template:
    contact = await _contact(customer_id, contact_id)
    values = {
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "role": contact.role,
        "language": contact.language,
        "receives_reminders": "1" if contact.receives_reminders else "",
    }
    return await _contact_page(request, customer_id, contact=contact, values=values)


@post(
    "/customers/{customer_id:int}/contacts/{contact_id:int}",
    name="bo:contact-save",
    opt=roles(WORKERS),
)
async def contact_save(
    request: Request, customer_id: FromPath[int], contact_id: FromPath[int]
) -> Template | Redirect:
    contact = await _contact(customer_id, contact_id)
    values = await form_values(request)
    try:
        await changes.update_contact(
            customer_id, contact_id, _contact_input(values), changes.staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return await _contact_page(
            request,
            customer_id,
            contact=contact,
            values=values,
            errors=errors_of(exc),
            status_code=422,
        )
    return done(request, account_url(customer_id, "contacts"), N_("Contact saved."))


@post(
    "/customers/{customer_id:int}/contacts/{contact_id:int}/reminders",
    name="bo:contact-reminders",
    opt=roles(WORKERS),
)
async def contact_reminders(
    request: Request, customer_id: FromPath[int], contact_id: FromPath[int]
) -> Redirect:
    """Choose who receives reminders: one click per contact."""
    contact = await _contact(customer_id, contact_id)
    values = await form_values(request)
    wanted = checked(values, "receives_reminders")
    data = ContactInput(
        name=contact.name,
        email=contact.email,
        phone=contact.phone,
        role=contact.role,
        language=contact.language,
        receives_reminders=wanted,
    )
    await changes.update_contact(customer_id, contact_id, data, changes.staff_actor(staff(request)))
    message = (
        N_("%(email)s now receives reminders.")
        if wanted
        else N_("%(email)s no longer receives reminders.")
    )
    return done(request, account_url(customer_id, "contacts"), message, email=contact.email)


# ------------------------------------------------------------------ items


async def _item_context(request: Request, item_id: int) -> dict[str, Any]:
    item = await Item.objects().get(Item.id == item_id)
    if item is None:
        raise NotFound(f"item {item_id}")
    customer = await Customer.objects().get(Customer.id == item.customer)
    company = await Company.objects().get(Company.id == item.company)
    assert customer is not None and company is not None
    today = await company_today(item.company)
    feedback = [f for f in await pending_for_customer(customer.id) if f.item_id == item.id]
    return {
        "page_title": f"{item.number} · {customer.name}",
        "item": item,
        "customer": customer,
        "company": company,
        "total": Money.from_minor(item.total_minor, item.currency),
        "open": Money.from_minor(item.open_minor, item.currency),
        "days_late": max(0, (today - item.due_date).days),
        "today": today,
        "feedback": feedback,
        "timeline": await customer_timeline(customer.id, item_id=item.id),
        "status_choices": STATUS_CHOICES,
        "dispute_choices": DISPUTE_CHOICES,
        "settable": item.status not in (ItemStatus.paid.value, ItemStatus.cancelled.value),
        "status_words": status_words,
        "values": {
            "status": item.status,
            "promise_date": item.promise_date.isoformat() if item.promise_date else "",
            "dispute_reason": item.dispute_reason,
            "comment": item.comment,
        },
        "errors": {},
    }


@get("/items/{item_id:int}", name="bo:item", opt=roles(ALL_STAFF))
async def item_page(request: Request, item_id: FromPath[int]) -> Template:
    """One invoice: its status form, its pending answers, its own history."""
    return await render(
        request, "backoffice/items/item.html", **await _item_context(request, item_id)
    )


@post("/items/{item_id:int}/status", name="bo:item-status", opt=roles(WORKERS))
async def item_status(request: Request, item_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    problems: list[FieldProblem] = []
    promise = optional_date(values, "promise_date", problems)
    data = StatusInput(
        status=text(values, "status"),
        promise_date=promise,
        dispute_reason=text(values, "dispute_reason"),
        comment=text(values, "comment"),
    )
    item = await Item.objects().get(Item.id == item_id)
    if item is None:
        raise NotFound(f"item {item_id}")
    try:
        if problems:
            raise InvalidInput(problems)
        await changes.set_item_status(
            item.customer,
            item_id,
            data,
            changes.staff_actor(staff(request)),
            await customer_today(item.customer),
        )
    except InvalidInput as exc:
        context = await _item_context(request, item_id)
        context.update(values=values, errors=errors_of(exc))
        return await render(request, "backoffice/items/item.html", status_code=422, **context)
    return done(
        request,
        account_url(item.customer, f"item-{item_id}"),
        N_("%(number)s: status set to %(status)s."),
        number=item.number,
        status=tr(request)(label("item_status", data.status)).lower(),
    )


# ------------------------------------------------------------------ portal links


@post("/customers/{customer_id:int}/portal-links", name="bo:link-issue", opt=roles(WORKERS))
async def link_issue(
    request: Request, customer_id: FromPath[int], settings: SettingsDep
) -> Template | Redirect:
    values = await form_values(request)
    try:
        issued = await changes.issue_portal_link(
            customer_id,
            optional_int(values, "contact"),
            changes.staff_actor(staff(request)),
            secret_key=settings.secret_key,
            base_url=settings.base_url,
            days=settings.portal_link_days,
        )
    except InvalidInput as exc:
        return await _account_with_errors(request, customer_id, "link", values, exc)
    customer = await Customer.objects().get(Customer.id == customer_id)
    contact = (
        await Contact.objects().get(Contact.id == issued.link.contact)
        if issued.link.contact
        else None
    )
    page = await render(
        request,
        "backoffice/customers/link_issued.html",
        page_title=N_("Portal link issued"),
        customer=customer,
        contact=contact,
        url=issued.url,
        expires_at=issued.link.expires_at,
    )
    # The token is shown once: keep it out of caches and the browser's back-forward store.
    page.headers["cache-control"] = "no-store"
    page.headers["referrer-policy"] = "no-referrer"
    return page


@post(
    "/customers/{customer_id:int}/portal-links/{link_id:int}/revoke",
    name="bo:link-revoke",
    opt=roles(WORKERS),
)
async def link_revoke(
    request: Request, customer_id: FromPath[int], link_id: FromPath[int]
) -> Redirect:
    try:
        await changes.revoke_portal_link(customer_id, link_id, changes.staff_actor(staff(request)))
    except Conflict as exc:
        return done(request, account_url(customer_id, "links"), str(exc), "warning")
    return done(request, account_url(customer_id, "links"), N_("Portal link revoked."))


ROUTES = [
    customer_list,
    account,
    assign,
    profile_accept,
    block,
    unblock,
    contact_new,
    contact_add,
    contact_edit,
    contact_save,
    contact_reminders,
    item_page,
    item_status,
    link_issue,
    link_revoke,
    account_call,
    account_note,
    account_email,
    account_email_preview,
    escalation_reset,
    escalation_step,
]
