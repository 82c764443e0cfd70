"""'Today' and 'now' for a company: its date in its own time zone, from this one module.

The server's local date is never used: a company in Europe/Paris and its run at 00:30
server-UTC would disagree on the day. Tests move time with `time-machine` (or pass dates).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "UTC"


def now() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local_now(timezone: str | None) -> datetime:
    """The current time on the company's wall clock."""
    return now().astimezone(zone(timezone))


def today_in(timezone: str | None) -> date:
    """The company's date: the one function every 'today' comes from."""
    return local_now(timezone).date()


def date_of(moment: datetime | None, timezone: str | None) -> date | None:
    """The company's date of an instant (a timestamp stored in UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(timezone)).date()


async def company_today(company_id: int | None = None) -> date:
    """Today for a company (None: the first company, the home entity of a single-entity
    install; UTC when there is none yet)."""
    from receivables.ledger.tables import Company

    query = Company.select(Company.timezone)
    if company_id is not None:
        query = query.where(Company.id == company_id)
    row = await query.order_by(Company.id).first()
    return today_in(row["timezone"] if row else None)


async def customer_today(customer_id: int) -> date:
    """Today for the company a customer belongs to."""
    from receivables.ledger.tables import Customer

    row = (
        await Customer.select(Customer.company.timezone.as_alias("tz"))
        .where(Customer.id == customer_id)
        .first()
    )
    if row is None:
        return await company_today()
    return today_in(row["tz"])
