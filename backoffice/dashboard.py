"""The dashboard page (start page of admin and finance) and its aged balance export."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_date
from babel.numbers import format_compact_currency
from litestar import Request, Response, get
from litestar.background_tasks import BackgroundTask
from litestar.params import FromQuery
from litestar.response import File, Template

from backoffice import charts
from backoffice.pages import language_context, render, staff, tr
from backoffice.security import ALL_STAFF, roles
from receivables.access.staff_accounts import active_collectors
from receivables.clock import company_today
from receivables.dunning.scenarios import LEVEL_LABELS
from receivables.i18n import N_, Translator
from receivables.insight import aged_balance
from receivables.insight.dashboard import DEFAULT_PERIOD_MONTHS, PERIODS, Dashboard, dashboard
from receivables.insight.figures import AGING_LABELS, DEFINITIONS, Scope
from receivables.insight.tables import InsightSnapshot
from receivables.ledger.statement import BUCKETS
from receivables.ledger.tables import Company
from receivables.money import Money, check_currency, exponent
from receivables.portal.tables import DISPUTE_REASONS

SHORT_AGING = {
    "not_due": N_("Not due"),
    "1-30": "1-30",
    "31-60": "31-60",
    "61-90": "61-90",
    "90+": "> 90",
}
"""Under the bars: the days past due (the table beside says it in words)."""
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def _currency(text: str) -> str | None:
    try:
        return check_currency(text) if text.strip() else None
    except ValueError:
        return None


async def _scope(company: str, collector: str, currency: str) -> tuple[Scope, date]:
    scope = Scope(
        company_id=_int(company), collector_id=_int(collector), currency=_currency(currency)
    )
    return scope, await company_today(scope.company_id)


def _axis(currency: str) -> Any:
    def fmt(minor: float) -> str:
        amount = Decimal(int(minor)).scaleb(-exponent(currency))
        return str(format_compact_currency(amount, currency, locale="en_GB", fraction_digits=1))

    return fmt


def _charts(d: Dashboard, cur: str, _: Translator, locale: str) -> dict[str, charts.Chart]:
    """The charts' words in the reader's language (`_`), their dates in `locale`."""
    fmt = _axis(cur)

    def days(value: float) -> str:
        rounded = round(value)
        return _("%(days)s d", days=rounded)

    def when(day: date, pattern: str) -> str:
        return str(format_date(day, pattern, locale=locale))

    out: dict[str, charts.Chart] = {}
    buckets = d.aging.get(cur, {})
    out["aging"] = charts.bars(
        _(
            "Aging on %(day)s, %(cur)s: open invoices by days past due",
            day=when(d.aging_on, "medium"),
            cur=cur,
        ),
        [_(SHORT_AGING[b]) for b in BUCKETS],
        [("bar-a", _("Open"), [buckets.get(b, 0) for b in BUCKETS])],
        fmt,
    )
    points = d.trend.get(cur, [])
    months = [when(p.month, "MMM yy") for p in points]
    out["overdue_trend"] = charts.lines(
        _("Overdue by month, %(cur)s", cur=cur),
        months,
        [("line-a", _("Overdue"), [p.overdue_minor for p in points])],
        fmt,
    )
    out["dso_trend"] = charts.lines(
        _("DSO (count-back) by month, %(cur)s", cur=cur),
        months,
        [("line-b", "DSO", [float(p.dso) if p.dso is not None else None for p in points])],
        days,
    )
    past = d.versus.get(cur, [])
    ahead = d.nightly.forecasts.get(cur)
    weeks = [when(w.week_start, "d MMM") for w in past]
    forecast: list[float | None] = [w.forecast_minor for w in past]
    actual: list[float | None] = [w.actual_minor for w in past]
    if ahead:
        weeks += [when(start, "d MMM") for start, _m in ahead.weeks]
        forecast += [m for _w, m in ahead.weeks]
        actual += [None] * len(ahead.weeks)
    out["forecast"] = charts.bars(
        _("Cash: forecast and collected by week, %(cur)s", cur=cur),
        weeks,
        [("bar-b", _("Forecast"), forecast), ("bar-a", _("Collected"), actual)],
        fmt,
        width=2 * charts.WIDTH,
    )
    disputes = d.disputes.get(cur)
    reasons = list(disputes.by_reason.items()) if disputes else []
    out["disputes"] = charts.hbars(
        _("Disputes by reason, %(cur)s", cur=cur),
        [f"{_(DISPUTE_REASONS.get(r, r))} ({n})" for r, (n, _n) in reasons],
        [m for _r, (_n, m) in reasons],
        fmt,
    )
    return out


async def _options() -> dict[str, Any]:
    companies = await Company.select(Company.id, Company.name).order_by(Company.name)
    kept = await InsightSnapshot.select(InsightSnapshot.currency).distinct()
    currencies = {r["currency"] for r in kept} | {
        r["currency"] for r in await Company.select(Company.currency)
    }
    return {
        "companies": companies,
        "collectors": await active_collectors(),
        "currency_options": sorted(currencies),
    }


@get("/dashboard", name="bo:dashboard", opt=roles(ALL_STAFF))
async def dashboard_page(
    request: Request,
    company: FromQuery[str] = "",
    collector: FromQuery[str] = "",
    currency: FromQuery[str] = "",
    on: FromQuery[str] = "",
    period: FromQuery[str] = "",
) -> Template:
    scope, today = await _scope(company, collector, currency)
    months = _int(period) or DEFAULT_PERIOD_MONTHS
    if months not in PERIODS:
        months = DEFAULT_PERIOD_MONTHS
    aging_on = _day(on)
    if aging_on is not None and aging_on > today:
        aging_on = today
    d = await dashboard(scope, today, aging_on=aging_on, period_months=months)
    currencies = [scope.currency] if scope.currency else d.currencies
    filters = {
        "company": "" if scope.company_id is None else str(scope.company_id),
        "collector": "" if scope.collector_id is None else str(scope.collector_id),
        "currency": scope.currency or "",
    }
    export_query = urlencode({**filters, "on": d.aging_on.isoformat()})
    return await render(
        request,
        "backoffice/dashboard/page.html",
        page_title=N_("Dashboard"),
        d=d,
        currencies=currencies,
        charts={
            cur: _charts(d, cur, tr(request), language_context(staff(request))["locale"])
            for cur in currencies
        },
        filters=filters,
        period=months,
        periods=PERIODS,
        aging_on=d.aging_on,
        export_query=export_query,
        definitions=DEFINITIONS,
        buckets=BUCKETS,
        aging_labels=AGING_LABELS,
        level_labels=LEVEL_LABELS,
        dispute_reasons=DISPUTE_REASONS,
        Money=Money,
        **await _options(),
    )


@get("/dashboard/aged-balance", name="bo:aged-balance", opt=roles(ALL_STAFF))
async def aged_balance_export(
    company: FromQuery[str] = "",
    collector: FromQuery[str] = "",
    currency: FromQuery[str] = "",
    on: FromQuery[str] = "",
    format: FromQuery[str] = "xlsx",
) -> Response | File:
    scope, today = await _scope(company, collector, currency)
    day = min(_day(on) or today, today)
    kind = "csv" if format == "csv" else "xlsx"
    path = await aged_balance.export_file(scope, day, today, kind)
    return File(
        path=path,
        filename=f"aged-balance-{day}.{kind}",
        media_type="text/csv; charset=utf-8" if kind == "csv" else XLSX,
        content_disposition_type="attachment",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


ROUTES = [dashboard_page, aged_balance_export]
