"""The dashboard's figures, each computed in one place from the ledger, with its definition.

Amounts are minor units per currency: nothing is ever summed across currencies. A scope
narrows every figure to a company, a collector's accounts and a currency. Receivables
(AR) here are open invoices, before credit notes and unapplied payments (shown apart).
Overdue is the product's one definition (`receivables.ledger.statement.hold_of`): past
its due date and not on hold.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from receivables.db import is_postgres
from receivables.dunning.tables import OPEN_ACTION_STATUSES
from receivables.ledger.statement import BUCKETS, not_held_sql, promise_floor
from receivables.ledger.tables import Item

DEFINITIONS: dict[str, str] = {
    "open": "Open invoices: what customers still owe on invoices, before credit notes and "
    "unapplied payments.",
    "overdue": "Past its due date and not on hold (no dispute, running promise, payment "
    "under way or customer's answer waiting): what reminders ask to pay now.",
    "share_overdue": "Overdue divided by open invoices.",
    "on_hold": "Open invoices on hold, whatever their due date: disputed, promised (until "
    "the promised date plus 3 days), payment announced or under way, answer waiting.",
    "not_due": "Open invoices not yet due and not on hold.",
    "credits": "Open credit notes plus payments received but not yet applied to invoices.",
    "dso_countback": "Days sales outstanding, count-back: open invoices on the date, matched "
    "against each past month's invoiced sales, newest month first; the days of the months "
    "they use up (the last one pro rata).",
    "dso_simple": "Days sales outstanding, simple: open invoices / invoiced sales of the "
    "period x days in the period.",
    "best_dso": "Best possible DSO: invoices not yet due / invoiced sales of the period x days "
    "in the period; what DSO would be if every customer paid on its due date.",
    "add": "Average days delinquent: simple DSO minus best possible DSO (past-due invoices / "
    "invoiced sales of the period x days in the period).",
    "cei": "Collection effectiveness index: (open invoices at the start + invoiced since - "
    "open invoices now) / (open invoices at the start + invoiced since - invoices not yet due "
    "now) x 100; 100 % collected all that could be.",
    "aging": "Open invoices on the date by days past their due date, rebuilt for a past date "
    "from the issue dates and the payments applied (by the date they were received); holds "
    "included.",
    "disputes": "Open disputed invoices by reason and by days past their due date.",
    "promises": "Promises to pay: running now; kept (paid by the promised date plus 3 days) and "
    "broken, among those settled over the last 90 days; kept rate = kept / (kept + broken).",
    "workload": "Per collector: dunning actions due today, actions due before today still "
    "open, customers' answers waiting for validation.",
    "top_accounts": "The ten accounts with the largest overdue amount, with the level of the "
    "last action done and the next action planned.",
    "forecast": "Expected collections over 13 weeks (Monday to Sunday): each open invoice at "
    "its promised date if a promise runs, now if a payment is announced, else at its due "
    "date shifted by the customer's average days late over 6 months (amount-weighted), never "
    "before today; disputed invoices are left out.",
    "forecast_actual": "Past weeks: what the forecast made at the start of the week expected, "
    "against the payments actually received that week (credit notes and write-offs applied "
    "are not money received).",
    "trend": "Overdue and count-back DSO at each month end over 12 months (nightly snapshots; "
    "months rebuilt from history count all past-due invoices: past holds are not recorded).",
    "average_days_late": "Amount-weighted days between due date and payment receipt, over "
    "payments received in the last 6 months (credit notes and write-offs left out).",
}

AGING_LABELS = {
    "not_due": "Not due",
    "1-30": "1-30 days",
    "31-60": "31-60 days",
    "61-90": "61-90 days",
    "90+": "Over 90 days",
}
NON_CASH_SQL = "'credit_note', 'write_off'"
"""Payments that carry a credit note or a write-off to invoices: no money came in."""
COUNT_BACK_MONTHS = 24
"""How far the count-back walks: AR older than two years of sales adds no more days."""
FORECAST_WEEKS = 13
PROMISE_WINDOW_DAYS = 90
LATE_WINDOW_MONTHS = 6


@dataclass(frozen=True)
class Scope:
    """Which accounts a figure covers: None means all."""

    company_id: int | None = None
    collector_id: int | None = None
    currency: str | None = None

    @property
    def snapshot_key(self) -> bool:
        """Nightly snapshots exist per company (or all), never per collector."""
        return self.collector_id is None


# ------------------------------------------------------------------ SQL helpers


class _Query:
    """SQL text with `{}` placeholders and their values, in order (Piccolo's raw style)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, text: str, *args: Any) -> _Query:
        self.parts.append(text)
        self.args.extend(args)
        return self

    def scope(self, scope: Scope, alias: str = "i") -> _Query:
        if scope.company_id is not None:
            self.add(f" AND {alias}.company = {{}}", scope.company_id)
        if scope.collector_id is not None:
            self.add(
                f" AND {alias}.customer IN (SELECT id FROM customer WHERE collector = {{}})",  # noqa: S608
                scope.collector_id,
            )
        if scope.currency:
            self.add(f" AND {alias}.currency = {{}}", scope.currency)
        return self

    async def rows(self) -> list[dict[str, Any]]:
        return await Item.raw("".join(self.parts), *self.args)


def _int(value: Any) -> int:
    return int(value or 0)


def _date(value: Any) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        return value.date()
    return value


def _days_sql(later: str, earlier: str) -> str:
    if is_postgres():
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (the month's last day if shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _tenth(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _bucket_bounds(on: date) -> list[tuple[str, date | None, date | None]]:
    """(bucket, earliest due date, latest due date) on `on`: engine-neutral date compares."""
    return [
        ("not_due", on, None),
        ("1-30", on - timedelta(days=30), on - timedelta(days=1)),
        ("31-60", on - timedelta(days=60), on - timedelta(days=31)),
        ("61-90", on - timedelta(days=90), on - timedelta(days=61)),
        ("90+", None, on - timedelta(days=91)),
    ]


def _bucket_sums(q: _Query, on: date, amount: str, due: str = "due_date") -> None:
    for n, (_, low, high) in enumerate(_bucket_bounds(on)):
        conds = []
        args = []
        if low is not None:
            conds.append(f"{due} >= {{}}")
            args.append(low)
        if high is not None:
            conds.append(f"{due} <= {{}}")
            args.append(high)
        q.add(f", SUM(CASE WHEN {' AND '.join(conds)} THEN {amount} ELSE 0 END) AS b{n}", *args)


# ------------------------------------------------------------------ balances (live)


@dataclass
class Balances:
    """Today's open invoices in one currency, split the statement's way."""

    currency: str
    open_minor: int = 0
    overdue_minor: int = 0
    on_hold_minor: int = 0
    not_due_minor: int = 0
    credits_minor: int = 0
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    @property
    def share_overdue(self) -> Decimal | None:
        if not self.open_minor:
            return None
        return _tenth(Decimal(self.overdue_minor) * 100 / Decimal(self.open_minor))


async def balances(scope: Scope, on: date) -> dict[str, Balances]:
    """Open, overdue, on hold, not due and the aging buckets, per currency, on `on` (today:
    the items' current state and holds)."""
    not_held = not_held_sql("i")
    q = _Query().add(
        "SELECT i.currency, SUM(i.open_minor) AS open_minor, "
        f"SUM(CASE WHEN i.due_date < {{}} AND {not_held} THEN i.open_minor ELSE 0 END) "
        "AS overdue_minor, "
        f"SUM(CASE WHEN {not_held} THEN 0 ELSE i.open_minor END) AS on_hold_minor",
        on,
        promise_floor(on),
        promise_floor(on),
    )
    _bucket_sums(q, on, "i.open_minor", "i.due_date")
    q.add(" FROM item i WHERE i.kind = 'invoice' AND i.open_minor > 0 AND i.status <> 'cancelled'")
    q.scope(scope).add(" GROUP BY i.currency")
    out: dict[str, Balances] = {}
    for row in await q.rows():
        b = Balances(currency=row["currency"])
        b.open_minor = _int(row["open_minor"])
        b.overdue_minor = _int(row["overdue_minor"])
        b.on_hold_minor = _int(row["on_hold_minor"])
        b.not_due_minor = b.open_minor - b.overdue_minor - b.on_hold_minor
        b.buckets = {name: _int(row[f"b{n}"]) for n, name in enumerate(BUCKETS)}
        out[b.currency] = b
    credits = _Query().add(
        "SELECT i.currency, SUM(i.open_minor) AS m FROM item i "
        "WHERE i.kind = 'credit_note' AND i.open_minor > 0 AND i.status <> 'cancelled'"
    )
    credits.scope(scope).add(" GROUP BY i.currency")
    unapplied = _Query().add(
        "SELECT i.currency, SUM(i.unapplied_minor) AS m FROM payment i WHERE i.unapplied_minor > 0"
    )
    unapplied.scope(scope).add(" GROUP BY i.currency")
    for q2 in (credits, unapplied):
        for row in await q2.rows():
            b = out.setdefault(row["currency"], Balances(currency=row["currency"]))
            b.credits_minor += _int(row["m"])
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ aging as of any date


async def aging_as_of(scope: Scope, on: date) -> dict[str, dict[str, int]]:
    """Open invoices on `on` by bucket, per currency, rebuilt from the ledger's dates: an
    invoice issued by then, less the payments applied to it that were received by then
    (reversals from the day they were made)."""
    q = _Query().add("SELECT x.currency")
    _bucket_sums(q, on, "x.left_minor", "x.due_date")
    q.add(" FROM (")
    _open_on(q, scope, on)
    q.add(") x WHERE x.left_minor > 0 GROUP BY x.currency")
    out: dict[str, dict[str, int]] = {}
    for row in await q.rows():
        out[row["currency"]] = {name: _int(row[f"b{n}"]) for n, name in enumerate(BUCKETS)}
    return dict(sorted(out.items()))


def _open_on(
    q: _Query,
    scope: Scope,
    on: date,
    extra: str = "",
    customers: tuple[int, int] | None = None,
) -> None:
    """The sub-select of invoices with what was left open on `on` (`left_minor`): the
    allocations are summed per item once (a hash join), not looked up item by item.
    `customers` (low, high]: only those customer ids, allocations included (a slice of
    the aged balance reads its own)."""
    end_of_day = datetime.combine(on + timedelta(days=1), time(0), tzinfo=UTC)
    q.add(
        f"SELECT i.id, i.customer, i.currency, i.due_date{extra}, "  # noqa: S608
        "i.total_minor - COALESCE(paid.m, 0) AS left_minor FROM item i LEFT JOIN ("
        "SELECT a.item, SUM(a.amount_minor) AS m FROM allocation a "
        "JOIN payment p ON p.id = a.payment WHERE p.received_on <= {} "
        "AND (a.reversed_at IS NULL OR a.reversed_at >= {})",
        on,
        end_of_day,
    )
    if customers is not None:
        q.add(" AND p.customer > {} AND p.customer <= {}", *customers)
    q.add(
        " GROUP BY a.item) paid ON paid.item = i.id WHERE i.kind = 'invoice' "
        "AND i.status <> 'cancelled' AND i.issue_date <= {}",
        on,
    )
    if customers is not None:
        q.add(" AND i.customer > {} AND i.customer <= {}", *customers)
    q.scope(scope)


def total(buckets: dict[str, int]) -> int:
    return sum(buckets.values())


# ------------------------------------------------------------------ DSO, ADD, CEI


@dataclass
class Ratios:
    """DSO, best possible DSO, ADD and CEI of one currency on one date."""

    currency: str
    on: date
    period_months: int
    receivables_minor: int
    current_minor: int
    period_sales_minor: int
    period_days: int
    dso_countback: Decimal | None
    dso_simple: Decimal | None
    best_dso: Decimal | None
    add: Decimal | None
    cei_30: Decimal | None
    cei_90: Decimal | None


async def _sales(scope: Scope, windows: list[tuple[date, date]]) -> dict[str, list[int]]:
    """Invoiced (invoice totals, by issue date) in each window (start excluded, end
    included), per currency, in one pass over the items."""
    q = _Query().add("SELECT i.currency")
    for n, (start, end) in enumerate(windows):
        q.add(
            f", SUM(CASE WHEN i.issue_date > {{}} AND i.issue_date <= {{}} "
            f"THEN i.total_minor ELSE 0 END) AS w{n}",
            start,
            end,
        )
    earliest = min(s for s, _ in windows)
    latest = max(e for _, e in windows)
    q.add(
        " FROM item i WHERE i.kind = 'invoice' AND i.status <> 'cancelled' "
        "AND i.issue_date > {} AND i.issue_date <= {}",
        earliest,
        latest,
    )
    q.scope(scope).add(" GROUP BY i.currency")
    return {r["currency"]: [_int(r[f"w{n}"]) for n in range(len(windows))] for r in await q.rows()}


def count_back(receivables_minor: int, months: list[tuple[int, int]]) -> Decimal:
    """Count-back DSO: `months` is (days, sales) newest first."""
    left = Decimal(receivables_minor)
    days = Decimal(0)
    for month_days, sales in months:
        if left <= 0:
            break
        if left > sales:
            days += month_days
            left -= sales
        else:
            days += Decimal(month_days) * left / Decimal(sales)
            left = Decimal(0)
    return _tenth(days)


def cei(begin: int, sales: int, end_total: int, end_current: int) -> Decimal | None:
    denominator = begin + sales - end_current
    if denominator <= 0:
        return None
    return _tenth(Decimal(begin + sales - end_total) * 100 / Decimal(denominator))


async def ratios(scope: Scope, on: date, period_months: int = 3) -> dict[str, Ratios]:
    """DSO (count-back and simple), best possible DSO, ADD, CEI 30 and 90 days, per currency
    with open invoices or sales."""
    month_windows = [
        (months_before(on, k), months_before(on, k - 1)) for k in range(1, COUNT_BACK_MONTHS + 1)
    ]
    period_start = months_before(on, period_months)
    windows = [
        *month_windows,
        (period_start, on),
        (on - timedelta(days=30), on),
        (on - timedelta(days=90), on),
    ]
    sales = await _sales(scope, windows)
    now = await aging_as_of(scope, on)
    before_30 = await aging_as_of(scope, on - timedelta(days=30))
    before_90 = await aging_as_of(scope, on - timedelta(days=90))
    period_days = (on - period_start).days
    out: dict[str, Ratios] = {}
    for currency in sorted(set(sales) | set(now)):
        s = sales.get(currency, [0] * len(windows))
        buckets = now.get(currency, dict.fromkeys(BUCKETS, 0))
        ar = total(buckets)
        current = buckets["not_due"]
        months = [((e - st).days, s[n]) for n, (st, e) in enumerate(month_windows)]
        period_sales = s[COUNT_BACK_MONTHS]
        simple = best = None
        if period_sales:
            simple = _tenth(Decimal(ar) * period_days / Decimal(period_sales))
            best = _tenth(Decimal(current) * period_days / Decimal(period_sales))
        out[currency] = Ratios(
            currency=currency,
            on=on,
            period_months=period_months,
            receivables_minor=ar,
            current_minor=current,
            period_sales_minor=period_sales,
            period_days=period_days,
            dso_countback=count_back(ar, months) if ar else Decimal("0.0"),
            dso_simple=simple,
            best_dso=best,
            add=_tenth(Decimal(ar - current) * period_days / Decimal(period_sales))
            if period_sales
            else None,
            cei_30=cei(total(before_30.get(currency, {})), s[COUNT_BACK_MONTHS + 1], ar, current),
            cei_90=cei(total(before_90.get(currency, {})), s[COUNT_BACK_MONTHS + 2], ar, current),
        )
    return out


# ------------------------------------------------------------------ disputes and promises


@dataclass
class Disputes:
    currency: str
    count: int = 0
    amount_minor: int = 0
    by_reason: dict[str, tuple[int, int]] = field(default_factory=dict)
    """reason -> (count, amount)."""
    by_age: dict[str, tuple[int, int]] = field(default_factory=dict)
    """aging bucket (days past due) -> (count, amount)."""


async def disputes(scope: Scope, on: date) -> dict[str, Disputes]:
    """Open disputed invoices per currency, by reason and by days past due (one query)."""
    q = _Query().add("SELECT i.currency, i.dispute_reason AS reason")
    for n, (_, low, high) in enumerate(_bucket_bounds(on)):
        conds, args = [], []
        if low is not None:
            conds.append("i.due_date >= {}")
            args.append(low)
        if high is not None:
            conds.append("i.due_date <= {}")
            args.append(high)
        cond = " AND ".join(conds)
        q.add(f", SUM(CASE WHEN {cond} THEN 1 ELSE 0 END) AS n{n}", *args)
        q.add(f", SUM(CASE WHEN {cond} THEN i.open_minor ELSE 0 END) AS m{n}", *args)
    q.add(" FROM item i WHERE i.status = 'disputed' AND i.kind = 'invoice' AND i.open_minor > 0")
    q.scope(scope).add(" GROUP BY i.currency, i.dispute_reason")
    out: dict[str, Disputes] = {}
    for row in await q.rows():
        d = out.setdefault(row["currency"], Disputes(currency=row["currency"]))
        counts = [_int(row[f"n{n}"]) for n in range(len(BUCKETS))]
        amounts = [_int(row[f"m{n}"]) for n in range(len(BUCKETS))]
        reason = row["reason"] or "other"
        c, a = d.by_reason.get(reason, (0, 0))
        d.by_reason[reason] = (c + sum(counts), a + sum(amounts))
        d.count += sum(counts)
        d.amount_minor += sum(amounts)
        for n, bucket in enumerate(BUCKETS):
            c, a = d.by_age.get(bucket, (0, 0))
            d.by_age[bucket] = (c + counts[n], a + amounts[n])
    for d in out.values():
        d.by_reason = dict(sorted(d.by_reason.items(), key=lambda kv: (-kv[1][1], kv[0])))
        d.by_age = {b: d.by_age.get(b, (0, 0)) for b in BUCKETS}
    return dict(sorted(out.items()))


@dataclass
class Promises:
    running: int = 0
    running_minor: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    broken: int = 0

    @property
    def kept_rate(self) -> Decimal | None:
        settled = self.kept + self.broken
        return _tenth(Decimal(self.kept) * 100 / settled) if settled else None


async def promises(scope: Scope, on: date) -> Promises:
    """Running promises now; kept and broken among those closed in the last 90 days (the
    promises alone are read unless a currency narrows them to their invoices')."""
    result = Promises()
    q = _Query().add(
        "SELECT i.currency, COUNT(*) AS n, SUM(i.open_minor) AS m "
        "FROM promise_to_pay p JOIN item i ON i.id = p.item WHERE p.status = 'running'"
    )
    q.scope(scope).add(" GROUP BY i.currency")
    for row in await q.rows():
        result.running += _int(row["n"])
        result.running_minor[row["currency"]] = _int(row["m"])
    result.running_minor = dict(sorted(result.running_minor.items()))
    q = _Query().add(
        "SELECT p.status, COUNT(*) AS n FROM promise_to_pay p "
        "WHERE p.status IN ('kept', 'broken') AND p.closed_on > {} AND p.closed_on <= {}",
        on - timedelta(days=PROMISE_WINDOW_DAYS),
        on,
    )
    q.scope(Scope(scope.company_id, scope.collector_id), alias="p")
    if scope.currency:
        q.add(
            " AND EXISTS (SELECT 1 FROM item i WHERE i.id = p.item AND i.currency = {})",
            scope.currency,
        )
    q.add(" GROUP BY p.status")
    for row in await q.rows():
        if row["status"] == "kept":
            result.kept = _int(row["n"])
        else:
            result.broken = _int(row["n"])
    return result


# ------------------------------------------------------------------ collectors


@dataclass
class Workload:
    collector_id: int | None
    collector: str
    due_today: int = 0
    overdue_tasks: int = 0
    pending_answers: int = 0


async def workload(scope: Scope, on: date) -> list[Workload]:
    """Per collector (accounts without one apart): actions due today, actions overdue,
    answers waiting. Currency does not narrow it (an account may owe in several)."""
    statuses = "', '".join(OPEN_ACTION_STATUSES)
    q = _Query().add(
        "SELECT c.collector, "  # noqa: S608
        "SUM(CASE WHEN a.due_on = {} THEN 1 ELSE 0 END) AS today, "
        "SUM(CASE WHEN a.due_on < {} THEN 1 ELSE 0 END) AS late "
        "FROM dunning_action a JOIN customer c ON c.id = a.customer "
        f"WHERE a.status IN ('{statuses}') AND a.due_on <= {{}}",
        on,
        on,
        on,
    )
    _people_scope(q, scope)
    q.add(" GROUP BY c.collector")
    rows: dict[int | None, Workload] = {}
    for row in await q.rows():
        w = rows.setdefault(row["collector"], Workload(row["collector"], ""))
        w.due_today = _int(row["today"])
        w.overdue_tasks = _int(row["late"])
    q = _Query().add(
        "SELECT c.collector, COUNT(*) AS n FROM feedback a "
        "JOIN customer c ON c.id = a.customer WHERE a.status = 'pending'"
    )
    _people_scope(q, scope)
    q.add(" GROUP BY c.collector")
    for row in await q.rows():
        w = rows.setdefault(row["collector"], Workload(row["collector"], ""))
        w.pending_answers = _int(row["n"])
    names = {
        r["id"]: r["name"]
        for r in await Item.raw("SELECT id, name FROM staff_user WHERE role = 'collector'")
    }
    if scope.collector_id is None:
        for staff_id in names:
            rows.setdefault(staff_id, Workload(staff_id, ""))
    for w in rows.values():
        w.collector = names.get(w.collector_id, "") if w.collector_id else ""
        if w.collector_id and not w.collector:
            got = await Item.raw("SELECT name FROM staff_user WHERE id = {}", w.collector_id)
            w.collector = got[0]["name"] if got else f"#{w.collector_id}"
    return sorted(rows.values(), key=lambda w: (w.collector_id is None, w.collector))


def _people_scope(q: _Query, scope: Scope) -> None:
    if scope.company_id is not None:
        q.add(" AND c.company = {}", scope.company_id)
    if scope.collector_id is not None:
        q.add(" AND c.collector = {}", scope.collector_id)


# ------------------------------------------------------------------ top accounts


@dataclass
class TopAccount:
    customer_id: int
    ref: str
    name: str
    currency: str
    overdue_minor: int
    level: str
    next_step: str
    next_on: date | None


async def top_accounts(scope: Scope, on: date, limit: int = 10) -> dict[str, list[TopAccount]]:
    """Per currency, the accounts owing the most overdue (the one definition)."""
    not_held = not_held_sql("i")
    q = _Query().add(
        "SELECT customer, currency, m FROM (SELECT customer, currency, m, ROW_NUMBER() OVER "  # noqa: S608
        "(PARTITION BY currency ORDER BY m DESC, customer) AS pos FROM ("
        "SELECT i.customer, i.currency, SUM(i.open_minor) AS m FROM item i "
        "WHERE i.kind = 'invoice' AND i.open_minor > 0 AND i.due_date < {} "
        f"AND {not_held}",
        on,
        promise_floor(on),
    )
    q.scope(scope).add(" GROUP BY i.customer, i.currency) t) r WHERE pos <= {}", limit)
    q.add(" ORDER BY currency, m DESC, customer")
    ranked: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in await q.rows():
        ranked[row["currency"]].append((row["customer"], _int(row["m"])))
    ids = sorted({c for rows in ranked.values() for c, _ in rows})
    if not ids:
        return {}
    id_list = ",".join(str(int(i)) for i in ids)
    people = {
        r["id"]: r
        for r in await Item.raw(
            f"SELECT id, ref, name FROM customer WHERE id IN ({id_list})"  # noqa: S608
        )
    }
    done = await Item.raw(
        "SELECT customer, level FROM dunning_action "  # noqa: S608
        f"WHERE customer IN ({id_list}) AND status = 'done' ORDER BY done_on, id"
    )
    level = {r["customer"]: r["level"] for r in done}  # the last one wins
    statuses = "', '".join(OPEN_ACTION_STATUSES)
    upcoming = await Item.raw(
        "SELECT customer, step_name, due_on FROM dunning_action "  # noqa: S608
        f"WHERE customer IN ({id_list}) AND status IN ('{statuses}') ORDER BY due_on DESC, id"
    )
    nxt = {r["customer"]: (r["step_name"], _date(r["due_on"])) for r in upcoming}
    out: dict[str, list[TopAccount]] = {}
    for cur, rows in sorted(ranked.items()):
        out[cur] = [
            TopAccount(
                customer_id=cid,
                ref=people[cid]["ref"],
                name=people[cid]["name"],
                currency=cur,
                overdue_minor=m,
                level=level.get(cid, ""),
                next_step=nxt.get(cid, ("", None))[0],
                next_on=nxt.get(cid, ("", None))[1],
            )
            for cid, m in rows
        ]
    return out


# ------------------------------------------------------------------ forecast


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _late(q: _Query, scope: Scope, on: date) -> None:
    """The sub-select of (customer, days): amount-weighted days late of the payments
    received over the 6 months to `on`, rounded half away from zero."""
    days = _days_sql("p.received_on", "i.due_date")
    q.add(
        f"SELECT i.customer, ROUND(CAST(SUM(a.amount_minor * {days}) AS {_real()}) "  # noqa: S608
        "/ SUM(a.amount_minor)) AS days "
        "FROM allocation a JOIN payment p ON p.id = a.payment JOIN item i ON i.id = a.item "
        f"WHERE a.reversed_at IS NULL AND p.method NOT IN ({NON_CASH_SQL}) "
        "AND p.received_on > {} AND p.received_on <= {}",
        months_before(on, LATE_WINDOW_MONTHS),
        on,
    )
    q.scope(scope).add(" GROUP BY i.customer HAVING SUM(a.amount_minor) > 0")


def _real() -> str:
    return "NUMERIC" if is_postgres() else "REAL"


def _plus_days(day: str, days: str) -> str:
    if is_postgres():
        return f"({day} + CAST({days} AS INTEGER))"
    return f"date({day}, CAST(CAST({days} AS INTEGER) AS TEXT) || ' days')"


def _later(a: str, b: str) -> str:
    return f"GREATEST({a}, {b})" if is_postgres() else f"MAX({a}, {b})"


async def average_days_late(scope: Scope, on: date) -> dict[int, int]:
    """Per customer: amount-weighted days late of the payments received over 6 months."""
    q = _Query()
    _late(q, scope, on)
    return {r["customer"]: int(r["days"]) for r in await q.rows()}


@dataclass
class Forecast:
    currency: str
    made_on: date
    weeks: list[tuple[date, int]]
    """(Monday, expected minor units), 13 weeks from this week."""
    later_minor: int = 0
    disputed_minor: int = 0


async def forecast(scope: Scope, on: date, *, rebuilt: bool = False) -> dict[str, Forecast]:
    """The 13-week cash forecast made on `on`, per currency (see DEFINITIONS['forecast']),
    summed by week in the database.

    `rebuilt`: as it would have been made on a past `on` from the ledger's dates (invoices
    open then; past statuses are not recorded by date, so no promise or dispute moves it)."""
    first = week_start(on)
    q = _Query().add("SELECT x.currency, x.wk, SUM(x.m) AS m FROM (SELECT x.currency, x.m, ")
    expected = (
        "CASE WHEN x.status IN ('paid_pending', 'payment_in_progress') "
        "OR x.pending_answer = 'paid' THEN {} "
        "WHEN x.status = 'promised' AND x.promise_date IS NOT NULL "
        "AND x.promise_date >= {} THEN x.promise_date "
        f"ELSE {_plus_days('x.due_date', 'COALESCE(l.days, 0)')} END"
    )
    week = _days_sql(_later(expected, "{}"), "{}")
    q.add(
        "CASE WHEN x.status = 'disputed' OR x.pending_answer = 'dispute' THEN -1 "
        f"ELSE {week} / 7 END AS wk FROM (",
        on,
        promise_floor(on),
        on,
        first,
    )
    if rebuilt:
        q.add(
            "SELECT o.customer, o.currency, o.due_date, o.left_minor AS m, 'open' AS status, "
            "CAST(NULL AS DATE) AS promise_date, '' AS pending_answer FROM ("
        )
        _open_on(q, scope, on)
        q.add(") o WHERE o.left_minor > 0")
    else:
        q.add(
            "SELECT i.customer, i.currency, i.due_date, i.open_minor AS m, i.status, "
            "i.promise_date, i.pending_answer FROM item i WHERE i.kind = 'invoice' "
            "AND i.open_minor > 0 AND i.status <> 'cancelled'"
        )
        q.scope(scope)
    q.add(") x LEFT JOIN (")
    _late(q, scope, on)
    q.add(") l ON l.customer = x.customer) x GROUP BY x.currency, x.wk")
    out: dict[str, Forecast] = {}
    for row in await q.rows():
        cur = row["currency"]
        f = out.get(cur)
        if f is None:
            f = out[cur] = Forecast(
                cur, on, [(first + timedelta(days=7 * k), 0) for k in range(FORECAST_WEEKS)]
            )
        k, amount = int(row["wk"]), _int(row["m"])
        if k < 0:
            f.disputed_minor += amount
        elif k >= FORECAST_WEEKS:
            f.later_minor += amount
        else:
            f.weeks[k] = (f.weeks[k][0], f.weeks[k][1] + amount)
    return dict(sorted(out.items()))


async def collected(scope: Scope, weeks: list[date]) -> dict[str, list[tuple[date, int]]]:
    """Payments received in each week (Monday to Sunday) from these Mondays, per currency,
    in one pass."""
    if not weeks:
        return {}
    q = _Query().add("SELECT i.currency")
    for n, start in enumerate(weeks):
        q.add(
            f", SUM(CASE WHEN i.received_on >= {{}} AND i.received_on <= {{}} "
            f"THEN i.amount_minor ELSE 0 END) AS w{n}",
            start,
            start + timedelta(days=6),
        )
    q.add(
        f" FROM payment i WHERE i.method NOT IN ({NON_CASH_SQL}) "  # noqa: S608
        "AND i.received_on >= {} AND i.received_on <= {}",
        min(weeks),
        max(weeks) + timedelta(days=6),
    )
    q.scope(scope).add(" GROUP BY i.currency")
    return {
        r["currency"]: [(w, _int(r[f"w{n}"])) for n, w in enumerate(weeks)] for r in await q.rows()
    }


def past_weeks(on: date, count: int = 8) -> list[date]:
    """The Mondays of the `count` full weeks before the week of `on`."""
    this_week = week_start(on)
    return [this_week - timedelta(days=7 * k) for k in range(count, 0, -1)]


# ------------------------------------------------------------------ all of it


@dataclass
class Nightly:
    """The heavy figures of one scope and date, per currency: what the nightly job keeps."""

    on: date
    period_months: int
    balances: dict[str, Balances]
    ratios: dict[str, Ratios]
    top: dict[str, list[TopAccount]]
    forecasts: dict[str, Forecast]
    collected: dict[str, list[tuple[date, int]]]
    """Payments received in each of the 8 full weeks before, per currency."""

    @property
    def currencies(self) -> list[str]:
        found = set(self.balances) | set(self.ratios) | set(self.forecasts)
        return sorted(found | set(self.collected))

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Decimal):
                return str(value)
            if isinstance(value, date):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Nightly:
        def dec(value: Any) -> Decimal | None:
            return None if value is None else Decimal(value)

        def day(value: Any) -> date | None:
            return None if value is None else date.fromisoformat(value)

        return cls(
            on=date.fromisoformat(data["on"]),
            period_months=data["period_months"],
            balances={c: Balances(**b) for c, b in data["balances"].items()},
            ratios={
                c: Ratios(
                    **{
                        **r,
                        "on": date.fromisoformat(r["on"]),
                        **{
                            k: dec(r[k])
                            for k in (
                                "dso_countback",
                                "dso_simple",
                                "best_dso",
                                "add",
                                "cei_30",
                                "cei_90",
                            )
                        },
                    }
                )
                for c, r in data["ratios"].items()
            },
            top={
                c: [TopAccount(**{**t, "next_on": day(t["next_on"])}) for t in rows]
                for c, rows in data["top"].items()
            },
            forecasts={
                c: Forecast(
                    currency=f["currency"],
                    made_on=date.fromisoformat(f["made_on"]),
                    weeks=[(date.fromisoformat(w), m) for w, m in f["weeks"]],
                    later_minor=f["later_minor"],
                    disputed_minor=f["disputed_minor"],
                )
                for c, f in data["forecasts"].items()
            },
            collected={
                c: [(date.fromisoformat(w), m) for w, m in weeks]
                for c, weeks in data.get("collected", {}).items()
            },
        )


async def nightly(scope: Scope, on: date, period_months: int = 3) -> Nightly:
    """Everything that needs a pass over the whole ledger."""
    return Nightly(
        on=on,
        period_months=period_months,
        balances=await balances(scope, on),
        ratios=await ratios(scope, on, period_months),
        top=await top_accounts(scope, on),
        forecasts=await forecast(scope, on),
        collected=await collected(scope, past_weeks(on)),
    )
