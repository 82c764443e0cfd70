"""Penalty policy, reference rates and dunning rules, for admins: a preset (EU, France, UK)
per company, the dated central bank rates the law refers to, and the company's dunning
rules (minimum chased, time zone, run hour and days, formal notice deadline). Everyone may
read them. And, on a customer's account, its penalty claims: waived or invoiced by a
collector."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.forms import checked, errors_of, form_values, optional_date, text
from backoffice.pages import done, fragment, render, staff
from backoffice.scenarios import company_for
from backoffice.security import ADMINS, ALL_STAFF, PREFIX, WORKERS, roles
from receivables.clock import customer_today
from receivables.dunning import reference_rates as service
from receivables.dunning.rules import RulesInput, rules_of, set_rules
from receivables.dunning.tables import RateSource
from receivables.errors import Conflict, FieldProblem, InvalidInput, NotFound
from receivables.i18n import N_
from receivables.ledger import penalties as claims
from receivables.ledger.account_changes import staff_actor
from receivables.ledger.statement import build_statement
from receivables.money import Money

PENALTIES = f"{PREFIX}/penalties"


async def _page(
    request: Request,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    rules: RulesInput | None = None,
    rules_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    company, companies = await company_for(request)
    tables = {source: await service.load_table(source) for source in RateSource}
    rows = {
        source: await service.ReferenceRate.select()
        .where(service.ReferenceRate.source == source.value)
        .order_by(service.ReferenceRate.effective_from, ascending=False)
        for source in RateSource
    }
    return await render(
        request,
        "backoffice/dunning/penalties.html",
        status_code=status_code,
        page_title=N_("Penalties"),
        company=company,
        companies=companies,
        presets=list(service.PRESETS.values()),
        source_names=service.SOURCE_NAMES,
        tables=tables,
        rows=rows,
        current_source=service.source_for(company.penalty_policy),
        compensation=Money.from_minor(int(company.compensation_minor or 0), company.currency)
        if company.compensation_minor
        else None,
        values=values or {"source": "ecb"},
        errors=errors or {},
        rules=rules or rules_of(company),
        rules_errors=rules_errors or {},
    )


@get("/penalties", name="bo:penalties", opt=roles(ALL_STAFF))
async def penalties_page(request: Request) -> Template:
    return await _page(request)


@post("/penalties/policy", name="bo:penalty-policy", opt=roles(ADMINS))
async def penalty_policy(request: Request) -> Redirect:
    values = await form_values(request)
    company, _ = await company_for(request)
    try:
        updated = await service.apply_preset(
            company.id, text(values, "preset"), staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return done(request, PENALTIES, str(exc), "warning")
    return done(
        request,
        f"{PENALTIES}?company={company.id}",
        N_("%(name)s now charges penalties under the %(policy)s rules."),
        name=updated.name,
        policy=updated.penalty_policy.upper(),
    )


@post("/penalties/rates", name="bo:rate-set", opt=roles(ADMINS))
async def rate_set(request: Request) -> Template | Redirect:
    values = await form_values(request)
    company, _ = await company_for(request)
    problems: list[FieldProblem] = []
    effective = optional_date(values, "effective_from", problems)
    try:
        if problems:
            raise InvalidInput(problems)
        await service.set_rate(
            text(values, "source"),
            effective,
            text(values, "rate"),
            staff_actor(staff(request)),
            company.id,
        )
    except InvalidInput as exc:
        return await _page(request, values=values, errors=errors_of(exc), status_code=422)
    return done(request, f"{PENALTIES}?company={company.id}", N_("Rate saved."))


@post("/penalties/rules", name="bo:dunning-rules", opt=roles(ADMINS))
async def dunning_rules(request: Request) -> Template | Redirect:
    values = await form_values(request)
    company, _ = await company_for(request)
    form = RulesInput(
        min_amount=text(values, "min_amount"),
        timezone=text(values, "timezone"),
        hour=text(values, "hour"),
        business_days=bool(values.get("business_days")),
        notice_days=text(values, "notice_days"),
    )
    try:
        await set_rules(company.id, form, staff_actor(staff(request)))
    except InvalidInput as exc:
        return await _page(request, rules=form, rules_errors=errors_of(exc), status_code=422)
    return done(request, f"{PENALTIES}?company={company.id}#rules", N_("Dunning rules saved."))


@post("/penalties/invoicing", name="bo:penalty-invoicing", opt=roles(ADMINS))
async def penalty_invoicing(request: Request) -> Redirect:
    values = await form_values(request)
    company, _ = await company_for(request)
    invoiced = checked(values, "invoiced")
    await service.set_penalties_invoiced(company.id, invoiced, staff_actor(staff(request)))
    return done(
        request,
        f"{PENALTIES}?company={company.id}",
        N_("Collectors can now invoice penalties from an account.")
        if invoiced
        else "Penalties are shown, not invoiced.",
    )


# ------------------------------------------------------------------ one account's claims


def _account(customer_id: int) -> str:
    return f"{PREFIX}/customers/{customer_id}#penalties"


@get("/customers/{customer_id:int}/penalties", name="bo:account-penalties", opt=roles(ALL_STAFF))
async def account_penalties(request: Request, customer_id: FromPath[int]) -> Template:
    """The account page's penalty card (loaded by htmx): every claim, waived ones included."""
    try:
        statement = await build_statement(customer_id, await customer_today(customer_id))
    except NotFound:
        return fragment(request, "backoffice/customers/_penalties.html", penalties=None)
    company = statement.company
    return fragment(
        request,
        "backoffice/customers/_penalties.html",
        customer_id=customer_id,
        company=company,
        statement=statement,
        penalties=await service.statement_penalties(statement),
        rate=service.SOURCE_NAMES.get(service.source_for(company.penalty_policy)),  # type: ignore[arg-type]
    )


@post(
    "/customers/{customer_id:int}/penalties/{item_id:int}/waive",
    name="bo:penalty-waive",
    opt=roles(WORKERS),
)
async def penalty_waive(
    request: Request, customer_id: FromPath[int], item_id: FromPath[int]
) -> Redirect:
    values = await form_values(request)
    statement = await build_statement(customer_id, await customer_today(customer_id))
    try:
        line = await claims.waive_claim(
            customer_id,
            item_id,
            text(values, "reason"),
            statement.on,
            await service.terms_for(statement.company),
            staff_actor(staff(request)),
        )
    except (InvalidInput, Conflict) as exc:
        return done(request, _account(customer_id), N_("Not waived: %(why)s"), "warning", why=exc)
    return done(
        request,
        _account(customer_id),
        N_("Penalty claim on %(number)s waived."),
        number=line.number,
    )


@post(
    "/customers/{customer_id:int}/penalties/invoice",
    name="bo:penalty-invoice",
    opt=roles(WORKERS),
)
async def penalty_invoice(request: Request, customer_id: FromPath[int]) -> Redirect:
    statement = await build_statement(customer_id, await customer_today(customer_id))
    try:
        items = await claims.invoice_penalties(
            customer_id,
            statement.on,
            await service.terms_for(statement.company),
            staff_actor(staff(request)),
        )
    except Conflict as exc:
        return done(request, _account(customer_id), N_("Not invoiced: %(why)s"), "warning", why=exc)
    numbers = ", ".join(i.number for i in items)
    return done(
        request, _account(customer_id), N_("Penalties invoiced: %(numbers)s."), numbers=numbers
    )


@post("/penalties/rates/{rate_id:int}/delete", name="bo:rate-delete", opt=roles(ADMINS))
async def rate_delete(request: Request, rate_id: FromPath[int]) -> Redirect:
    company, _ = await company_for(request)
    await service.delete_rate(rate_id, staff_actor(staff(request)), company.id)
    return done(request, f"{PENALTIES}?company={company.id}", N_("Rate removed."))


ROUTES = [
    penalties_page,
    penalty_policy,
    penalty_invoicing,
    rate_set,
    rate_delete,
    dunning_rules,
    account_penalties,
    penalty_waive,
    penalty_invoice,
]
