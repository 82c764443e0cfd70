"""Cash application, a finance tab: money not applied yet (payment remainders, open credit
notes) applied to a customer's invoices, allocations taken back with a reason, small
remainders written off under the company's tolerance. Services: receivables.ledger.cash_application.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.finance import BASE, _page
from backoffice.pages import done, staff, tr
from backoffice.security import FINANCE, roles
from receivables.errors import AllocationRefused, InvalidInput, NotFound
from receivables.i18n import N_
from receivables.ledger import cash_application as cash
from receivables.ledger.account_changes import staff_actor
from receivables.ledger.tables import Company
from receivables.money import Money

CASH = f"{BASE}/cash"
PATHS = {cash.PAYMENT: "payments", cash.CREDIT_NOTE: "credit-notes"}
SHOWN = 500
"""Rows of unapplied money on the page; a customer's own are on its account page."""


def source_url(kind: str, source_id: int) -> str:
    return f"{CASH}/{PATHS[kind]}/{source_id}"


@get("/finance/cash", name="bo:finance-cash", opt=roles(FINANCE))
async def cash_list(request: Request) -> Template:
    money = await cash.unapplied_money(limit=SHOWN + 1)
    more = len(money) > SHOWN
    money = money[:SHOWN]
    groups: dict[int, dict[str, Any]] = {}
    for m in money:
        group = groups.setdefault(
            m.customer_id,
            {"id": m.customer_id, "ref": m.customer_ref, "name": m.customer_name, "rows": []},
        )
        group["rows"].append(m)
    return await _page(
        request,
        "backoffice/finance/cash.html",
        "cash",
        page_title=N_("Cash application"),
        groups=list(groups.values()),
        more=more,
        shown=SHOWN,
        remainders=await cash.small_remainders(),
        companies=await Company.objects().order_by(Company.name),
        money_of=Money.from_minor,
        errors={},
    )


async def _apply_page(
    request: Request,
    kind: str,
    source_id: int,
    *,
    values: dict[int, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    proposal = await cash.proposal(kind, source_id)
    if values is None:
        values = {
            i.id: (str(i.proposed.amount) if i.proposed.minor else "") for i in proposal.invoices
        }
    _ = tr(request)
    return await _page(
        request,
        "backoffice/finance/cash_apply.html",
        "cash",
        page_title=_("Apply %(money)s", money=proposal.money.label),
        p=proposal,
        m=proposal.money,
        values=values,
        errors=errors or {},
        action=source_url(kind, source_id),
        status_code=status_code,
    )


@get("/finance/cash/payments/{payment_id:int}", name="bo:finance-cash-payment", opt=roles(FINANCE))
async def payment_page(request: Request, payment_id: FromPath[int]) -> Template:
    return await _apply_page(request, cash.PAYMENT, payment_id)


@get(
    "/finance/cash/credit-notes/{credit_note_id:int}",
    name="bo:finance-cash-credit-note",
    opt=roles(FINANCE),
)
async def credit_note_page(request: Request, credit_note_id: FromPath[int]) -> Template:
    return await _apply_page(request, cash.CREDIT_NOTE, credit_note_id)


async def _apply(request: Request, kind: str, source_id: int) -> Template | Redirect:
    form = await request.form()
    values: dict[int, str] = {}
    for name, value in form.items():
        if name.startswith("amount_") and name[7:].isdigit():
            values[int(name[7:])] = str(value or "")
    try:
        made = await cash.apply(kind, source_id, values, staff_actor(staff(request)))
    except (InvalidInput, AllocationRefused) as exc:
        # AllocationRefused: another change took the money or an invoice in the meantime.
        problems = exc.problems if isinstance(exc, InvalidInput) else []
        return await _apply_page(
            request,
            kind,
            source_id,
            values=values,
            errors={p.field: p.message for p in problems} or {"total": str(exc)},
            status_code=422,
        )
    money = await cash.source(kind, source_id)
    _ = tr(request)
    message = _.ngettext(
        "%(money)s applied to %(num)d invoice.",
        "%(money)s applied to %(num)d invoices.",
        len(made),
        money=money.label,
    )
    if money.left.minor:
        message += " " + _("%(amount)s is left to apply.", amount=money.left.format())
    return done(request, source_url(kind, source_id), message)


@post("/finance/cash/payments/{payment_id:int}", name="bo:finance-cash-apply", opt=roles(FINANCE))
async def apply_payment(request: Request, payment_id: FromPath[int]) -> Template | Redirect:
    return await _apply(request, cash.PAYMENT, payment_id)


@post(
    "/finance/cash/credit-notes/{credit_note_id:int}",
    name="bo:finance-cash-apply-credit-note",
    opt=roles(FINANCE),
)
async def apply_credit_note(request: Request, credit_note_id: FromPath[int]) -> Template | Redirect:
    return await _apply(request, cash.CREDIT_NOTE, credit_note_id)


def _back(form: Any) -> str:
    """Where to return: a cash application page or a customer's account page, else the list."""
    back = str(form.get("back") or "")
    ours = back == CASH or back.startswith((f"{CASH}/", "/backoffice/customers/"))
    return back if ours and "//" not in back and "\\" not in back else CASH


@post(
    "/finance/cash/allocations/{allocation_id:int}/reverse",
    name="bo:finance-cash-reverse",
    opt=roles(FINANCE),
)
async def take_back(request: Request, allocation_id: FromPath[int]) -> Redirect:
    form = await request.form()
    back = _back(form)
    try:
        await cash.take_back(
            allocation_id, str(form.get("reason") or ""), staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return done(request, back, str(exc), "error")
    except NotFound:
        return done(request, back, N_("That allocation was already taken back."), "info")
    return done(request, back, N_("Allocation taken back; the invoice is open again."))


@post("/finance/cash/write-off/{item_id:int}", name="bo:finance-cash-write-off", opt=roles(FINANCE))
async def write_off(request: Request, item_id: FromPath[int]) -> Redirect:
    form = await request.form()
    try:
        await cash.write_off(item_id, str(form.get("reason") or ""), staff_actor(staff(request)))
    except (InvalidInput, NotFound) as exc:
        return done(request, _back(form), str(exc), "error")
    return done(request, _back(form), N_("Remainder written off; the invoice is closed."))


@post(
    "/finance/cash/tolerance/{company_id:int}",
    name="bo:finance-cash-tolerance",
    opt=roles(FINANCE),
)
async def set_tolerance(request: Request, company_id: FromPath[int]) -> Redirect:
    form = await request.form()
    try:
        company = await cash.set_tolerance(
            company_id, str(form.get("tolerance") or ""), staff_actor(staff(request))
        )
    except InvalidInput as exc:
        return done(request, CASH, N_("Write-off tolerance not changed: %(why)s"), "error", why=exc)
    tolerance = Money.from_minor(company.writeoff_tolerance_minor, company.currency)
    return done(
        request,
        CASH,
        N_("Write-off tolerance of %(company)s: %(amount)s."),
        company=company.name,
        amount=tolerance.format(),
    )


ROUTES = [
    cash_list,
    payment_page,
    credit_note_page,
    apply_payment,
    apply_credit_note,
    take_back,
    write_off,
    set_tolerance,
]
