"""Message templates for admins: the list by code and language, the editor (with the hashtags
listed and a preview on a real customer), new templates and new languages."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.agenda import LANGUAGE_NAMES, framed, framed_problems
from backoffice.forms import errors_of, form_values, text
from backoffice.pages import done, render, staff
from backoffice.scenarios import company_for
from backoffice.security import ADMINS, ALL_STAFF, PREFIX, roles
from receivables.clock import company_today
from receivables.dunning import message_templates as service
from receivables.dunning.hashtags import HASHTAGS
from receivables.errors import InvalidInput
from receivables.i18n import N_
from receivables.ledger.account_changes import staff_actor
from receivables.portal.i18n import LANGUAGES
from receivables.settings import Settings
from web.deps import SettingsDep

TEMPLATES = f"{PREFIX}/templates"


def template_url(template_id: int) -> str:
    return f"{TEMPLATES}/{template_id}"


@get("/templates", name="bo:templates", opt=roles(ALL_STAFF))
async def template_list(request: Request) -> Template:
    company, companies = await company_for(request)
    return await render(
        request,
        "backoffice/dunning/templates.html",
        page_title=N_("Templates"),
        company=company,
        companies=companies,
        families=await service.list_templates(company.id),
        highlight=str(request.query_params.get("code", "")),
        language_names=LANGUAGE_NAMES,
        values={"channel": "email", "language": "en"},
        errors={},
    )


@post("/templates", name="bo:template-create", opt=roles(ADMINS))
async def template_create(request: Request) -> Template | Redirect:
    values = await form_values(request)
    company, companies = await company_for(request)
    try:
        template = await service.create_template(
            company.id,
            code=text(values, "code"),
            channel=text(values, "channel"),
            name=text(values, "name"),
            language=text(values, "language"),
            actor=staff_actor(staff(request)),
        )
    except InvalidInput as exc:
        return await render(
            request,
            "backoffice/dunning/templates.html",
            status_code=422,
            page_title=N_("Templates"),
            company=company,
            companies=companies,
            families=await service.list_templates(company.id),
            highlight="",
            language_names=LANGUAGE_NAMES,
            values=values,
            errors=errors_of(exc),
        )
    return done(request, template_url(template.id), N_("Template created: write its words."))


async def _editor(
    request: Request,
    template_id: int,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    template = await service.get_template(template_id)
    siblings = [
        f for f in await service.list_templates(template.company) if f.code == template.code
    ]
    customers = await service.preview_customers(template.company, await company_today())
    shown = {"name": template.name, "subject": template.subject, "body": template.body}
    shown.update(values or {})
    return await render(
        request,
        "backoffice/dunning/template.html",
        status_code=status_code,
        page_title=f"{template.name} ({template.language})",
        message_template=template,
        variants=siblings[0].variants if siblings else [template],
        missing_languages=[
            (lang, LANGUAGE_NAMES.get(lang, lang))
            for lang in LANGUAGES
            if not siblings or lang not in siblings[0].languages
        ],
        language_names=LANGUAGE_NAMES,
        hashtags=[h for h in HASHTAGS.values() if template.channel in h.channels],
        customers=[(c["id"], f"{c['name']} ({c['ref']})") for c in customers],
        preview_customer=customers[0]["id"] if customers else None,
        values=shown,
        errors=errors or {},
    )


@get("/templates/{template_id:int}", name="bo:template", opt=roles(ALL_STAFF))
async def template_page(request: Request, template_id: FromPath[int]) -> Template:
    return await _editor(request, template_id)


@post("/templates/{template_id:int}", name="bo:template-save", opt=roles(ADMINS))
async def template_save(request: Request, template_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await service.save_template(
            template_id,
            name=text(values, "name"),
            subject=str(values.get("subject", "")),
            body=str(values.get("body", "")),
            actor=staff_actor(staff(request)),
        )
    except InvalidInput as exc:
        return await _editor(
            request, template_id, values=values, errors=errors_of(exc), status_code=422
        )
    return done(request, template_url(template_id), N_("Template saved."))


async def _preview(
    settings: Settings, template_id: int, subject: str, body: str, customer: str
) -> Response:
    template = await service.get_template(template_id)
    if not customer.isdigit():
        return framed('<!doctype html><meta charset="utf-8"><p>No customer to preview with.</p>')
    try:
        preview = await service.preview_template(
            template,
            subject,
            body,
            int(customer),
            await company_today(),
            settings.base_url,
        )
    except InvalidInput as exc:
        return framed_problems(exc.problems)
    return framed(preview.html)


@get(
    "/templates/{template_id:int}/preview.html",
    name="bo:template-preview-saved",
    opt=roles(ALL_STAFF),
)
async def template_preview_saved(
    request: Request, template_id: FromPath[int], settings: SettingsDep
) -> Response:
    """The saved words filled from a customer (?customer=ID) — reading, nothing issued."""
    template = await service.get_template(template_id)
    customer = str(request.query_params.get("customer", ""))
    return await _preview(settings, template_id, template.subject, template.body, customer)


@post("/templates/{template_id:int}/preview", name="bo:template-preview", opt=roles(ADMINS))
async def template_preview(
    request: Request, template_id: FromPath[int], settings: SettingsDep
) -> Response:
    """The words as typed (unsaved), filled from the chosen customer."""
    values = await form_values(request)
    return await _preview(
        settings,
        template_id,
        str(values.get("subject", "")),
        str(values.get("body", "")),
        text(values, "customer"),
    )


@post("/templates/{template_id:int}/languages", name="bo:template-language", opt=roles(ADMINS))
async def template_language(request: Request, template_id: FromPath[int]) -> Redirect:
    values = await form_values(request)
    try:
        copy = await service.add_language(
            template_id, text(values, "language"), staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return done(request, template_url(template_id), str(exc), "warning")
    return done(request, template_url(copy.id), N_("New language added: translate the words."))


ROUTES = [
    template_list,
    template_create,
    template_page,
    template_save,
    template_preview_saved,
    template_preview,
    template_language,
]
