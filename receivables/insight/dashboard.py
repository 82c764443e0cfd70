"""The dashboard of one scope: last night's kept figures (or computed now) and the live ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from receivables.insight import figures as f
from receivables.insight import snapshots
from receivables.ledger.statement import BUCKETS
from receivables.money import Money

DEFAULT_PERIOD_MONTHS = 3
PERIODS = (1, 3, 6, 12)


@dataclass
class Dashboard:
    scope: f.Scope
    today: date
    nightly: f.Nightly
    kept_on: date | None
    """The night the heavy figures were taken; None: computed for this request."""
    aging_on: date
    aging: dict[str, dict[str, int]]
    disputes: dict[str, f.Disputes]
    promises: f.Promises
    workload: list[f.Workload]
    trend: dict[str, list[snapshots.TrendPoint]]
    versus: dict[str, list[snapshots.WeekVersus]]

    @property
    def currencies(self) -> list[str]:
        found = set(self.nightly.currencies) | set(self.aging) | set(self.disputes)
        return sorted(found | set(self.trend) | set(self.versus))

    @staticmethod
    def money(minor: int | None, currency: str) -> Money | None:
        return None if minor is None else Money.from_minor(int(minor), currency)

    def aging_total(self, currency: str) -> int:
        return f.total(self.aging.get(currency, {}))


async def dashboard(
    scope: f.Scope,
    today: date,
    *,
    aging_on: date | None = None,
    period_months: int = DEFAULT_PERIOD_MONTHS,
) -> Dashboard:
    """Last night's figures when kept for this scope and period (the page says so), else
    computed now; disputes, promises and workload are always live."""
    kept = None
    if period_months == DEFAULT_PERIOD_MONTHS:
        kept = await snapshots.latest(scope, today)
    nightly = kept.nightly if kept else await f.nightly(scope, today, period_months)
    if aging_on is None or aging_on == nightly.on:
        aging_on = nightly.on
        aging = {c: dict(b.buckets) for c, b in nightly.balances.items()}
    else:
        aging = await f.aging_as_of(scope, aging_on)
    for buckets in aging.values():
        for b in BUCKETS:
            buckets.setdefault(b, 0)
    return Dashboard(
        scope=scope,
        today=today,
        nightly=nightly,
        kept_on=kept.taken_on if kept else None,
        aging_on=aging_on,
        aging=aging,
        disputes=await f.disputes(scope, today),
        promises=await f.promises(scope, today),
        workload=await f.workload(scope, today),
        trend=await snapshots.trend(scope, today),
        versus=await snapshots.forecast_vs_actual(
            scope, today, collected=nightly.collected if kept else None
        ),
    )
