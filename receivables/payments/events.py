"""Stripe webhook events, the dj-stripe way: verify, store once, process in one transaction.

1. The signature and timestamp of the raw body are checked; a refused body writes nothing.
2. The event is stored under its unique Stripe id before anything else (a duplicate
   delivery finds it there).
3. Its handler re-reads the object from Stripe, then, in one transaction, the event row is
   claimed (`status <> 'processed'`, so a concurrent duplicate waits on the row and then
   finds it processed) and the handler's writes are made. Any error rolls all of it back;
   the error is recorded on the event and the caller answers 500 so Stripe retries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from receivables.db import atomic
from receivables.errors import ReceivablesError
from receivables.payments.gateway import StripeGateway
from receivables.payments.handlers import HANDLERS
from receivables.payments.signatures import verify
from receivables.payments.tables import StripeEvent

Status = StripeEvent.Status


class ProcessingFailed(ReceivablesError):
    """The event is stored but could not be applied; Stripe should deliver it again."""


@dataclass(frozen=True)
class Outcome:
    event_id: str
    result: str
    """processed, duplicate (already applied) or ignored (a type Relance does not handle)."""


async def receive(
    payload: bytes,
    signature: str | None,
    *,
    secret: str,
    gateway: StripeGateway,
    now: float | None = None,
) -> Outcome:
    """One webhook delivery, start to end. Raises SignatureRefused or ProcessingFailed."""
    event = verify(payload, signature, secret, now=now)
    await store(event, payload)
    return await process(str(event["id"]), gateway)


async def store(event: dict, payload: bytes) -> None:
    """Keep the event under its id; a second delivery leaves the first row as it is."""
    obj = (event.get("data") or {}).get("object") or {}
    await StripeEvent.insert(
        StripeEvent(
            event_id=str(event["id"])[:255],
            type=str(event["type"])[:100],
            object_id=str(obj.get("id") or "")[:255] if isinstance(obj, dict) else "",
            livemode=bool(event.get("livemode")),
            created=datetime.fromtimestamp(int(event.get("created") or 0), UTC),
            payload=payload.decode("utf-8"),
        )
    ).on_conflict(target=StripeEvent.event_id, action="DO NOTHING")


async def process(event_id: str, gateway: StripeGateway) -> Outcome:
    """Apply a stored event once, whoever else is trying at the same moment."""
    row = (
        await StripeEvent.select(StripeEvent.status, StripeEvent.type, StripeEvent.payload)
        .where(StripeEvent.event_id == event_id)
        .first()
    )
    if row is None:
        raise ProcessingFailed(f"event {event_id} is not stored")
    if row["status"] in (Status.processed.value, Status.ignored.value):
        return Outcome(event_id, "duplicate")
    handler = HANDLERS.get(row["type"])
    if handler is None:
        await StripeEvent.update(
            {StripeEvent.status: Status.ignored.value, StripeEvent.processed_at: _now()}
        ).where((StripeEvent.event_id == event_id) & (StripeEvent.status != Status.processed))
        return Outcome(event_id, "ignored")
    event = json.loads(row["payload"])
    try:
        fetched = await handler.fetch(gateway, event)
        async with atomic():
            claimed = (
                await StripeEvent.update(
                    {
                        StripeEvent.status: Status.processed.value,
                        StripeEvent.processed_at: _now(),
                        StripeEvent.attempts: StripeEvent.attempts + 1,
                        StripeEvent.last_error: "",
                    }
                )
                .where(
                    (StripeEvent.event_id == event_id)
                    & (StripeEvent.status != Status.processed.value)
                )
                .returning(StripeEvent.id)
            )
            if claimed:
                await handler.apply(event, fetched)
    except Exception as exc:
        await _record_failure(event_id, exc)
        raise ProcessingFailed(f"event {event_id} ({row['type']}): {exc}") from exc
    return Outcome(event_id, "processed" if claimed else "duplicate")


async def _record_failure(event_id: str, exc: Exception) -> None:
    await StripeEvent.update(
        {
            StripeEvent.status: Status.failed.value,
            StripeEvent.attempts: StripeEvent.attempts + 1,
            StripeEvent.last_error: f"{type(exc).__name__}: {exc}"[:2000],
        }
    ).where((StripeEvent.event_id == event_id) & (StripeEvent.status != Status.processed.value))


def _now() -> datetime:
    return datetime.now(UTC)
