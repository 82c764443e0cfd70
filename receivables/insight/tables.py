"""Snapshots of the dashboard: the nightly figures and the forecasts as they were made."""

from __future__ import annotations

from piccolo.columns import BigInt, Date, ForeignKey, Integer, OnDelete, Serial, Text, Varchar
from piccolo.table import Table

from receivables.ledger.tables import Company


class InsightSnapshot(Table, tablename="insight_snapshot"):
    """The figures of one scope (a company, or every company) in one currency on one day.

    Written by the nightly job after the daily run (source 'run') or rebuilt from the
    ledger's dates for past month ends (source 'rebuild'). The trend reads `overdue_minor`
    and `dso_x10`; the page reads `figures`, the whole computation as JSON.
    """

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(
        Company, null=True, on_delete=OnDelete.cascade, index=True, help_text="Empty: all."
    )
    currency = Varchar(length=3)
    taken_on = Date(index=True)
    source = Varchar(length=10, default="run", help_text="run (nightly) or rebuild.")
    open_minor = BigInt(default=0)
    overdue_minor = BigInt(default=0)
    dso_x10 = Integer(null=True, default=None, help_text="Count-back DSO in tenths of a day.")
    figures = Text(default="{}", help_text="The computed figures, JSON.")


class ForecastSnapshot(Table, tablename="insight_forecast"):
    """One week of a 13-week cash forecast as made on `made_on`: kept to show it against
    what was actually collected that week."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(
        Company, null=True, on_delete=OnDelete.cascade, index=True, help_text="Empty: all."
    )
    currency = Varchar(length=3)
    made_on = Date(index=True)
    week_start = Date(help_text="Monday of the week forecast.")
    expected_minor = BigInt()
