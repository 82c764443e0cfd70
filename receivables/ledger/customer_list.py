"""The back office's customer list: search, filters, sorts and pages over every customer.

Ranking by overdue amount or oldest due date reads only the partial index
`item_open_invoice_holds` (open, uncancelled invoices with the columns of their holds;
index-only on Postgres): one aggregate grouped by customer ranks the customers that have
something overdue (or open), and only
the page's customers are then joined. Customers with nothing overdue (or open) follow, by
name. Customer-level filters are applied inside the aggregate, so a search ranks only the
matching customers' items. Then one query gives the page's exact figures per currency and
one its pending answers: a page costs the same few queries whatever its size or depth.

The amount used for ranking is the overdue amount in the customer's company's currency
(a CASE over the few companies, so no join per item row); rows show every currency
exactly and money is never added across currencies.

Every value reaches SQL as a placeholder; the statements are assembled from constant
fragments only (hence the S608 exemption below).
"""
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from typing import Any

from receivables.ledger.statement import not_held_sql, promise_floor
from receivables.ledger.tables import Company, Customer, ItemKind, ItemStatus, PayerProfile
from receivables.money import Money

PAGE_SIZE = 50
MAX_PAGE = 2000


class Sort(str, Enum):
    overdue = "overdue"
    """Largest overdue amount first."""
    oldest_due = "oldest_due"
    """Oldest unpaid due date first."""
    name = "name"


@dataclass(frozen=True)
class CustomerFilters:
    q: str = ""
    """Part of the name, the reference or a contact's email."""
    collector_id: int | None = None
    unassigned: bool = False
    """Only customers without a collector (wins over collector_id)."""
    payer_profile: str = ""
    overdue_days: int | None = None
    """Only customers with an invoice overdue by more than this many days."""
    pending_feedback: bool = False
    blocked: bool | None = None
    sort: Sort = Sort.overdue
    page: int = 1

    @property
    def offset(self) -> int:
        return (max(1, min(self.page, MAX_PAGE)) - 1) * PAGE_SIZE


@dataclass
class CustomerRow:
    id: int
    ref: str
    name: str
    payer_profile: str
    blocked: bool
    currency: str
    collector_id: int | None
    collector_name: str
    oldest_due: date | None
    overdue: dict[str, Money] = field(default_factory=dict)
    open: dict[str, Money] = field(default_factory=dict)
    pending_feedback: int = 0
    days_late: int = 0

    @property
    def overdue_amounts(self) -> list[Money]:
        return [m for _, m in sorted(self.overdue.items()) if not m.is_zero()]

    @property
    def open_amounts(self) -> list[Money]:
        return [m for _, m in sorted(self.open.items()) if not m.is_zero()]


@dataclass
class CustomerPage:
    rows: list[CustomerRow]
    page: int
    has_next: bool

    @property
    def first_index(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1


# The aggregate's WHERE: exactly the rows of the partial index item_open_invoice_holds.
_OPEN_INVOICE = (
    f"i.kind = '{ItemKind.invoice.value}' AND i.open_minor > 0 "
    f"AND i.status <> '{ItemStatus.cancelled.value}'"
)
PENDING_FEEDBACK_SQL = "SELECT 1 FROM feedback f WHERE f.customer = c.id AND f.status = 'pending'"
"""Correlated on `c`; the feedback table belongs to the portal (receivables.portal)."""


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


class _Sql:
    """A statement built in pieces with Piccolo's `{}` placeholders and their values."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, text: str, *args: Any) -> _Sql:
        self.parts.append(text)
        self.args.extend(args)
        return self

    @property
    def text(self) -> str:
        return " ".join(self.parts)


def _customer_conditions(f: CustomerFilters) -> tuple[list[str], list[Any]]:
    """Conditions on `c` (customer) alone, with their values, in placeholder order."""
    where: list[str] = []
    args: list[Any] = []
    q = f.q.strip()
    if q:
        pattern = _like_pattern(q)
        # A UNION of ids, not OR EXISTS: each side can use its own (trigram) index.
        where.append(
            "c.id IN (SELECT cs.id FROM customer cs WHERE lower(cs.name) LIKE {} ESCAPE '\\' "
            "OR lower(cs.ref) LIKE {} ESCAPE '\\' "
            "UNION SELECT ct.customer FROM contact ct WHERE lower(ct.email) LIKE {} ESCAPE '\\')"
        )
        args += [pattern, pattern, pattern]
    if f.unassigned:
        where.append("c.collector IS NULL")
    elif f.collector_id is not None:
        where.append("c.collector = {}")
        args.append(f.collector_id)
    if f.payer_profile:
        where.append("c.payer_profile = {}")
        args.append(f.payer_profile)
    if f.blocked is not None:
        where.append("c.blocked = {}")
        args.append(f.blocked)
    if f.pending_feedback:
        where.append(f"EXISTS ({PENDING_FEEDBACK_SQL})")
    return where, args


_COLUMNS = (
    "c.id, c.ref, c.name, c.payer_profile, c.blocked, c.currency, c.collector, "
    "u.name AS collector_name"
)


async def _company_currency_case() -> tuple[str, list[Any]]:
    """`CASE i.company WHEN 1 THEN 'EUR' ... END` as SQL with its values (a few companies)."""
    rows = await Company.select(Company.id, Company.currency).order_by(Company.id)
    if not rows:
        return "NULL", []
    if len({r["currency"] for r in rows}) == 1:
        return "{}", [rows[0]["currency"]]
    whens = " ".join("WHEN {} THEN {}" for _ in rows)
    args: list[Any] = []
    for r in rows:
        args += [r["id"], r["currency"]]
    return f"CASE i.company {whens} END", args


async def _ranked(
    f: CustomerFilters, today: date, where: list[str], args: list[Any], offset: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Part one of a ranked list: customers with something overdue (or open), best first.

    Returns the rows at `offset` and, when the ranked part ends on or before this page,
    how many customers it holds (so the unranked part can continue after it)."""
    sql = _Sql()
    ranked_by_overdue = f.sort == Sort.overdue
    if ranked_by_overdue:
        currency, currency_args = await _company_currency_case()
        sql.add(
            "SELECT i.customer AS customer_id, MIN(i.due_date) AS oldest_due, "
            f"SUM(CASE WHEN i.currency = {currency} THEN i.open_minor ELSE 0 END) AS rank_minor "
            f"FROM item i WHERE {_OPEN_INVOICE} AND i.due_date < {{}} AND {not_held_sql()}",
            *currency_args,
            today,
            promise_floor(today),
        )
    else:
        sql.add(
            "SELECT i.customer AS customer_id, MIN(i.due_date) AS oldest_due, 0 AS rank_minor "
            f"FROM item i WHERE {_OPEN_INVOICE}"
        )
    if where:
        sql.add(
            "AND i.customer IN (SELECT c.id FROM customer c WHERE " + " AND ".join(where) + ")",
            *args,
        )
    sql.add("GROUP BY i.customer")
    if f.overdue_days is not None:
        # Overdue by more than N days: an invoice past due that is not on hold, whatever the sort.
        oldest_asking = (
            "MIN(i.due_date)"
            if ranked_by_overdue
            else f"MIN(CASE WHEN {not_held_sql()} THEN i.due_date END)"
        )
        args_having: list[Any] = [] if ranked_by_overdue else [promise_floor(today)]
        sql.add(
            f"HAVING {oldest_asking} < {{}}",
            *args_having,
            today - timedelta(days=max(0, f.overdue_days)),
        )
    order = (
        "rank_minor DESC, oldest_due, customer_id"
        if ranked_by_overdue
        else "oldest_due, customer_id"
    )
    page = _Sql().add(f"WITH agg AS ({sql.text})", *sql.args)
    page.add(
        f"SELECT {_COLUMNS}, a.oldest_due FROM "
        f"(SELECT * FROM agg ORDER BY {order} LIMIT {{}} OFFSET {{}}) a "
        "JOIN customer c ON c.id = a.customer_id "
        "LEFT JOIN staff_user u ON u.id = c.collector "
        f"ORDER BY {order.replace('customer_id', 'c.id')}",
        limit,
        offset,
    )
    rows = await Customer.raw(page.text, *page.args)
    if len(rows) == limit:
        return rows, None
    if rows:
        return rows, offset + len(rows)
    counted = await Customer.raw(
        f"WITH agg AS ({sql.text}) SELECT COUNT(*) AS n FROM agg", *sql.args
    )
    return rows, int(counted[0]["n"])


async def _unranked(
    f: CustomerFilters, today: date, where: list[str], args: list[Any], offset: int, limit: int
) -> list[dict[str, Any]]:
    """Customers by name: all of them, or (part two) those with nothing overdue / open."""
    conditions, values = list(where), list(args)
    if f.sort == Sort.overdue:
        conditions.append(
            f"NOT EXISTS (SELECT 1 FROM item i WHERE i.customer = c.id AND {_OPEN_INVOICE} "
            f"AND i.due_date < {{}} AND {not_held_sql()})"
        )
        values += [today, promise_floor(today)]
    elif f.sort == Sort.oldest_due:
        conditions.append(
            f"NOT EXISTS (SELECT 1 FROM item i WHERE i.customer = c.id AND {_OPEN_INVOICE})"
        )
    elif f.overdue_days is not None:
        conditions.append(
            f"c.id IN (SELECT i.customer FROM item i WHERE {_OPEN_INVOICE} AND i.due_date < {{}} "
            f"AND {not_held_sql()})"
        )
        values += [today - timedelta(days=max(0, f.overdue_days)), promise_floor(today)]
    # The page's ids first (index-only on customer_name_id however deep the page), then
    # only those rows.
    sql = _Sql().add("SELECT c.id FROM customer c")
    if conditions:
        sql.add("WHERE " + " AND ".join(conditions), *values)
    sql.add("ORDER BY c.name, c.id LIMIT {} OFFSET {}", limit, offset)
    sql = _Sql().add(
        f"SELECT {_COLUMNS}, NULL AS oldest_due FROM ({sql.text}) p "
        "JOIN customer c ON c.id = p.id LEFT JOIN staff_user u ON u.id = c.collector "
        "ORDER BY c.name, c.id",
        *sql.args,
    )
    return await Customer.raw(sql.text, *sql.args)


async def list_customers(f: CustomerFilters, today: date) -> CustomerPage:
    """One page of customers for the filters, with their figures."""
    where, args = _customer_conditions(f)
    page = max(1, min(f.page, MAX_PAGE))
    offset = (page - 1) * PAGE_SIZE
    want = PAGE_SIZE + 1  # one more tells whether a next page exists
    if f.sort == Sort.name:
        raw = await _unranked(f, today, where, args, offset, want)
    else:
        raw, ranked_count = await _ranked(f, today, where, args, offset, want)
        if ranked_count is not None and f.overdue_days is None:
            rest = await _unranked(
                f, today, where, args, max(0, offset - ranked_count), want - len(raw)
            )
            raw = [*raw, *rest]
    has_next = len(raw) > PAGE_SIZE
    raw = raw[:PAGE_SIZE]
    rows = [
        CustomerRow(
            id=r["id"],
            ref=r["ref"],
            name=r["name"],
            payer_profile=r["payer_profile"],
            blocked=bool(r["blocked"]),
            currency=r["currency"],
            collector_id=r["collector"],
            collector_name=r["collector_name"] or "",
            oldest_due=_as_date(r.get("oldest_due")),
        )
        for r in raw
    ]
    await _fill_figures(rows, today)
    return CustomerPage(rows=rows, page=page, has_next=has_next)


async def _fill_figures(rows: list[CustomerRow], today: date) -> None:
    """Exact per-currency overdue and open amounts, and pending feedback, for one page."""
    if not rows:
        return
    by_id = {r.id: r for r in rows}
    ids = list(by_id)
    marks = ", ".join("{}" for _ in ids)
    # The statement's definitions: overdue is past due and not on hold; open is what the
    # customer owes net of open credit notes and unapplied payments.
    figures = await Customer.raw(
        "SELECT i.customer AS customer_id, i.currency, "
        "MIN(CASE WHEN i.kind = 'invoice' THEN i.due_date END) AS oldest_due, "
        "SUM(CASE WHEN i.kind <> 'credit_note' AND i.due_date < {} AND "
        f"{not_held_sql()} THEN i.open_minor ELSE 0 END) AS overdue_minor, "
        "SUM(CASE WHEN i.kind = 'credit_note' THEN -i.open_minor ELSE i.open_minor END) "
        "AS open_minor "
        "FROM item i WHERE i.open_minor > 0 AND i.status <> 'cancelled' "
        f"AND i.customer IN ({marks}) GROUP BY i.customer, i.currency",
        today,
        promise_floor(today),
        *ids,
    )
    unapplied = await Customer.raw(
        "SELECT p.customer AS customer_id, p.currency, SUM(p.unapplied_minor) AS minor "
        f"FROM payment p WHERE p.unapplied_minor > 0 AND p.customer IN ({marks}) "
        "GROUP BY p.customer, p.currency",
        *ids,
    )
    for u in unapplied:
        row = by_id[u["customer_id"]]
        cur = u["currency"]
        row.open[cur] = row.open.get(cur, Money.zero(cur)) - Money.from_minor(int(u["minor"]), cur)
    for f in figures:
        row = by_id[f["customer_id"]]
        cur = f["currency"]
        row.overdue[cur] = Money.from_minor(int(f["overdue_minor"]), cur)
        row.open[cur] = row.open.get(cur, Money.zero(cur)) + Money.from_minor(
            int(f["open_minor"]), cur
        )
        oldest = _as_date(f["oldest_due"])
        if oldest and (row.oldest_due is None or oldest < row.oldest_due):
            row.oldest_due = oldest
    for row in rows:
        row.days_late = max(0, (today - row.oldest_due).days) if row.oldest_due else 0
    pending = await Customer.raw(
        "SELECT f.customer AS customer_id, COUNT(*) AS n FROM feedback f "
        f"WHERE f.status = 'pending' AND f.customer IN ({marks}) GROUP BY f.customer",
        *ids,
    )
    for p in pending:
        by_id[p["customer_id"]].pending_feedback = int(p["n"])


def profile_choices() -> list[tuple[str, str]]:
    return [(p.value, p.value.replace("_", " ").capitalize()) for p in PayerProfile]
