"""Stripe webhook events, the dj-stripe way: verify, store once, answer; the worker applies.

1. `receive`: the signature and timestamp of the raw body are checked by the SDK
   (`signatures`); a refused body writes nothing. The event is stored under its unique
   Stripe id (looked for, then `INSERT ... ON CONFLICT DO NOTHING`) and the delivery is
   answered at once: `stored`, `duplicate` (that id is stored already: nothing changes) or
   `ignored` (a type Relance does not handle, stored as such).
2. `apply_due` (the worker's `stripe_events` job) claims due events in batches, oldest first
   (`FOR UPDATE SKIP LOCKED` on Postgres, the write lock on SQLite), each claim lasting
   CLAIM so no other worker takes them meanwhile (a worker stopped in the middle gives its
   claim back). Each event's objects come from its signed body when their state is final,
   else are re-read from Stripe (`handlers`), a few at a time, outside any transaction.
3. Then one transaction per batch: the accounts of all its events are locked at once
   (`settlement.lock_payers`, chain before rows), the events are marked processed with a
   guarded UPDATE (an event another worker applied meanwhile is skipped, so each is applied
   once), and each is applied in its own savepoint, in the order Stripe created them. An
   event that fails is rolled back to its savepoint alone: its error, attempts and next
   retry (exponential backoff) are recorded on it and the others go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from receivables import clock
from receivables.db import atomic, current_engine, is_postgres
from receivables.errors import ReceivablesError
from receivables.payments import settlement
from receivables.payments.gateway import StripeGateway
from receivables.payments.handlers import HANDLERS, Handler, intent_of
from receivables.payments.signatures import verify
from receivables.payments.tables import StripeEvent

Status = StripeEvent.Status
log = logging.getLogger("relance.payments")

BATCH = 50
"""Events claimed and applied per transaction. Each is a savepoint, a subtransaction: past 64
in one transaction Postgres's snapshots overflow their cache of them (every session then
looks subtransactions up on disk); 50 costs no throughput against 100 (measured)."""
CLAIM = timedelta(minutes=10)
"""How long a claim keeps other workers off its events (a worker that died loses them then):
longer than reading a batch from Stripe can take."""
READS_AT_ONCE = 8
"""Objects re-read from Stripe concurrently by one batch."""
BASE_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600
_DUE = (Status.received.value, Status.failed.value)


def _due_status() -> Any:
    """Events waiting to be applied (new, or failed and waiting for their retry)."""
    return StripeEvent.status.is_in(list(_DUE))


class ProcessingFailed(ReceivablesError):
    """The event is stored but could not be applied; it is retried later."""


@dataclass(frozen=True)
class Outcome:
    event_id: str
    result: str
    """On delivery: stored, duplicate (already stored) or ignored (a type Relance does not
    handle). From `process`: processed, duplicate (already applied) or ignored."""


async def receive(payload: bytes, signature: str | None, *, secret: str) -> Outcome:
    """One webhook delivery: verified (by the SDK) and stored, not applied. Raises
    SignatureRefused."""
    event = verify(payload, signature, secret)
    event_id = str(event["id"])[:255]
    handled = str(event["type"]) in HANDLERS
    if not await store(event, payload):
        return Outcome(event_id, "duplicate")
    return Outcome(event_id, "stored" if handled else "ignored")


async def store(event: dict, payload: bytes) -> bool:
    """Keep the event under its id; a second delivery leaves the first row as it is. True
    when it was new. A type without a handler is stored as ignored (the worker skips it)."""
    event_id = str(event["id"])[:255]
    # Looked for first: an INSERT of an id whose row a worker's batch has locked would wait
    # for that batch to commit (the unique index must know whether its version stays).
    if await StripeEvent.raw("SELECT 1 FROM stripe_event WHERE event_id = {}", event_id):
        return False
    obj = (event.get("data") or {}).get("object") or {}
    kind = str(event["type"])[:100]
    handled = kind in HANDLERS
    now = clock.now()
    rows = await StripeEvent.raw(
        "INSERT INTO stripe_event (event_id, type, object_id, livemode, created, received_at, "
        "payload, status, attempts, last_error, processed_at, next_attempt_at) "
        "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, 0, '', {}, {}) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING id",
        event_id,
        kind,
        str(obj.get("id") or "")[:255] if isinstance(obj, dict) else "",
        bool(event.get("livemode")),
        datetime.fromtimestamp(int(event.get("created") or 0), UTC),
        now,
        payload.decode("utf-8"),
        (Status.received if handled else Status.ignored).value,
        None if handled else now,
        now,
    )
    return bool(rows)


# ------------------------------------------------------------------ applying


@dataclass
class Applied:
    """What a call to the worker's apply step did."""

    claimed: int = 0
    processed: int = 0
    failed: int = 0
    ignored: int = 0
    skipped: int = 0
    """Claimed, but applied by another worker meanwhile (its claim had run out)."""
    errors: dict[str, BaseException] = field(default_factory=dict)
    """By event id, the failures of this call."""

    def __iadd__(self, other: Applied) -> Applied:
        self.claimed += other.claimed
        self.processed += other.processed
        self.failed += other.failed
        self.ignored += other.ignored
        self.skipped += other.skipped
        self.errors.update(other.errors)
        return self


@dataclass
class _Claimed:
    id: int
    event_id: str
    type: str
    created: datetime
    attempts: int
    event: dict[str, Any]
    handler: Handler | None = None
    objects: Any = None


async def apply_due(
    gateway: StripeGateway, *, limit: int = BATCH, now: datetime | None = None
) -> Applied:
    """Claim up to `limit` due events and apply them (one batch); what it did."""
    now = now or clock.now()
    claimed = await _claim(limit, now)
    try:
        return await _apply(claimed, gateway, now)
    except BaseException:  # the worker is stopping: the claim goes back at once
        await asyncio.shield(_give_back(claimed, now))
        raise


async def apply_all(
    gateway: StripeGateway, *, limit: int = BATCH, now: datetime | None = None
) -> Applied:
    """Batch after batch until none is due: the worker's `stripe_events` job. While events
    keep arriving it keeps going, each batch taking what came meanwhile (small when the
    worker keeps up, up to `limit` when it falls behind)."""
    total = Applied()
    while True:
        done = await apply_due(gateway, limit=limit, now=now)
        total += done
        if not done.claimed:
            return total


async def process(event_id: str, gateway: StripeGateway) -> Outcome:
    """Apply one stored event now, whoever else is trying at the same moment (the same steps
    as a batch of one). Raises ProcessingFailed when it failed (recorded on the event)."""
    now = clock.now()
    claimed = await _claim(1, now, event_id=event_id)
    if not claimed:
        row = (
            await StripeEvent.select(StripeEvent.status)
            .where(StripeEvent.event_id == event_id)
            .first()
        )
        if row is None:
            raise ProcessingFailed(f"event {event_id} is not stored")
        return Outcome(event_id, "ignored" if row["status"] == Status.ignored else "duplicate")
    try:
        done = await _apply(claimed, gateway, now)
    except BaseException:
        await asyncio.shield(_give_back(claimed, now))
        raise
    if done.errors:
        exc = done.errors[event_id]
        raise ProcessingFailed(f"event {event_id} ({claimed[0].type}): {exc}") from exc
    result = "processed" if done.processed else "ignored" if done.ignored else "duplicate"
    return Outcome(event_id, result)


async def _claim(limit: int, now: datetime, *, event_id: str | None = None) -> list[_Claimed]:
    """Take due events (or the one named, due or not) for CLAIM, oldest first."""
    if event_id is None:
        where: Any = _due_status() & (StripeEvent.next_attempt_at <= now)
        # Looked for before any lock, in SQL (the worker asks several times a second): an
        # idle worker never takes SQLite's write lock.
        due = await StripeEvent.raw(
            "SELECT id FROM stripe_event WHERE status IN ({}, {}) AND next_attempt_at <= {} "
            "LIMIT 1",
            *_DUE,
            now,
        )
        if not due:
            return []
    else:
        where = _due_status() & (StripeEvent.event_id == event_id)
    async with atomic():
        due = (
            StripeEvent.select(StripeEvent.id)
            .where(where)
            .order_by(StripeEvent.created, StripeEvent.id)
            .limit(limit)
        )
        if is_postgres():
            due = due.lock_rows("UPDATE", skip_locked=event_id is None)
        ids = [r["id"] for r in await due]
        if not ids:
            return []
        rows = (
            await StripeEvent.update(
                {
                    StripeEvent.next_attempt_at: now + CLAIM,
                    StripeEvent.attempts: StripeEvent.attempts + 1,
                }
            )
            .where(StripeEvent.id.is_in(ids))
            .returning(
                StripeEvent.id,
                StripeEvent.event_id,
                StripeEvent.type,
                StripeEvent.created,
                StripeEvent.attempts,
                StripeEvent.payload,
            )
        )
    claimed = [
        _Claimed(
            id=r["id"],
            event_id=r["event_id"],
            type=r["type"],
            created=r["created"],
            attempts=r["attempts"],
            event=json.loads(r["payload"]),
            handler=HANDLERS.get(r["type"]),
        )
        for r in rows
    ]
    claimed.sort(key=lambda c: (c.created, c.id))  # the order Stripe created them
    return claimed


async def _give_back(claimed: list[_Claimed], now: datetime) -> None:
    """Events claimed at `now` and still waiting: due again, the attempt not counted."""
    if not claimed:
        return
    await StripeEvent.update(
        {StripeEvent.next_attempt_at: now, StripeEvent.attempts: StripeEvent.attempts - 1}
    ).where(
        StripeEvent.id.is_in([c.id for c in claimed])
        & _due_status()
        & (StripeEvent.next_attempt_at == now + CLAIM)  # still this claim
    )


async def _apply(claimed: list[_Claimed], gateway: StripeGateway, now: datetime) -> Applied:
    done = Applied(claimed=len(claimed))
    failures: list[tuple[_Claimed, BaseException]] = []
    unhandled = [c for c in claimed if c.handler is None]
    if unhandled:  # stored before its type was handled, or no longer handled
        await StripeEvent.update(
            {StripeEvent.status: Status.ignored.value, StripeEvent.processed_at: now}
        ).where(StripeEvent.id.is_in([c.id for c in unhandled]) & _due_status())
        done.ignored += len(unhandled)

    # Objects from the signed bodies when final, else from Stripe: outside any transaction.
    reads = asyncio.Semaphore(READS_AT_ONCE)

    async def read(c: _Claimed) -> bool:
        assert c.handler is not None
        try:
            async with reads:
                c.objects = await c.handler.read(gateway, c.event)
        except Exception as exc:  # Stripe unreachable, an object it does not know...
            failures.append((c, exc))
            return False
        return True

    handled = [c for c in claimed if c.handler is not None]
    outcome = await asyncio.gather(*(read(c) for c in handled))
    ready = [c for c, ok in zip(handled, outcome, strict=True) if ok]
    if ready:
        try:
            applied, failed = await _apply_read(ready, now)
        except Exception as exc:  # the batch's transaction itself failed: all of it again
            log.exception("stripe events: a batch of %d failed as a whole", len(ready))
            failures.extend((c, exc) for c in ready)
        else:
            done.processed += len(applied)
            done.skipped += len(ready) - len(applied) - len(failed)
            for c, error in failed:
                done.failed += 1
                done.errors[c.event_id] = error
    for c, error in failures:
        await _record_failure(c, error, now, status_guard=True)
        done.failed += 1
        done.errors[c.event_id] = error
    return done


async def _apply_read(
    ready: list[_Claimed], now: datetime
) -> tuple[list[_Claimed], list[tuple[_Claimed, BaseException]]]:
    """The batch's transaction: accounts locked, events marked, each applied in a savepoint."""
    applied: list[_Claimed] = []
    failed: list[tuple[_Claimed, BaseException]] = []
    async with atomic():
        intents = [i for c in ready if (i := intent_of(c.objects)) is not None]
        payers = await settlement.lock_payers(intents)  # before any row lock
        mine = {
            r["id"]
            for r in await StripeEvent.update(
                {
                    StripeEvent.status: Status.processed.value,
                    StripeEvent.processed_at: clock.now(),
                    StripeEvent.last_error: "",
                }
            )
            .where(StripeEvent.id.is_in([c.id for c in ready]) & _due_status())
            .returning(StripeEvent.id)
        }
        transaction = current_engine().current_transaction.get()
        assert transaction is not None
        with settlement.payers_locked(payers):
            for c in ready:
                if c.id not in mine:
                    continue  # applied by another worker meanwhile
                assert c.handler is not None
                savepoint = await transaction.savepoint()
                try:
                    await c.handler.apply(c.event, c.objects)
                except Exception as exc:
                    await savepoint.rollback_to()
                    failed.append((c, exc))
                    continue
                await savepoint.release()
                applied.append(c)
        for c, error in failed:
            await _record_failure(c, error, now, status_guard=False)
    return applied, failed


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failed ones: 30 s, 1 min, 2 min... 1 h."""
    seconds = BASE_BACKOFF_SECONDS * 2 ** max(0, min(attempts - 1, 12))
    return timedelta(seconds=min(seconds, MAX_BACKOFF_SECONDS))


async def _record_failure(
    c: _Claimed, exc: BaseException, now: datetime, *, status_guard: bool
) -> None:
    log.warning(
        "stripe event %s (%s) failed, attempt %d: %s: %s",
        c.event_id,
        c.type,
        c.attempts,
        type(exc).__name__,
        exc,
        exc_info=exc if not isinstance(exc, ReceivablesError) else None,
    )
    where: Any = StripeEvent.id == c.id
    if status_guard:  # outside the batch's transaction: never undo an event applied since
        where &= _due_status()
    await StripeEvent.update(
        {
            StripeEvent.status: Status.failed.value,
            StripeEvent.processed_at: None,
            StripeEvent.last_error: f"{type(exc).__name__}: {exc}"[:2000],
            StripeEvent.next_attempt_at: now + backoff(c.attempts),
        }
    ).where(where)
