"""The append-only event log: the proof of good faith.

Rows are only ever inserted. Each row's hash covers its content and the previous row's hash
of the same chain, so a row altered or removed by hand breaks the chain at that point, and
`verify()` names it. Checkpoints seal every chain's head with an HMAC under a key that is not
in the database, so a removed tail or a chain rewritten from scratch is found too.

Chains. An event about a customer account is linked into that account's chain (`c<customer>`);
an event about no account (a scenario edited, an import's summary) into its company's chain
(`k<company>`). Events written before the chains were split (column `chain` empty) keep their
company's legacy chain, closed and verified as written; the company chain's first event links
to the legacy chain's last, so the legacy tail is anchored too. `seq` numbers each chain 1, 2,
3..., and is hashed with the row.

Locks (Postgres; on SQLite the database write lock serialises every writer). A chain is
written under its advisory lock, held to the end of the transaction. Every lock of the
history is taken by `_take`, in one order:

    1. claims of a job shared by workers (`claim_accounts`): try-locks, never wait
    2. company gates, by company id: shared by every writer; exclusive for a bulk writer
       touching more than MAX_ACCOUNT_LOCKS accounts of one company (a large import)
    3. company chains, by company id
    4. account chains, by customer id
    5. then rows, in whatever order the service needs

A transaction that locks or writes rows another writer may also change (an allocation, a
webhook, a bank confirmation, an import, a dunning batch) calls `lock_accounts` with every
account it will touch *before* its first row lock; `record()` then finds its chain lock
already held. Writers on different accounts never wait for each other. `record()` alone takes
the chain lock when it is first needed: that is enough for a transaction whose only shared
rows are the account's own and whose history is written before them, or that touches no row
another writer changes. Locks taken out of this order are logged (logger `relance.history`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from piccolo.columns import (
    BigInt,
    ForeignKey,
    Integer,
    OnDelete,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from receivables.db import atomic, current_engine, is_postgres
from receivables.ledger.tables import Company, Customer, Item

if TYPE_CHECKING:
    from receivables.settings import Settings

log = logging.getLogger("relance.history")

GENESIS = "0" * 64

# Advisory-lock namespaces (the first key of pg_advisory_xact_lock(int, int)).
_GATE = 7302
_COMPANY_CHAIN = 7303
_ACCOUNT_CHAIN = 7304
_CLAIM = 7305
_CHECKPOINT = 7306

MAX_ACCOUNT_LOCKS = 500
"""Accounts of one company a transaction locks one by one; past it, the company's gate is
taken exclusively instead (Postgres's lock table holds max_locks_per_transaction x
max_connections locks in all: 6,400 by default)."""


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
    chain = Varchar(
        length=24,
        null=True,
        default=None,
        help_text="'c<customer>' (an account's chain) or 'k<company>' (company-wide events); "
        "empty on events of the legacy company chain, written before chains were split.",
    )
    seq = Integer(null=True, default=None, help_text="Position in the chain, from 1; hashed.")


class HistoryCheckpoint(Table, tablename="history_checkpoint"):
    """A seal over the head of every chain at one moment, under an HMAC whose key is not in
    the database, chained to the seal before it. Never updated, never deleted."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    number = Integer(unique=True, help_text="1, 2, 3...: a number missing is a seal removed.")
    made_at = Timestamptz()
    made_by = Varchar(length=100, default="")
    chains = Integer(help_text="Chains sealed (heads stored with this seal or earlier ones).")
    events = BigInt(help_text="Events in those chains.")
    changed = Integer(help_text="Heads stored with this seal: the chains that changed.")
    state = Varchar(length=64, help_text="SHA-256 over every chain's head, sorted by chain.")
    prev_hmac = Varchar(length=64)
    hmac = Varchar(length=64)


class HistoryCheckpointHead(Table, tablename="history_checkpoint_head"):
    """One chain's head as a seal saw it (stored when it changed since the seal before)."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    checkpoint = ForeignKey(HistoryCheckpoint, on_delete=OnDelete.restrict, index=True)
    chain = Varchar(length=24, help_text="'c<customer>', 'k<company>' or 'L<company>' (legacy).")
    seq = Integer(help_text="Events in the chain: the head's position.")
    event = Integer(help_text="The head event's id (a plain number: it outlives the row).")
    hash = Varchar(length=64)


# ------------------------------------------------------------------ hashing


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
    """The hash of one row given its predecessor's; the field order is part of the format.

    Legacy rows (no chain) hash their content; chained rows hash their chain and position too,
    so a row cannot be moved to another chain or place."""
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
    if row.get("chain"):
        parts[1:1] = ["v2", row["chain"], str(row["seq"])]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def chain_of(company_id: int, customer_id: int | None) -> str:
    """The chain an event goes to: its account's, else its company's."""
    return f"c{customer_id}" if customer_id is not None else f"k{company_id}"


def _legacy(company_id: int) -> str:
    return f"L{company_id}"


# ------------------------------------------------------------------ locks


@dataclass(frozen=True, order=True)
class _Lock:
    tier: int
    """1 company gate, 2 company chain, 3 account chain (claims never wait: no tier)."""
    key: int
    shared: bool = False

    @property
    def namespace(self) -> int:
        return {1: _GATE, 2: _COMPANY_CHAIN, 3: _ACCOUNT_CHAIN}[self.tier]

    def __str__(self) -> str:
        name = {1: "gate", 2: "company chain", 3: "account chain"}[self.tier]
        return f"{name} {self.key}" + (" (shared)" if self.shared else "")


# (transaction, locks requested in it): to log locks taken out of order.
_requested: ContextVar[tuple[object, set[tuple[int, int]]] | None] = ContextVar(
    "history_locks", default=None
)


def _ids(values: Iterable[int]) -> str:
    return ",".join(str(int(v)) for v in values)


async def _take(locks: Iterable[_Lock]) -> None:
    """Take advisory locks, in the documented order, in one statement (Postgres only).

    Taking a lock the transaction holds already is immediate. A lock that sorts before one
    this transaction asked for earlier breaks the order: it is taken, and logged."""
    wanted: dict[tuple[int, int], _Lock] = {}
    for lock in locks:
        known = wanted.get((lock.tier, lock.key))
        if known is None or known.shared:  # exclusive wins over shared
            wanted[(lock.tier, lock.key)] = lock
    if not wanted:
        return
    ordered = [wanted[k] for k in sorted(wanted)]
    transaction = current_engine().current_transaction.get()
    state = _requested.get()
    if transaction is None:  # outside a transaction the locks end with the statement
        state = (None, set())
    elif state is None or state[0] is not transaction:
        state = (transaction, set())
        _requested.set(state)
    asked = state[1]
    if asked:
        highest = max(asked)
        late = [lock for lock in ordered if (lock.tier, lock.key) not in asked]
        if late and (late[0].tier, late[0].key) < highest:
            log.warning(
                "history locks out of order: %s taken after %s",
                ", ".join(map(str, late)),
                _Lock(*highest),
            )
    asked.update(wanted)
    namespaces = _ids(lock.namespace for lock in ordered)
    keys = _ids(lock.key for lock in ordered)
    shared = ",".join("true" if lock.shared else "false" for lock in ordered)
    # unnest yields its rows in array order: the locks are taken in that order.
    await HistoryEvent.raw(
        "SELECT CASE WHEN s THEN pg_advisory_xact_lock_shared(n, k) "  # noqa: S608
        "ELSE pg_advisory_xact_lock(n, k) END "
        f"FROM unnest(ARRAY[{namespaces}]::int[], ARRAY[{keys}]::int[], "
        f"ARRAY[{shared}]::bool[]) AS t(n, k, s)"
    )


def _event_locks(company_id: int, customer_id: int | None) -> list[_Lock]:
    locks = [_Lock(1, company_id, shared=True)]
    if customer_id is None:
        locks.append(_Lock(2, company_id))
    else:
        locks.append(_Lock(3, customer_id))
    return locks


async def lock_accounts(
    customer_ids: Iterable[int] = (),
    *,
    company_id: int | None = None,
    company_wide: Iterable[int] = (),
) -> None:
    """Take the chain locks of these accounts now, before the transaction locks or writes any
    row: the one entry point for writers that change rows other writers also change.

    `company_id`: the company of every account (looked up when not given). `company_wide`:
    companies whose company-wide chain the transaction writes too. More than
    MAX_ACCOUNT_LOCKS accounts of one company take that company's gate exclusively instead.
    Postgres only (SQLite's write lock already serialises writers). Call it inside the
    transaction (`atomic()`): the locks are held until it ends."""
    if not is_postgres():
        return
    accounts = sorted({int(c) for c in customer_ids})
    by_company: dict[int, list[int]] = {}
    if company_id is not None:
        by_company[company_id] = accounts
    elif accounts:
        for row in await Customer.raw(
            f"SELECT id, company FROM customer WHERE id IN ({_ids(accounts)})"  # noqa: S608
        ):
            by_company.setdefault(row["company"], []).append(row["id"])
    wide = {int(c) for c in company_wide}
    locks: list[_Lock] = []
    for company in sorted(set(by_company) | wide):
        mine = by_company.get(company, [])
        bulk = len(mine) > MAX_ACCOUNT_LOCKS
        locks.append(_Lock(1, company, shared=not bulk))
        if company in wide:
            locks.append(_Lock(2, company))
        if not bulk:
            locks.extend(_Lock(3, c) for c in mine)
    await _take(locks)


async def claim_accounts(customer_ids: Sequence[int]) -> list[int]:
    """For a job that workers share (the dunning run): the accounts among these that no other
    worker of the job holds, claimed until the transaction ends, their chain locks taken (as
    `lock_accounts`). The others are being done by the worker that claimed them. Claims are
    try-locks between the job's workers only: an account busy with a webhook is claimed all
    the same, and its chain lock waited for."""
    ids = sorted({int(c) for c in customer_ids})
    if not ids or not is_postgres():
        return ids
    rows = await HistoryEvent.raw(
        f"SELECT k FROM unnest(ARRAY[{_ids(ids)}]::int[]) AS k "  # noqa: S608
        f"WHERE pg_try_advisory_xact_lock({_CLAIM}, k)"
    )
    claimed = sorted(int(r["k"]) for r in rows)
    await lock_accounts(claimed)
    return claimed


async def lock_chain(company_ids: list[int] | None = None) -> None:
    """Kept for callers of the single-chain design: with companies, their company-wide chains
    (`lock_accounts(company_wide=...)`); without, nothing (there is no global chain any more;
    lock the batch's accounts with `lock_accounts` or `claim_accounts` instead)."""
    if company_ids:
        await lock_accounts(company_wide=company_ids)


# ------------------------------------------------------------------ writing


async def _legacy_head(company_id: int) -> str:
    last = (
        await HistoryEvent.select(HistoryEvent.hash)
        .where((HistoryEvent.company == company_id) & HistoryEvent.chain.is_null())
        .order_by(HistoryEvent.id, ascending=False)
        .first()
    )
    return last["hash"] if last else GENESIS


@dataclass(frozen=True)
class Event:
    """One event to append with `record_many` (the arguments of `record`)."""

    company_id: int
    actor: Actor
    kind: str
    customer_id: int | None = None
    item_id: int | None = None
    details: dict[str, Any] | None = None
    at: datetime | None = None


_COLUMNS = (
    "company",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "customer",
    "item",
    "kind",
    "details",
    "chain",
    "seq",
    "prev_hash",
    "hash",
)
_INSERT_ROWS = 500
"""Rows per INSERT statement (13 parameters each: SQLite allows 32,766 per statement)."""
_HEADS_PER_QUERY = 200


async def _heads(chains: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Each chain's last (position, hash), in one statement per _HEADS_PER_QUERY chains: a
    backward step of the (chain, seq) index for each."""
    heads: dict[str, tuple[int, str]] = {}
    for start in range(0, len(chains), _HEADS_PER_QUERY):
        part = chains[start : start + _HEADS_PER_QUERY]
        one = (
            "SELECT * FROM (SELECT chain, seq, hash FROM history_event "
            "WHERE chain = {} ORDER BY seq DESC LIMIT 1) AS h"
        )
        sql = " UNION ALL ".join(one.replace("AS h", f"AS h{i}") for i in range(len(part)))
        for row in await HistoryEvent.raw(sql, *part):
            heads[row["chain"]] = (int(row["seq"]), row["hash"])
    return heads


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
    """Append one event to its chain, in the caller's transaction (or a new one); its id."""
    event = Event(company_id, actor, kind, customer_id, item_id, details, at)
    return (await record_many([event]))[0]


async def record_many(events: Sequence[Event]) -> list[int]:
    """Append these events to their chains in the caller's transaction (or a new one), in
    the order given; their ids, in that order.

    The locks of every chain concerned are taken in one statement (in the documented order),
    the heads read in one, the links computed here in order, and the rows written in one
    INSERT (per _INSERT_ROWS): three statements for a batch instead of three per event."""
    if not events:
        return []
    async with atomic():
        if is_postgres():
            # Held until the transaction ends; already held when the caller locked its accounts.
            await _take(lock for e in events for lock in _event_locks(e.company_id, e.customer_id))
        chains = sorted({chain_of(e.company_id, e.customer_id) for e in events})
        heads = await _heads(chains)
        rows: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for e in events:
            chain = chain_of(e.company_id, e.customer_id)
            if chain in heads:
                seq, prev = heads[chain]
                seq += 1
            else:
                seq = 1
                prev = await _legacy_head(e.company_id) if e.customer_id is None else GENESIS
            row: dict[str, Any] = {
                "company": e.company_id,
                "occurred_at": (e.at or now).astimezone(UTC),
                "actor_kind": e.actor.kind.value,
                "actor_id": e.actor.id,
                "actor_label": e.actor.label[:254],
                "customer": e.customer_id,
                "item": e.item_id,
                "kind": e.kind,
                "details": canonical_json(e.details or {}),
                "chain": chain,
                "seq": seq,
                "prev_hash": prev,
            }
            row["hash"] = chain_hash(prev, row)
            heads[chain] = (seq, row["hash"])
            rows.append(row)
        ids: dict[str, int] = {}
        for start in range(0, len(rows), _INSERT_ROWS):
            part = rows[start : start + _INSERT_ROWS]
            values = ", ".join("(" + ", ".join(["{}"] * len(_COLUMNS)) + ")" for _ in part)
            inserted = await HistoryEvent.raw(
                f"INSERT INTO history_event ({', '.join(_COLUMNS)}) "  # noqa: S608
                f"VALUES {values} RETURNING id, hash",
                *[row[c] for row in part for c in _COLUMNS],
            )
            # Matched by hash (unique: it covers the chain and position), not by the order
            # RETURNING happens to give.
            ids.update({r["hash"]: int(r["id"]) for r in inserted})
        return [ids[row["hash"]] for row in rows]


# ------------------------------------------------------------------ verifying


@dataclass(frozen=True)
class Head:
    """A chain's last event: its position (= the number of events), id and hash."""

    chain: str
    seq: int
    event: int
    hash: str
    checkpoint: int | None = None
    """The seal that recorded it (for sealed heads)."""
    sealed_at: datetime | None = None


@dataclass(frozen=True)
class Problem:
    """What is wrong, where. Kinds: altered, removed, inserted, truncated, rewritten,
    chain removed, seal (a checkpoint itself is missing, altered or not ours)."""

    kind: str
    chain: str
    event_id: int | None
    message: str

    def __str__(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else "-"
        return f"{self.kind}: {where} (chain {self.chain or '-'}): {self.message}"


@dataclass
class ChainReport:
    checked: int = 0
    chains: int = 0
    problems: list[Problem] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    """The latest seal in the database."""
    seals_checked: bool = False
    """False when no key was given: seals compared with the chains but not authenticated."""
    unsealed: int = 0
    """Events written after the latest seal (they are proved by the next one)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def broken_event_id(self) -> int | None:
        return next((p.event_id for p in self.problems if p.event_id is not None), None)

    @property
    def reason(self) -> str:
        return self.problems[0].message if self.problems else ""


def _row_problems(
    chain: str, row: dict[str, Any], expected_seq: int, prev: str
) -> tuple[list[Problem], int]:
    """The problems of one chained row; returns them and the next expected position."""
    out: list[Problem] = []
    seq = int(row["seq"])
    if seq > expected_seq:
        missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
        out.append(
            Problem(
                "removed", chain, row["id"], f"event(s) at position {missing} before it are gone"
            )
        )
    elif seq < expected_seq:
        out.append(
            Problem("inserted", chain, row["id"], f"a second event at position {seq} (added)")
        )
    elif row["prev_hash"] != prev and seq == 1 and chain.startswith("k"):
        out.append(
            Problem(
                "removed",
                chain,
                row["id"],
                "the company chain no longer starts where the company's legacy chain ends "
                "(legacy events were removed or added)",
            )
        )
    elif row["prev_hash"] != prev:
        out.append(
            Problem(
                "altered",
                chain,
                row["id"],
                "its previous-hash does not match the event before it "
                "(that event, or this link, was changed)",
            )
        )
    if chain_hash(row["prev_hash"], row) != row["hash"]:
        out.append(
            Problem("altered", chain, row["id"], "its content does not match its hash (altered)")
        )
    return out, max(expected_seq, seq + 1)


def _against_seal(
    chain: str, sealed: Head | None, seq: int, event: int | None, digest: str
) -> Problem | None:
    """A chain's end (seq, event, hash at the sealed position or None) against its seal."""
    if sealed is None:
        return None
    name = _seal_name(sealed)
    if seq < sealed.seq:
        have = f"{seq} (last: event {event})" if seq else "none"
        return Problem(
            "truncated",
            chain,
            sealed.event,
            f"{name} sealed {sealed.seq} events ending with event {sealed.event}; "
            f"the database has {have}: the tail was removed",
        )
    if digest != sealed.hash:
        return Problem(
            "rewritten",
            chain,
            sealed.event,
            f"{name} sealed event {sealed.event} (position {sealed.seq}) with hash "
            f"{sealed.hash[:12]}...; that position now hashes to {digest[:12]}...: "
            "the chain was rewritten",
        )
    return None


def _seal_name(head: Head) -> str:
    when = f" of {head.sealed_at:%Y-%m-%d %H:%M:%S} UTC" if head.sealed_at else ""
    return f"checkpoint #{head.checkpoint}{when}"


class _Walk:
    """One chain walked in order, checked link by link and against its seal."""

    def __init__(self, chain: str, genesis: str, sealed: Head | None, legacy: bool = False):
        self.chain, self.sealed, self.legacy = chain, sealed, legacy
        self.prev = genesis
        self.expected = 1
        self.seq = 0
        self.last: dict[str, Any] | None = None
        self.at_seal: str | None = None
        self.problems: list[Problem] = []

    def add(self, row: dict[str, Any]) -> None:
        if self.legacy:
            self.seq += 1
            if row["prev_hash"] != self.prev:
                self.problems.append(
                    Problem(
                        "removed",
                        self.chain,
                        row["id"],
                        "its previous-hash does not match the row before it "
                        "(a row was removed or altered)",
                    )
                )
            elif chain_hash(self.prev, row) != row["hash"]:
                self.problems.append(
                    Problem(
                        "altered",
                        self.chain,
                        row["id"],
                        "its content does not match its hash (altered)",
                    )
                )
        else:
            found, self.expected = _row_problems(self.chain, row, self.expected, self.prev)
            self.problems.extend(found)
            self.seq = int(row["seq"])
        if self.sealed is not None and self.seq == self.sealed.seq:
            self.at_seal = row["hash"]
        self.prev = row["hash"]
        self.last = row

    def end(self) -> Head | None:
        if self.sealed is not None and self.legacy and self.seq > self.sealed.seq:
            self.problems.append(
                Problem(
                    "inserted",
                    self.chain,
                    self.last["id"] if self.last else None,
                    f"{_seal_name(self.sealed)} closed this legacy chain at {self.sealed.seq} "
                    f"events; it now has {self.seq}: events were appended",
                )
            )
        if self.sealed is not None and not self.problems:
            found = _against_seal(
                self.chain,
                self.sealed,
                self.seq,
                self.last["id"] if self.last else None,
                self.at_seal or "",
            )
            if found:
                self.problems.append(found)
        if self.last is None:
            return None
        return Head(self.chain, self.seq, int(self.last["id"]), self.last["hash"])


async def _legacy_rows(company_id: int, batch: int):
    last_id = 0
    while True:
        rows = (
            await HistoryEvent.select()
            .where(
                (HistoryEvent.company == company_id)
                & HistoryEvent.chain.is_null()
                & (HistoryEvent.id > last_id)
            )
            .order_by(HistoryEvent.id)
            .limit(batch)
        )
        if not rows:
            return
        for row in rows:
            yield row
        last_id = rows[-1]["id"]


async def _chained_rows(batch: int, chains: Sequence[str] | None = None, since: int = 0):
    """Chained rows by (chain, seq); of some chains only (from position `since`), or all."""
    if chains is not None:
        for chain in chains:
            rows = (
                await HistoryEvent.select()
                .where((HistoryEvent.chain == chain) & (HistoryEvent.seq >= since))
                .order_by(HistoryEvent.seq)
            )
            for row in rows:
                yield row
        return
    after: tuple[str, int] | None = None
    while True:
        where = "chain IS NOT NULL"
        args: list[Any] = []
        if after is not None:
            where += " AND (chain > {} OR (chain = {} AND seq > {}))"
            args = [after[0], after[0], after[1]]
        rows = await HistoryEvent.raw(
            f"SELECT * FROM history_event WHERE {where} "  # noqa: S608
            f"ORDER BY chain, seq LIMIT {int(batch)}",
            *args,
        )
        if not rows:
            return
        for row in rows:
            yield row
        after = (rows[-1]["chain"], int(rows[-1]["seq"]))


async def _legacy_companies() -> list[int]:
    rows = await HistoryEvent.raw(
        "SELECT DISTINCT company FROM history_event WHERE chain IS NULL ORDER BY company"
    )
    return [int(r["company"]) for r in rows]


def _genesis(chain: str, legacy: dict[str, Head]) -> str:
    if chain.startswith("k"):
        head = legacy.get(_legacy(int(chain[1:])))
        return head.hash if head else GENESIS
    return GENESIS


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    # Raw SELECTs on SQLite give timestamps as text.
    if isinstance(row["occurred_at"], str):
        row["occurred_at"] = datetime.fromisoformat(row["occurred_at"])
    return row


async def _walk_all(
    sealed: dict[str, Head], batch: int
) -> tuple[dict[str, Head], list[Problem], int]:
    """Every chain, legacy ones first; returns the heads, the problems, the rows checked."""
    heads: dict[str, Head] = {}
    problems: list[Problem] = []
    checked = 0
    for company_id in await _legacy_companies():
        name = _legacy(company_id)
        walk = _Walk(name, GENESIS, sealed.get(name), legacy=True)
        async for row in _legacy_rows(company_id, batch):
            checked += 1
            walk.add(row)
        head = walk.end()
        problems.extend(walk.problems)
        if head:
            heads[name] = head
    current: _Walk | None = None

    def close(walk: _Walk) -> None:
        head = walk.end()
        problems.extend(walk.problems)
        if head:
            heads[walk.chain] = head

    async for row in _chained_rows(batch):
        row = _normalise(row)
        checked += 1
        if current is None or current.chain != row["chain"]:
            if current is not None:
                close(current)
            chain = row["chain"]
            current = _Walk(chain, _genesis(chain, heads), sealed.get(chain))
        current.add(row)
    if current is not None:
        close(current)
    for chain in sorted(set(sealed) - set(heads)):
        head = sealed[chain]
        problems.append(
            Problem(
                "chain removed",
                chain,
                head.event,
                f"{_seal_name(head)} sealed {head.seq} events ending with event {head.event}; "
                "the database has none of them",
            )
        )
    return heads, problems, checked


# ------------------------------------------------------------------ checkpoints

_LINE = re.compile(
    r"relance-history-checkpoint v1 #(?P<number>\d+) (?P<made_at>\S+) chains=(?P<chains>\d+) "
    r"events=(?P<events>\d+) changed=(?P<changed>\d+) state=(?P<state>[0-9a-f]{64}) "
    r"prev=(?P<prev>[0-9a-f]{64}) hmac=(?P<hmac>[0-9a-f]{64})"
)


class HistoryBroken(Exception):
    """The history does not match its chains or its seals: nothing was sealed."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:5]))


@dataclass(frozen=True)
class Checkpoint:
    number: int
    made_at: datetime
    chains: int
    events: int
    changed: int
    state: str
    prev_hmac: str
    hmac: str
    made_by: str = ""

    def message(self) -> str:
        """What the HMAC covers; also the exported line, without its hmac."""
        return (
            f"relance-history-checkpoint v1 #{self.number} "
            f"{self.made_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} "
            f"chains={self.chains} events={self.events} changed={self.changed} "
            f"state={self.state} prev={self.prev_hmac}"
        )

    def line(self) -> str:
        """One line to keep outside the database (mailed to the admins, printed, archived)."""
        return f"{self.message()} hmac={self.hmac}"

    @classmethod
    def parse(cls, line: str) -> Checkpoint | None:
        found = _LINE.search(line)
        if found is None:
            return None
        return cls(
            number=int(found["number"]),
            made_at=datetime.strptime(found["made_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
            chains=int(found["chains"]),
            events=int(found["events"]),
            changed=int(found["changed"]),
            state=found["state"],
            prev_hmac=found["prev"],
            hmac=found["hmac"],
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Checkpoint:
        made_at = row["made_at"]
        if isinstance(made_at, str):
            made_at = datetime.fromisoformat(made_at)
        return cls(
            number=int(row["number"]),
            made_at=made_at,
            chains=int(row["chains"]),
            events=int(row["events"]),
            changed=int(row["changed"]),
            state=row["state"],
            prev_hmac=row["prev_hmac"],
            hmac=row["hmac"],
            made_by=row.get("made_by") or "",
        )


def checkpoint_key(secret_key: str) -> bytes:
    """The seals' key: derived from SECRET_KEY for this one purpose (HMAC-SHA256 with a
    label), so it is never the key that signs links or sessions, and never in the database."""
    if not secret_key:
        raise ValueError("SECRET_KEY is needed to seal or authenticate history checkpoints")
    return hmac.new(secret_key.encode(), b"relance/history-checkpoint/v1", "sha256").digest()


def _seal(key: bytes, checkpoint: Checkpoint) -> str:
    return hmac.new(key, checkpoint.message().encode(), "sha256").hexdigest()


def _state(heads: dict[str, Head]) -> str:
    digest = hashlib.sha256()
    for chain in sorted(heads):
        head = heads[chain]
        digest.update(f"{chain} {head.seq} {head.event} {head.hash}\n".encode())
    return digest.hexdigest()


async def _checkpoints() -> list[Checkpoint]:
    rows = await HistoryCheckpoint.select().order_by(HistoryCheckpoint.number)
    return [Checkpoint.from_row(r) for r in rows]


async def _sealed_heads() -> dict[str, Head]:
    """Each chain's head as the latest seal that saw it change recorded it."""
    rows = await HistoryCheckpointHead.raw(
        "SELECT h.chain, h.seq, h.event, h.hash, c.number, c.made_at "
        "FROM history_checkpoint_head h "
        "JOIN (SELECT chain, MAX(checkpoint) AS checkpoint FROM history_checkpoint_head "
        "GROUP BY chain) m ON m.chain = h.chain AND m.checkpoint = h.checkpoint "
        "JOIN history_checkpoint c ON c.id = h.checkpoint"
    )
    heads = {}
    for r in rows:
        made_at = r["made_at"]
        if isinstance(made_at, str):
            made_at = datetime.fromisoformat(made_at)
        heads[r["chain"]] = Head(
            r["chain"], int(r["seq"]), int(r["event"]), r["hash"], int(r["number"]), made_at
        )
    return heads


def _seal_problems(
    checkpoints: list[Checkpoint], sealed: dict[str, Head], key: bytes | None
) -> list[Problem]:
    """The seals themselves: numbered without gaps, chained, authentic, and the heads stored
    with them still those the latest one covers."""
    problems: list[Problem] = []
    prev = GENESIS
    for n, cp in enumerate(checkpoints, start=1):
        if cp.number != n:
            problems.append(
                Problem(
                    "seal", "", None, f"checkpoint #{n} is missing (removed): #{cp.number} follows"
                )
            )
            break
        if cp.prev_hmac != prev:
            problems.append(
                Problem("seal", "", None, f"checkpoint #{cp.number} does not follow #{n - 1}")
            )
        if key is not None and not hmac.compare_digest(_seal(key, cp), cp.hmac):
            problems.append(
                Problem(
                    "seal",
                    "",
                    None,
                    f"checkpoint #{cp.number} is not authentic (altered, or sealed with "
                    "another SECRET_KEY)",
                )
            )
        prev = cp.hmac
    if checkpoints and not problems:
        latest = checkpoints[-1]
        events = sum(h.seq for h in sealed.values())
        if (
            _state(_bare(sealed)) != latest.state
            or len(sealed) != latest.chains
            or events != latest.events
        ):
            problems.append(
                Problem(
                    "seal",
                    "",
                    None,
                    f"the chain heads stored with the checkpoints no longer give "
                    f"checkpoint #{latest.number}'s state (its heads were altered or removed)",
                )
            )
    return problems


def _bare(heads: dict[str, Head]) -> dict[str, Head]:
    return {c: Head(h.chain, h.seq, h.event, h.hash) for c, h in heads.items()}


def _against_lines(
    lines: Sequence[str], checkpoints: list[Checkpoint], key: bytes | None
) -> list[Problem]:
    problems: list[Problem] = []
    by_number = {cp.number: cp for cp in checkpoints}
    latest = f"latest there: #{checkpoints[-1].number}" if checkpoints else "there is none"
    seen = 0
    for text in lines:
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        kept = Checkpoint.parse(text)
        if kept is None:
            problems.append(Problem("seal", "", None, f"not a checkpoint line: {text[:60]!r}"))
            continue
        seen += 1
        if key is not None and not hmac.compare_digest(_seal(key, kept), kept.hmac):
            problems.append(
                Problem(
                    "seal",
                    "",
                    None,
                    f"the kept line of checkpoint #{kept.number} is not authentic "
                    "(altered, or from another installation)",
                )
            )
            continue
        stored = by_number.get(kept.number)
        if stored is None:
            problems.append(
                Problem(
                    "seal",
                    "",
                    None,
                    f"checkpoint #{kept.number} of {kept.made_at:%Y-%m-%d %H:%M} UTC "
                    f"({kept.events} events) is not in the database ({latest}): "
                    "checkpoints were removed",
                )
            )
        elif stored.hmac != kept.hmac or stored.message() != kept.message():
            problems.append(
                Problem(
                    "seal",
                    "",
                    None,
                    f"checkpoint #{kept.number} in the database differs from the kept line "
                    "(replaced)",
                )
            )
    if not seen and not problems:
        problems.append(Problem("seal", "", None, "no checkpoint line in the file"))
    return problems


async def verify(
    settings: Settings | None = None, *, against: Sequence[str] = (), batch: int = 5000
) -> ChainReport:
    """Every chain, link by link, against the latest seal: names each row altered, removed
    or added, each tail removed and each chain rewritten. With the settings, the seals are
    authenticated (their HMAC); `against`: lines kept from earlier checkpoints, which must
    still be in the database as they were."""
    key = checkpoint_key(settings.secret_key) if settings and settings.secret_key else None
    checkpoints = await _checkpoints()
    sealed = await _sealed_heads()
    report = ChainReport(checkpoint=checkpoints[-1] if checkpoints else None)
    report.seals_checked = key is not None
    report.problems.extend(_seal_problems(checkpoints, sealed, key))
    heads, problems, report.checked = await _walk_all(sealed, batch)
    report.problems.extend(problems)
    report.problems.extend(_against_lines(against, checkpoints, key) if against else [])
    report.chains = len(heads)
    report.unsealed = sum(h.seq for h in heads.values()) - sum(
        min(h.seq, heads[c].seq) for c, h in sealed.items() if c in heads
    )
    return report


async def _current_heads() -> dict[str, Head]:
    """Every chain's last event now (one statement for the chained ones: one snapshot)."""
    heads: dict[str, Head] = {}
    for row in await HistoryEvent.raw(
        "SELECT e.company, e.id, e.hash, n.count FROM history_event e JOIN ("
        "SELECT company, MAX(id) AS id, COUNT(*) AS count FROM history_event "
        "WHERE chain IS NULL GROUP BY company) n ON n.id = e.id"
    ):
        name = _legacy(int(row["company"]))
        heads[name] = Head(name, int(row["count"]), int(row["id"]), row["hash"])
    for row in await HistoryEvent.raw(
        "SELECT e.chain, e.seq, e.id, e.hash FROM history_event e JOIN ("
        "SELECT chain, MAX(seq) AS seq FROM history_event WHERE chain IS NOT NULL "
        "GROUP BY chain) n ON n.chain = e.chain AND n.seq = e.seq"
    ):
        heads[row["chain"]] = Head(row["chain"], int(row["seq"]), int(row["id"]), row["hash"])
    return heads


async def _changed_problems(
    chain: str, old: Head | None, new: Head, legacy: dict[str, Head], batch: int
) -> list[Problem]:
    """A chain that changed since its seal: from the sealed head (or its start) to `new`."""
    if chain.startswith("L"):
        walk = _Walk(chain, GENESIS, old, legacy=True)
        async for row in _legacy_rows(int(chain[1:]), batch):
            walk.add(row)
        walk.end()
        return walk.problems
    if old is not None and new.seq < old.seq:
        found = _against_seal(chain, old, new.seq, new.event, "")
        return [found] if found else []
    walk = _Walk(chain, _genesis(chain, legacy), old)
    if old is not None:
        # What precedes the sealed head is proved by it: start the walk there.
        walk.expected, walk.seq = old.seq, old.seq - 1
    async for row in _chained_rows(batch, [chain], since=old.seq if old else 1):
        row = _normalise(row)
        if int(row["seq"]) > new.seq:
            break
        if old is not None and int(row["seq"]) == old.seq:
            walk.prev = row["prev_hash"]
        walk.add(row)
    walk.end()
    return walk.problems


async def checkpoint_all(settings: Settings, *, made_by: str = "", batch: int = 5000) -> Checkpoint:
    """Seal every chain's head now (after each daily run, and on demand).

    Chains that changed since the last seal are verified from there first, and the stored
    seals authenticated: a history that does not match raises HistoryBroken and nothing is
    sealed, so a removed tail is never laundered into a new seal."""
    key = checkpoint_key(settings.secret_key)
    async with atomic():
        if is_postgres():
            await HistoryEvent.raw(f"SELECT pg_advisory_xact_lock({_CHECKPOINT}, 0)")
        checkpoints = await _checkpoints()
        sealed = await _sealed_heads()
        problems = _seal_problems(checkpoints, sealed, key)
        current = await _current_heads()
        legacy = {c: h for c, h in current.items() if c.startswith("L")}
        changed: list[Head] = []
        for chain in sorted(current):
            head, old = current[chain], sealed.get(chain)
            if old is not None and (old.seq, old.hash) == (head.seq, head.hash):
                continue
            problems.extend(await _changed_problems(chain, old, head, legacy, batch))
            changed.append(head)
        for chain in sorted(set(sealed) - set(current)):
            head = sealed[chain]
            problems.append(
                Problem(
                    "chain removed",
                    chain,
                    head.event,
                    f"{_seal_name(head)} sealed {head.seq} events; the database has none",
                )
            )
        if problems:
            raise HistoryBroken(problems)
        state = _bare(sealed) | {h.chain: h for h in changed}
        previous = checkpoints[-1] if checkpoints else None
        draft = Checkpoint(
            number=(previous.number + 1) if previous else 1,
            made_at=datetime.now(UTC).replace(microsecond=0),
            chains=len(state),
            events=sum(h.seq for h in state.values()),
            changed=len(changed),
            state=_state(state),
            prev_hmac=previous.hmac if previous else GENESIS,
            hmac="",
            made_by=made_by[:100],
        )
        cp = replace(draft, hmac=_seal(key, draft))
        rows = await HistoryCheckpoint.insert(
            HistoryCheckpoint(
                number=cp.number,
                made_at=cp.made_at,
                made_by=cp.made_by,
                chains=cp.chains,
                events=cp.events,
                changed=cp.changed,
                state=cp.state,
                prev_hmac=cp.prev_hmac,
                hmac=cp.hmac,
            )
        ).returning(HistoryCheckpoint.id)
        checkpoint_id = int(rows[0]["id"])
        for start in range(0, len(changed), 1000):
            await HistoryCheckpointHead.insert(
                *[
                    HistoryCheckpointHead(
                        checkpoint=checkpoint_id,
                        chain=h.chain,
                        seq=h.seq,
                        event=h.event,
                        hash=h.hash,
                    )
                    for h in changed[start : start + 1000]
                ]
            )
    log.info("history checkpoint #%s: %s chains, %s events", cp.number, cp.chains, cp.events)
    return cp
