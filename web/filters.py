"""Jinja filters: money and dates for people, in their locale (Babel)."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from babel import Locale
from babel.dates import format_date
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from receivables.money import Money, format_money


def money(value: Money | None, locale: str = "en_GB") -> str:
    if value is None:
        return ""
    return format_money(value.amount, value.currency, locale)


def day(value: date | datetime | None, locale: str | Locale = "en_GB", fmt: str = "medium") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    return _day(value, str(locale), fmt)


@lru_cache(maxsize=8192)
def _day(value: date, locale: str, fmt: str) -> str:
    # A page shows the same few dates many times (due and issue dates): Babel costs 20 us each.
    return str(format_date(value, format=fmt, locale=locale))


@pass_context
def _money_here(context: Context, value: Money | None, locale: str | None = None) -> str:
    """`|money` on a page: the given locale, else the page's (`locale`), else en_GB."""
    return money(value, locale or context.get("locale") or "en_GB")


@pass_context
def _day_here(
    context: Context, value: date | datetime | None, locale: str | None = None, fmt: str = "medium"
) -> str:
    """`|day` on a page: the given locale, else the page's (`locale`), else en_GB."""
    return day(value, locale or context.get("locale") or "en_GB", fmt)


def register_filters(env: Environment) -> None:
    env.filters["money"] = _money_here
    env.filters["day"] = _day_here
