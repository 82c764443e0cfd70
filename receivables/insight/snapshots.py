"""The dashboard's memory: nightly snapshots, monthly trend points and kept forecasts.

After each company's daily run the worker writes that night's heavy figures (balances,
DSO, CEI, top accounts, the 13-week forecast) for the company and for all companies, so
the page reads them in one query. `rebuild` fills the last 12 month ends (and the last
weeks' forecasts) from the ledger's dates for a new installation or after an import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from receivables.clock import today_in
from receivables.db import atomic
from receivables.insight import figures as f
from receivables.insight.tables import ForecastSnapshot, InsightSnapshot
from receivables.ledger.statement import BUCKETS
from receivables.ledger.tables import Company

log = logging.getLogger("relance.insight")
TREND_MONTHS = 12
PAST_FORECAST_WEEKS = 8


def _company_is(column: Any, company_id: int | None) -> Any:
    return column.is_null() if company_id is None else column == company_id


def _scopes(company_id: int) -> list[f.Scope]:
    return [f.Scope(company_id=company_id), f.Scope()]


# ------------------------------------------------------------------ writing


def _slice(n: f.Nightly, currency: str) -> dict[str, Any]:
    data = n.to_json()
    for key in ("balances", "ratios", "top", "forecasts", "collected"):
        data[key] = {c: v for c, v in data[key].items() if c == currency}
    return data


async def write_nightly(scope: f.Scope, on: date, source: str = "run") -> f.Nightly:
    """Compute and keep the scope's figures for `on` (again: replaces that day's)."""
    nightly = await f.nightly(scope, on)
    async with atomic():
        await InsightSnapshot.delete().where(
            _company_is(InsightSnapshot.company, scope.company_id)
            & (InsightSnapshot.taken_on == on)
        )
        await ForecastSnapshot.delete().where(
            _company_is(ForecastSnapshot.company, scope.company_id)
            & (ForecastSnapshot.made_on == on)
        )
        rows = []
        for cur in nightly.currencies:
            b = nightly.balances.get(cur)
            r = nightly.ratios.get(cur)
            rows.append(
                InsightSnapshot(
                    company=scope.company_id,
                    currency=cur,
                    taken_on=on,
                    source=source,
                    open_minor=b.open_minor if b else 0,
                    overdue_minor=b.overdue_minor if b else 0,
                    dso_x10=_x10(r.dso_countback) if r else None,
                    figures=json.dumps(_slice(nightly, cur), sort_keys=True),
                )
            )
        if rows:
            await InsightSnapshot.insert(*rows)
        weeks = [
            ForecastSnapshot(
                company=scope.company_id,
                currency=cur,
                made_on=on,
                week_start=start,
                expected_minor=amount,
            )
            for cur, fc in nightly.forecasts.items()
            for start, amount in fc.weeks
        ]
        if weeks:
            await ForecastSnapshot.insert(*weeks)
    return nightly


def _x10(value: Decimal | None) -> int | None:
    return None if value is None else int(value * 10)


async def write_due(companies: list[dict[str, Any]] | None = None) -> int:
    """The nightly job: for each company whose daily run finished today and whose figures
    are not written yet, write them (and those of all companies). Returns scopes written."""
    from receivables.dunning.run import finished

    if companies is None:
        companies = await Company.select(Company.id, Company.timezone).order_by(Company.id)
    written = 0
    latest: date | None = None
    for company in companies:
        on = today_in(company["timezone"])
        if not await finished(on, company["id"]):
            continue
        done = await InsightSnapshot.exists().where(
            (InsightSnapshot.company == company["id"])
            & (InsightSnapshot.taken_on == on)
            & (InsightSnapshot.source == "run")
        )
        if done:
            continue
        await write_nightly(f.Scope(company_id=company["id"]), on)
        written += 1
        latest = max(latest or on, on)
    if latest is not None:
        await write_nightly(f.Scope(), latest)
        written += 1
        log.info("dashboard figures written for %s (%d scopes)", latest, written)
    return written


# ------------------------------------------------------------------ reading


@dataclass
class Kept:
    """The latest nightly figures of a scope, and the day they were taken."""

    taken_on: date
    nightly: f.Nightly


async def latest(scope: f.Scope, on: date) -> Kept | None:
    """The scope's last nightly figures taken on or before `on` (None: none kept, or a
    collector's scope, which is never kept)."""
    if not scope.snapshot_key:
        return None
    where = _company_is(InsightSnapshot.company, scope.company_id) & (
        InsightSnapshot.taken_on <= on
    )
    where &= InsightSnapshot.source == "run"
    if scope.currency:
        where &= InsightSnapshot.currency == scope.currency
    last = (
        await InsightSnapshot.select(InsightSnapshot.taken_on)
        .where(where)
        .order_by(InsightSnapshot.taken_on, ascending=False)
        .first()
    )
    if last is None:
        return None
    rows = await InsightSnapshot.select(InsightSnapshot.figures).where(
        where & (InsightSnapshot.taken_on == last["taken_on"])
    )
    merged: dict[str, Any] | None = None
    for row in rows:
        data = json.loads(row["figures"])
        if merged is None:
            merged = data
        else:
            for key in ("balances", "ratios", "top", "forecasts", "collected"):
                merged[key].update(data.get(key, {}))
    if merged is None:
        return None
    return Kept(taken_on=f._date(last["taken_on"]), nightly=f.Nightly.from_json(merged))


@dataclass
class TrendPoint:
    month: date
    """The month's last day (or the day of its latest snapshot, this month)."""
    overdue_minor: int
    dso: Decimal | None
    rebuilt: bool


async def trend(
    scope: f.Scope, on: date, months: int = TREND_MONTHS
) -> dict[str, list[TrendPoint]]:
    """Per currency, overdue and count-back DSO month by month: each month's latest
    nightly snapshot, else its rebuilt month-end point."""
    if not scope.snapshot_key:
        return {}
    first = f.months_before(on, months - 1).replace(day=1)
    where = _company_is(InsightSnapshot.company, scope.company_id) & (
        InsightSnapshot.taken_on >= first
    )
    where &= InsightSnapshot.taken_on <= on
    if scope.currency:
        where &= InsightSnapshot.currency == scope.currency
    rows = await InsightSnapshot.select(
        InsightSnapshot.currency,
        InsightSnapshot.taken_on,
        InsightSnapshot.source,
        InsightSnapshot.overdue_minor,
        InsightSnapshot.dso_x10,
        InsightSnapshot.id,
    ).where(where)
    best: dict[tuple[str, date], tuple[tuple[int, date, int], dict[str, Any]]] = {}
    for row in rows:
        day = f._date(row["taken_on"])
        key = (row["currency"], day.replace(day=1))
        rank = (1 if row["source"] == "run" else 0, day, row["id"])
        if key not in best or rank > best[key][0]:
            best[key] = (rank, row)
    out: dict[str, list[TrendPoint]] = {}
    for (cur, _), (_, row) in sorted(best.items()):
        dso = row["dso_x10"]
        out.setdefault(cur, []).append(
            TrendPoint(
                month=f._date(row["taken_on"]),
                overdue_minor=int(row["overdue_minor"]),
                dso=None if dso is None else Decimal(dso) / 10,
                rebuilt=row["source"] != "run",
            )
        )
    return out


@dataclass
class WeekVersus:
    week_start: date
    forecast_minor: int | None
    """What the forecast made by that Monday expected (None: no forecast kept then)."""
    actual_minor: int


async def forecast_vs_actual(
    scope: f.Scope,
    on: date,
    weeks: int = PAST_FORECAST_WEEKS,
    collected: dict[str, list[tuple[date, int]]] | None = None,
) -> dict[str, list[WeekVersus]]:
    """The last `weeks` full weeks: forecast made at the start of each against the
    payments received in it, per currency (`collected`: already counted, e.g. last night)."""
    starts = f.past_weeks(on, weeks)
    kept: dict[tuple[str, date], tuple[date, int]] = {}
    if scope.snapshot_key:
        where = _company_is(ForecastSnapshot.company, scope.company_id) & (
            ForecastSnapshot.week_start.is_in(starts)
        )
        where &= ForecastSnapshot.made_on <= starts[-1]
        if scope.currency:
            where &= ForecastSnapshot.currency == scope.currency
        for row in await ForecastSnapshot.select(
            ForecastSnapshot.currency,
            ForecastSnapshot.made_on,
            ForecastSnapshot.week_start,
            ForecastSnapshot.expected_minor,
        ).where(where):
            made, start = f._date(row["made_on"]), f._date(row["week_start"])
            if made > start:
                continue
            key = (row["currency"], start)
            if key not in kept or made > kept[key][0]:
                kept[key] = (made, int(row["expected_minor"]))
    if collected is None or [w for w, _ in next(iter(collected.values()), [])] != starts:
        collected = await f.collected(scope, starts)
    actual = {cur: dict(weeks) for cur, weeks in collected.items()}
    currencies = sorted({c for c, _ in kept} | set(actual))
    return {
        cur: [
            WeekVersus(
                week_start=s,
                forecast_minor=kept[(cur, s)][1] if (cur, s) in kept else None,
                actual_minor=actual.get(cur, {}).get(s, 0),
            )
            for s in starts
        ]
        for cur in currencies
    }


# ------------------------------------------------------------------ rebuild


Progress = Callable[[str, int, int], None]


async def rebuild(on: date, *, months: int = TREND_MONTHS, progress: Progress | None = None) -> int:
    """Month-end trend points for the last `months` months and the forecasts of the last
    weeks' Mondays, rebuilt from the ledger's dates, for every company and for all of them,
    then today's figures. Nightly snapshots of past days are kept; earlier rebuilt points
    are replaced. Returns the month-end points written."""
    companies = [r["id"] for r in await Company.select(Company.id).order_by(Company.id)]
    scopes = [f.Scope(company_id=c) for c in companies] + [f.Scope()]
    ends = [f.month_end(f.months_before(on, k)) for k in range(months - 1, 0, -1)]
    mondays = [f.week_start(on) - timedelta(days=7 * k) for k in range(PAST_FORECAST_WEEKS, 0, -1)]
    steps = len(scopes) * (len(ends) + len(mondays) + 1)
    done = written = 0
    for scope in scopes:
        for end in ends:
            if progress:
                progress(f"month ending {end}", done, steps)
            written += await _rebuild_month(scope, end)
            done += 1
        for monday in mondays:
            if progress:
                progress(f"forecast of {monday}", done, steps)
            await _rebuild_forecast(scope, monday)
            done += 1
        if progress:
            progress(f"figures of {on}", done, steps)
        await write_nightly(scope, on)
        done += 1
    if progress:
        progress("done", steps, steps)
    return written


async def _rebuild_month(scope: f.Scope, end: date) -> int:
    """One month end: past-due invoices rebuilt (past holds are not recorded) and the
    count-back DSO of that day."""
    aging = await f.aging_as_of(scope, end)
    ratios = await f.ratios(scope, end)
    rows = []
    for cur in sorted(set(aging) | set(ratios)):
        buckets = aging.get(cur, dict.fromkeys(BUCKETS, 0))
        r = ratios.get(cur)
        rows.append(
            InsightSnapshot(
                company=scope.company_id,
                currency=cur,
                taken_on=end,
                source="rebuild",
                open_minor=f.total(buckets),
                overdue_minor=f.total(buckets) - buckets["not_due"],
                dso_x10=_x10(r.dso_countback) if r else None,
                figures="{}",
            )
        )
    async with atomic():
        await InsightSnapshot.delete().where(
            _company_is(InsightSnapshot.company, scope.company_id)
            & (InsightSnapshot.taken_on == end)
            & (InsightSnapshot.source == "rebuild")
        )
        if rows:
            await InsightSnapshot.insert(*rows)
    return len(rows)


async def _rebuild_forecast(scope: f.Scope, monday: date) -> None:
    """The forecast as it would have been made that Monday from the ledger of the day
    (invoices open then, each customer's lateness until then; past promises and disputes
    are not recorded by date, so they do not move it). A kept forecast is never replaced."""
    kept = await ForecastSnapshot.exists().where(
        _company_is(ForecastSnapshot.company, scope.company_id)
        & (ForecastSnapshot.made_on == monday)
    )
    if kept:
        return
    forecasts = await f.forecast(scope, monday, rebuilt=True)
    weeks = [
        ForecastSnapshot(
            company=scope.company_id,
            currency=cur,
            made_on=monday,
            week_start=start,
            expected_minor=amount,
        )
        for cur, fc in forecasts.items()
        for start, amount in fc.weeks
    ]
    if weeks:
        await ForecastSnapshot.insert(*weeks)
