"""Scenarios for admins: the list (one default per payer profile), a scenario and its steps,
copies, and which customers follow a scenario of their own. Everyone may read them."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.forms import checked, errors_of, form_values, text
from backoffice.pages import done, render, staff, tr
from backoffice.security import ADMINS, ALL_STAFF, PREFIX, roles
from receivables.dunning import scenarios as service
from receivables.dunning.defaults import install_defaults
from receivables.dunning.scenarios import CHANNEL_LABELS, LEVEL_LABELS, MODE_LABELS, StepInput
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.i18n import N_
from receivables.ledger.account_changes import staff_actor
from receivables.ledger.tables import Company

SCENARIOS = f"{PREFIX}/scenarios"
LABELS = {"level": LEVEL_LABELS, "channel": CHANNEL_LABELS, "mode": MODE_LABELS}


async def company_for(request: Request) -> tuple[Company, list[dict[str, Any]]]:
    """The company the page is about (?company=ID, else the first) and all of them."""
    companies = await Company.select(Company.id, Company.name, Company.code).order_by(Company.id)
    if not companies:
        raise NotFound("no company yet: import one first")
    raw = str(request.query_params.get("company", ""))
    chosen = next((c for c in companies if str(c["id"]) == raw), companies[0])
    company = await Company.objects().get(Company.id == chosen["id"])
    assert company is not None
    return company, companies


def scenario_url(scenario_id: int, anchor: str = "") -> str:
    return f"{SCENARIOS}/{scenario_id}" + (f"#{anchor}" if anchor else "")


@get("/scenarios", name="bo:scenarios", opt=roles(ALL_STAFF))
async def scenario_list(request: Request) -> Template:
    company, companies = await company_for(request)
    return await render(
        request,
        "backoffice/dunning/scenarios.html",
        page_title=N_("Scenarios"),
        company=company,
        companies=companies,
        scenarios=await service.list_scenarios(company.id),
        labels=LABELS,
        values={},
        errors={},
    )


@post("/scenarios", name="bo:scenario-create", opt=roles(ADMINS))
async def scenario_create(request: Request) -> Template | Redirect:
    values = await form_values(request)
    company, companies = await company_for(request)
    try:
        scenario = await service.create_scenario(
            company.id,
            text(values, "name"),
            str(values.get("description", "")),
            staff_actor(staff(request)),
            min_interval_days=text(values, "min_interval_days"),
        )
    except InvalidInput as exc:
        return await render(
            request,
            "backoffice/dunning/scenarios.html",
            status_code=422,
            page_title=N_("Scenarios"),
            company=company,
            companies=companies,
            scenarios=await service.list_scenarios(company.id),
            labels=LABELS,
            values=values,
            errors=errors_of(exc),
        )
    return done(request, scenario_url(scenario.id), N_("Scenario created: add its steps."))


@post("/scenarios/defaults", name="bo:scenario-defaults", opt=roles(ADMINS))
async def scenario_defaults(request: Request) -> Redirect:
    company, _ = await company_for(request)
    scenarios, templates = await install_defaults(company.id, staff_actor(staff(request)))
    return done(
        request,
        f"{SCENARIOS}?company={company.id}",
        f"Installed {scenarios} default scenario{'s' if scenarios != 1 else ''} and "
        f"{templates} template{'s' if templates != 1 else ''}."
        if scenarios or templates
        else "Every default scenario and template is already there.",
    )


async def _scenario_page(
    request: Request,
    scenario_id: int,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    form: str = "",
    status_code: int = 200,
) -> Template:
    detail = await service.scenario_detail(scenario_id)
    _ = tr(request)
    return await render(
        request,
        "backoffice/dunning/scenario.html",
        status_code=status_code,
        page_title=detail.scenario.name,
        detail=detail,
        scenario=detail.scenario,
        labels=LABELS,
        levels=[(code, _(name)) for code, name in LEVEL_LABELS.items()],
        channels=[(code, _(name)) for code, name in CHANNEL_LABELS.items()],
        modes=[(code, _(name)) for code, name in MODE_LABELS.items()],
        templates=[("", "—")]
        + [(code, f"{name} ({channel})") for code, name, channel in detail.template_codes],
        values=values or {},
        errors=errors or {},
        form=form,
    )


@get("/scenarios/{scenario_id:int}", name="bo:scenario", opt=roles(ALL_STAFF))
async def scenario_page(request: Request, scenario_id: FromPath[int]) -> Template:
    return await _scenario_page(request, scenario_id)


@post("/scenarios/{scenario_id:int}", name="bo:scenario-rename", opt=roles(ADMINS))
async def scenario_rename(request: Request, scenario_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await service.rename_scenario(
            scenario_id,
            text(values, "name"),
            str(values.get("description", "")),
            staff_actor(staff(request)),
            min_interval_days=text(values, "min_interval_days"),
        )
    except InvalidInput as exc:
        return await _scenario_page(
            request,
            scenario_id,
            values=values,
            errors=errors_of(exc),
            form="rename",
            status_code=422,
        )
    return done(request, scenario_url(scenario_id), N_("Scenario saved."))


@post("/scenarios/{scenario_id:int}/copy", name="bo:scenario-copy", opt=roles(ADMINS))
async def scenario_copy(request: Request, scenario_id: FromPath[int]) -> Redirect:
    copy = await service.copy_scenario(scenario_id, staff_actor(staff(request)))
    return done(request, scenario_url(copy.id), N_("Copy made: rename it and adjust its steps."))


@post("/scenarios/{scenario_id:int}/delete", name="bo:scenario-delete", opt=roles(ADMINS))
async def scenario_delete(request: Request, scenario_id: FromPath[int]) -> Redirect:
    try:
        await service.delete_scenario(scenario_id, staff_actor(staff(request)))
    except Conflict as exc:
        return done(request, scenario_url(scenario_id), str(exc), "warning")
    return done(request, SCENARIOS, N_("Scenario deleted; its customers follow their profile's."))


def _step_input(values: dict[str, Any]) -> StepInput:
    return StepInput(
        name=text(values, "name"),
        level=text(values, "level"),
        offset_days=text(values, "offset_days"),
        channel=text(values, "channel"),
        mode=text(values, "mode"),
        template_code=text(values, "template_code"),
        attach_statement=checked(values, "attach_statement"),
        attach_invoices=checked(values, "attach_invoices"),
    )


@post("/scenarios/{scenario_id:int}/steps", name="bo:step-add", opt=roles(ADMINS))
async def step_add(request: Request, scenario_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    try:
        await service.save_step(scenario_id, None, _step_input(values), staff_actor(staff(request)))
    except InvalidInput as exc:
        return await _scenario_page(
            request, scenario_id, values=values, errors=errors_of(exc), form="add", status_code=422
        )
    return done(request, scenario_url(scenario_id, "steps"), N_("Step added."))


@post("/scenarios/{scenario_id:int}/steps/{step_id:int}", name="bo:step-save", opt=roles(ADMINS))
async def step_save(
    request: Request, scenario_id: FromPath[int], step_id: FromPath[int]
) -> Template | Redirect:
    values = await form_values(request)
    try:
        await service.save_step(
            scenario_id, step_id, _step_input(values), staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return await _scenario_page(
            request,
            scenario_id,
            values=values,
            errors=errors_of(exc),
            form=f"step-{step_id}",
            status_code=422,
        )
    return done(request, scenario_url(scenario_id, "steps"), N_("Step saved."))


@post(
    "/scenarios/{scenario_id:int}/steps/{step_id:int}/delete",
    name="bo:step-delete",
    opt=roles(ADMINS),
)
async def step_delete(
    request: Request, scenario_id: FromPath[int], step_id: FromPath[int]
) -> Redirect:
    await service.delete_step(scenario_id, step_id, staff_actor(staff(request)))
    return done(request, scenario_url(scenario_id, "steps"), N_("Step removed."))


@post("/scenarios/{scenario_id:int}/customers", name="bo:scenario-customers", opt=roles(ADMINS))
async def scenario_customers(request: Request, scenario_id: FromPath[int]) -> Template | Redirect:
    values = await form_values(request)
    detail = await service.scenario_detail(scenario_id)
    remove = text(values, "remove") == "1"
    try:
        customer = await service.assign_customer(
            detail.scenario.company,
            text(values, "customer_ref"),
            None if remove else scenario_id,
            staff_actor(staff(request)),
        )
    except InvalidInput as exc:
        return await _scenario_page(
            request,
            scenario_id,
            values=values,
            errors=errors_of(exc),
            form="customers",
            status_code=422,
        )
    message = (
        N_("%(name)s follows its payer profile's scenario again.")
        if remove
        else N_("%(name)s now follows this scenario.")
    )
    return done(request, scenario_url(scenario_id, "customers"), message, name=customer.name)


ROUTES = [
    scenario_list,
    scenario_create,
    scenario_defaults,
    scenario_page,
    scenario_rename,
    scenario_copy,
    scenario_delete,
    step_add,
    step_save,
    step_delete,
    scenario_customers,
]
