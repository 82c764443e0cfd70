"""Finance pages: online payments (fees, payouts, allocations), exceptions to act on, payouts and
their balance transactions, bank statements to import and confirm, and the accounting export.

The existing Payments page lists every payment received; these pages are the Stripe and bank
reconciliation side, under /backoffice/finance.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery
from litestar.response import File, Redirect, Template

from backoffice.pages import done, render, staff, tr
from backoffice.security import FINANCE, roles
from receivables.clock import company_today
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.i18n import N_
from receivables.ledger.account_changes import staff_actor
from receivables.ledger.tables import Company
from receivables.money import AmountFormat
from receivables.payments import bank_reconciliation, flags, reports
from receivables.payments.tables import BankLine, OnlinePayment

BASE = "/backoffice/finance"
TABS = (
    ("payments", N_("Online payments"), f"{BASE}"),
    ("exceptions", N_("Exceptions"), f"{BASE}/exceptions"),
    ("attempts", N_("Stuck attempts"), f"{BASE}/attempts"),
    ("cash", N_("Cash application"), f"{BASE}/cash"),
    ("payouts", N_("Payouts"), f"{BASE}/payouts"),
    ("bank", N_("Bank statements"), f"{BASE}/bank"),
    ("export", N_("Export"), f"{BASE}/export"),
)
STATUSES = [s.value for s in OnlinePayment.Status if s.value != "started"]


async def _page(request: Request, template: str, tab: str, **context: Any) -> Template:
    return await render(
        request,
        template,
        tabs=TABS,
        tab=tab,
        open_exceptions=await reports.open_exception_count(),
        **context,
    )


def _date(text: str | None, default: date) -> date:
    try:
        return date.fromisoformat(text) if text else default
    except ValueError:
        return default


# ------------------------------------------------------------------ online payments


@get("/finance", name="bo:finance", opt=roles(FINANCE))
async def online_payments(
    request: Request, status: FromQuery[str] = "", before: FromQuery[int | None] = None
) -> Template:
    status = status if status in STATUSES else ""
    rows, older = await reports.online_payments(status=status, before=before)
    return await _page(
        request,
        "backoffice/finance/payments.html",
        "payments",
        page_title=N_("Online payments"),
        rows=rows,
        status=status,
        statuses=STATUSES,
        older=older,
        first_page=before is None,
    )


@get("/finance/payments/{online_payment_id:int}", name="bo:finance-payment", opt=roles(FINANCE))
async def online_payment(request: Request, online_payment_id: FromPath[int]) -> Template:
    detail = await reports.online_payment(online_payment_id)
    _ = tr(request)
    return await _page(
        request,
        "backoffice/finance/payment.html",
        "payments",
        page_title=_("Online payment %(id)s", id=detail.row.intent_id or detail.row.key),
        detail=detail,
        p=detail.row,
    )


# ------------------------------------------------------------------ exceptions


@get("/finance/exceptions", name="bo:finance-exceptions", opt=roles(FINANCE))
async def exception_list(request: Request, resolved: FromQuery[str] = "") -> Template:
    return await _page(
        request,
        "backoffice/finance/exceptions.html",
        "exceptions",
        page_title=N_("Exceptions"),
        rows=await reports.exceptions(resolved=resolved == "1"),
        resolved=resolved == "1",
    )


@post(
    "/finance/exceptions/{exception_id:int}/resolve",
    name="bo:finance-exception-resolve",
    opt=roles(FINANCE),
)
async def exception_resolve(request: Request, exception_id: FromPath[int]) -> Redirect:
    form = await request.form()
    note = str(form.get("note") or "").strip()
    if not note:
        return done(
            request, f"{BASE}/exceptions", N_("Say what was done before closing it."), "error"
        )
    try:
        await flags.resolve(exception_id, actor=staff_actor(staff(request)), note=note)
    except NotFound:
        return done(
            request, f"{BASE}/exceptions", N_("That exception was already resolved."), "info"
        )
    return done(request, f"{BASE}/exceptions", N_("Exception resolved."))


# ------------------------------------------------------------------ payouts


@get("/finance/payouts", name="bo:finance-payouts", opt=roles(FINANCE))
async def payout_list(request: Request) -> Template:
    return await _page(
        request,
        "backoffice/finance/payouts.html",
        "payouts",
        page_title=N_("Payouts"),
        rows=await reports.payouts(),
    )


@get("/finance/payouts/{payout_id:int}", name="bo:finance-payout", opt=roles(FINANCE))
async def payout_page(request: Request, payout_id: FromPath[int]) -> Template:
    row, transactions = await reports.payout(payout_id)
    _ = tr(request)
    return await _page(
        request,
        "backoffice/finance/payout.html",
        "payouts",
        page_title=_("Payout %(id)s", id=row.payout_id),
        payout=row,
        transactions=transactions,
    )


# ------------------------------------------------------------------ export


@get("/finance/export", name="bo:finance-export", opt=roles(FINANCE))
async def export(
    request: Request,
    format: FromQuery[str] = "",
    date_from: FromQuery[str] = "",
    date_to: FromQuery[str] = "",
    sheet: FromQuery[str] = "payments",
) -> Response | File:
    if sheet == "allocations" and not format:
        format = "csv"  # the "Allocations (CSV)" button
    today = await company_today()
    start = _date(date_from, today.replace(day=1))
    end = _date(date_to, today)
    if format not in ("csv", "xlsx"):
        return await _page(
            request,
            "backoffice/finance/export.html",
            "export",
            page_title=N_("Export"),
            date_from=start,
            date_to=end,
        )
    if end < start:
        start, end = end, start
    sheet = sheet if sheet in reports.SHEETS and format == "csv" else "payments"
    rows = await reports.export_rows(start, end)
    name = f"{sheet}-{start}-{end}.{format}"
    media = (
        "text/csv; charset=utf-8"
        if format == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    # Written to a temporary file in a thread (openpyxl holds the GIL for seconds on 100k
    # rows), streamed from there, removed once sent.
    path = await asyncio.to_thread(reports.export_file, rows, format, sheet)
    return File(
        path=path,
        filename=name,
        media_type=media,
        content_disposition_type="attachment",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


# ------------------------------------------------------------------ bank statements


async def _companies() -> list[Company]:
    return await Company.objects().order_by(Company.name)


@get("/finance/bank", name="bo:finance-bank", opt=roles(FINANCE))
async def bank(request: Request) -> Template:
    return await _page(
        request,
        "backoffice/finance/bank.html",
        "bank",
        page_title=N_("Bank statements"),
        statements=await reports.statements(),
        review=await reports.bank_lines(status=BankLine.Status.review.value),
        companies=await _companies(),
        problems=[],
    )


@post("/finance/bank", name="bo:finance-bank-import", opt=roles(FINANCE))
async def bank_import(request: Request) -> Template | Redirect:
    form = await request.form()
    upload = form.get("file")
    companies = await _companies()
    company = next((c for c in companies if str(c.id) == str(form.get("company"))), None)
    if company is None and len(companies) == 1:
        company = companies[0]
    separator = str(form.get("decimal_separator") or "")
    amounts = AmountFormat(decimal_separator=separator) if separator in (".", ",") else None
    problems: list[str] = []
    if company is None:
        problems.append("company: choose the company whose account this is")
    if upload is None or not hasattr(upload, "read"):
        problems.append("file: choose a CSV or CAMT.053 file")
    if not problems:
        assert company is not None and upload is not None
        content = await upload.read()
        try:
            report = await bank_reconciliation.import_statement(
                company_id=company.id,
                filename=str(getattr(upload, "filename", "") or "statement"),
                content=content,
                currency=company.currency,
                actor=staff_actor(staff(request)),
                amounts=amounts,
            )
        except InvalidInput as exc:
            problems = [str(p) for p in exc.problems]
        else:
            message = (
                f"{report.credits} credit{'s' if report.credits != 1 else ''} imported: "
                f"{report.proposed} proposed, "
                f"{report.review} to review"
                + (f"; {report.duplicates} already imported" if report.duplicates else "")
                + (
                    f"; {report.debits} debit{'s' if report.debits != 1 else ''} skipped"
                    if report.debits
                    else ""
                )
                + ". Nothing is allocated until you confirm."
            )
            return done(request, f"{BASE}/bank/{report.statement_id}", message)
    return await _page(
        request,
        "backoffice/finance/bank.html",
        "bank",
        page_title=N_("Bank statements"),
        statements=await reports.statements(),
        review=await reports.bank_lines(status=BankLine.Status.review.value),
        companies=companies,
        problems=problems,
        decimal_separator=separator,
        status_code=400,
    )


@get("/finance/bank/{statement_id:int}", name="bo:finance-statement", opt=roles(FINANCE))
async def statement(request: Request, statement_id: FromPath[int]) -> Template:
    lines = await reports.bank_lines(statement_id=statement_id)
    found = [s for s in await reports.statements() if s["id"] == statement_id]
    if not found:
        raise NotFound(f"bank statement {statement_id}")
    _ = tr(request)
    return await _page(
        request,
        "backoffice/finance/statement.html",
        "bank",
        page_title=_("Bank statement %(file)s", file=found[0]["filename"]),
        statement=found[0],
        lines=lines,
        proposed=sum(1 for r in lines if r.line.status == "proposed"),
    )


@post(
    "/finance/bank/{statement_id:int}/confirm",
    name="bo:finance-statement-confirm",
    opt=roles(FINANCE),
)
async def statement_confirm(request: Request, statement_id: FromPath[int]) -> Redirect:
    count = await bank_reconciliation.confirm_proposed(
        statement_id, actor=staff_actor(staff(request))
    )
    confirmed = tr(request).ngettext(
        "%(num)d proposed line confirmed.", "%(num)d proposed lines confirmed.", count
    )
    return done(request, f"{BASE}/bank/{statement_id}", confirmed)


@get("/finance/bank/lines/{line_id:int}", name="bo:finance-line", opt=roles(FINANCE))
async def line_page(
    request: Request, line_id: FromPath[int], customer: FromQuery[str] = ""
) -> Template:
    row = await reports.bank_line(line_id)
    chosen = None
    if customer:
        chosen = await reports.customer_by_ref(row.line.company, customer.strip())
    customer_id = chosen.id if chosen else row.line.customer
    _ = tr(request)
    return await _page(
        request,
        "backoffice/finance/line.html",
        "bank",
        page_title=_("Bank line %(id)s", id=row.line.id),
        row=row,
        customer_ref=chosen.ref if chosen else row.customer_ref,
        customer_id=customer_id,
        unknown_customer=bool(customer) and chosen is None,
        candidates=await reports.candidates(row.line, customer_id),
    )


@post(
    "/finance/bank/lines/{line_id:int}/confirm", name="bo:finance-line-confirm", opt=roles(FINANCE)
)
async def line_confirm(request: Request, line_id: FromPath[int]) -> Redirect:
    form = await request.form()
    row = await reports.bank_line(line_id)
    back = f"{BASE}/bank/{row.line.statement}"
    chose = form.get("chose") == "1"
    item_ids = [int(v) for v in form.getall("item", []) if str(v).isdigit()]
    customer_id = str(form.get("customer_id") or "")
    try:
        await bank_reconciliation.confirm_line(
            line_id,
            actor=staff_actor(staff(request)),
            item_ids=item_ids if chose else None,
            customer_id=int(customer_id) if customer_id.isdigit() else None,
        )
    except (InvalidInput, Conflict) as exc:
        return done(request, f"{BASE}/bank/lines/{line_id}", str(exc), "error")
    return done(request, back, N_("Line %(id)s confirmed and allocated."), id=line_id)


@post("/finance/bank/lines/{line_id:int}/ignore", name="bo:finance-line-ignore", opt=roles(FINANCE))
async def line_ignore(request: Request, line_id: FromPath[int]) -> Redirect:
    form = await request.form()
    row = await reports.bank_line(line_id)
    try:
        await bank_reconciliation.ignore_line(
            line_id, actor=staff_actor(staff(request)), note=str(form.get("note") or "")
        )
    except Conflict as exc:
        return done(request, f"{BASE}/bank/lines/{line_id}", str(exc), "error")
    return done(
        request, f"{BASE}/bank/{row.line.statement}", N_("Line %(id)s ignored."), id=line_id
    )


ROUTES = [
    online_payments,
    online_payment,
    exception_list,
    exception_resolve,
    payout_list,
    payout_page,
    export,
    bank,
    bank_import,
    statement,
    statement_confirm,
    line_page,
    line_confirm,
    line_ignore,
]
