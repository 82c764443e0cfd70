"""The append-only event log: the proof of good faith.

Rows are only ever inserted. Each row's hash covers its content and the previous
row's hash of the same company, so a row altered or removed by hand breaks the chain
at that point, and `verify()` names it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from piccolo.columns import ForeignKey, Integer, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.table import Table

from receivables.db import atomic, is_postgres
from receivables.ledger.tables import Company, Customer, Item

GENESIS = "0" * 64
_LOCK_NAMESPACE = 7301  # advisory-lock namespace of the history chain


class ActorKind(str, Enum):
    staff = "staff"
    contact = "contact"
    system = "system"
    api = "api"


@dataclass(frozen=True)
class Actor:
    """Who did it: a staff user, a customer's contact, the system or an API key."""

    kind: ActorKind
    label: str
    id: int | None = None

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorKind.system, label)


class HistoryEvent(Table, tablename="history_event"):
    """One thing that happened. Never updated, never deleted."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    occurred_at = Timestamptz()
    actor_kind = Varchar(length=10, choices=ActorKind)
    actor_id = Integer(null=True, default=None)
    actor_label = Varchar(length=254, default="")
    customer = ForeignKey(Customer, null=True, on_delete=OnDelete.restrict, index=True)
    item = ForeignKey(Item, null=True, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=60, index=True)
    details = Text(default="{}", help_text="Canonical JSON, hashed as stored.")
    prev_hash = Varchar(length=64)
    hash = Varchar(length=64)


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot record {type(value).__name__} in history details")


def canonical_json(details: dict[str, Any]) -> str:
    return json.dumps(
        details, sort_keys=True, separators=(",", ":"), default=_json_default, ensure_ascii=False
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The hash of one row given its predecessor's; the field order is part of the format."""
    parts = [
        prev_hash,
        str(row["company"]),
        _stamp(row["occurred_at"]),
        str(row["actor_kind"]),
        "" if row["actor_id"] is None else str(row["actor_id"]),
        row["actor_label"] or "",
        "" if row["customer"] is None else str(row["customer"]),
        "" if row["item"] is None else str(row["item"]),
        row["kind"],
        row["details"],
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


async def lock_chain(company_ids: list[int] | None = None) -> None:
    """Take the companies' chain locks now, in id order (Postgres; a no-op on SQLite).

    `record()` takes its company's lock at its first write, and holds it to the commit. A
    transaction that locks rows and then records can deadlock with one that recorded and then
    wants those rows; transactions that lock many rows (the dunning run) call this first.
    """
    if not is_postgres():
        return
    if company_ids is None:
        company_ids = [r["id"] for r in await Company.select(Company.id)]
    for company_id in sorted(set(company_ids)):
        await HistoryEvent.raw("SELECT pg_advisory_xact_lock({}, {})", _LOCK_NAMESPACE, company_id)


async def record(
    *,
    company_id: int,
    actor: Actor,
    kind: str,
    customer_id: int | None = None,
    item_id: int | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Append one event, in the caller's transaction (or a new one). Returns its id."""
    async with atomic():
        if is_postgres():
            # Serialise writers of one company's chain until this transaction ends.
            await HistoryEvent.raw(
                "SELECT pg_advisory_xact_lock({}, {})", _LOCK_NAMESPACE, company_id
            )
        last = (
            await HistoryEvent.select(HistoryEvent.hash)
            .where(HistoryEvent.company == company_id)
            .order_by(HistoryEvent.id, ascending=False)
            .first()
        )
        occurred = (at or datetime.now(UTC)).astimezone(UTC)
        row: dict[str, Any] = {
            "company": company_id,
            "occurred_at": occurred,
            "actor_kind": actor.kind.value,
            "actor_id": actor.id,
            "actor_label": actor.label[:254],
            "customer": customer_id,
            "item": item_id,
            "kind": kind,
            "details": canonical_json(details or {}),
        }
        prev = last["hash"] if last else GENESIS
        row["prev_hash"] = prev
        row["hash"] = chain_hash(prev, row)
        inserted = await HistoryEvent.insert(HistoryEvent(**row)).returning(HistoryEvent.id)
        return int(inserted[0]["id"])


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_event_id: int | None = None
    company_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_event_id is None


async def verify(batch: int = 5000) -> ChainReport:
    """Walk every company's chain in order; report the first row whose link is broken."""
    checked = 0
    companies = await Company.select(Company.id).order_by(Company.id)
    for company in companies:
        prev = GENESIS
        last_id = 0
        while True:
            rows = (
                await HistoryEvent.select()
                .where((HistoryEvent.company == company["id"]) & (HistoryEvent.id > last_id))
                .order_by(HistoryEvent.id)
                .limit(batch)
            )
            if not rows:
                break
            for row in rows:
                checked += 1
                if row["prev_hash"] != prev:
                    return ChainReport(
                        checked,
                        row["id"],
                        company["id"],
                        "its previous-hash does not match the row before it "
                        "(a row was removed or altered)",
                    )
                if chain_hash(prev, row) != row["hash"]:
                    return ChainReport(
                        checked,
                        row["id"],
                        company["id"],
                        "its content does not match its hash (altered)",
                    )
                prev = row["hash"]
                last_id = row["id"]
    return ChainReport(checked)
