"""The daily run's schedule: each company's run starts once per date, whatever the number of
workers.

Every worker looks every few minutes (`run_scheduled`): a company whose hour has come in its
time zone (on a business day if so configured; see `due_now`) and whose run for that date
has not finished is claimed by inserting its `dunning_schedule` row, one per company and
date, with ON CONFLICT DO NOTHING: one worker wins, the others see the row and pass. The
claim is a lease that its worker renews while it runs; a worker that died leaves a lease
that expires, and the next worker to look takes the run over (an UPDATE guarded by the
expiry, so only one does). Finishing marks the row. The run itself is idempotent, so a
run taken over from a worker that was only slow does no harm either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import date, datetime, timedelta
from functools import lru_cache

from piccolo.columns import Date, ForeignKey, Integer, Serial, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from receivables.clock import now as clock_now
from receivables.dunning.run import RunReport, due_now, finished, run_dunning
from receivables.ledger.tables import Company
from receivables.settings import Settings

log = logging.getLogger("relance.dunning")

LEASE = timedelta(minutes=10)
"""How long a claim holds without being renewed; past it, another worker takes the run."""
RENEW_EVERY = LEASE / 4


class DunningSchedule(Table, tablename="dunning_schedule"):
    """A company's scheduled run for one date: who claimed it, until when, when it finished."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    slot = Varchar(length=40, unique=True, help_text="Company id and run date: the claim.")
    company = ForeignKey(Company, null=False, on_delete=OnDelete.cascade, index=True)
    run_on = Date()
    claimed_by = Varchar(length=200, help_text="host:pid:random of the worker running it.")
    claimed_at = Timestamptz()
    lease_until = Timestamptz(help_text="Another worker may take the run over after this.")
    attempts = Integer(default=1, help_text="Claims, takeovers included.")
    finished_at = Timestamptz(null=True, default=None)


@lru_cache(maxsize=1)
def worker_name() -> str:
    """This process, as claims name it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


def _slot(company_id: int, on: date) -> str:
    return f"{company_id}:{on.isoformat()}"


async def claim(company_id: int, on: date, worker: str, now: datetime | None = None) -> bool:
    """Claim the company's run for `on`: True for the one worker that gets it."""
    now = now or clock_now()
    slot = _slot(company_id, on)
    inserted = (
        await DunningSchedule.insert(
            DunningSchedule(
                slot=slot,
                company=company_id,
                run_on=on,
                claimed_by=worker,
                claimed_at=now,
                lease_until=now + LEASE,
            )
        )
        .on_conflict(target=DunningSchedule.slot, action="DO NOTHING")
        .returning(DunningSchedule.id)
    )
    if inserted:
        return True
    # Taken: over, unless its worker let the lease expire before finishing.
    taken_over = (
        await DunningSchedule.update(
            {
                DunningSchedule.claimed_by: worker,
                DunningSchedule.claimed_at: now,
                DunningSchedule.lease_until: now + LEASE,
                DunningSchedule.attempts: DunningSchedule.attempts + 1,
            }
        )
        .where(
            (DunningSchedule.slot == slot)
            & DunningSchedule.finished_at.is_null()
            & (DunningSchedule.lease_until < now)
        )
        .returning(DunningSchedule.id)
    )
    if taken_over:
        log.warning("dunning run %s of company %s taken over by %s", on, company_id, worker)
    return bool(taken_over)


async def renew(company_id: int, on: date, worker: str, now: datetime | None = None) -> bool:
    """Extend the lease; False when the claim is no longer this worker's."""
    now = now or clock_now()
    renewed = (
        await DunningSchedule.update({DunningSchedule.lease_until: now + LEASE})
        .where(
            (DunningSchedule.slot == _slot(company_id, on))
            & (DunningSchedule.claimed_by == worker)
            & DunningSchedule.finished_at.is_null()
        )
        .returning(DunningSchedule.id)
    )
    return bool(renewed)


async def finish(company_id: int, on: date, worker: str, now: datetime | None = None) -> None:
    await DunningSchedule.update({DunningSchedule.finished_at: now or clock_now()}).where(
        (DunningSchedule.slot == _slot(company_id, on)) & (DunningSchedule.claimed_by == worker)
    )


async def release(company_id: int, on: date, worker: str, now: datetime | None = None) -> None:
    """Give the claim up (the run failed): the next worker to look starts it again."""
    await DunningSchedule.update({DunningSchedule.lease_until: now or clock_now()}).where(
        (DunningSchedule.slot == _slot(company_id, on))
        & (DunningSchedule.claimed_by == worker)
        & DunningSchedule.finished_at.is_null()
    )


async def _keep_claim(company_id: int, on: date, worker: str) -> None:
    while True:
        await asyncio.sleep(RENEW_EVERY.total_seconds())
        try:
            if not await renew(company_id, on, worker):
                log.warning(
                    "dunning run %s of company %s: claim lost to another worker", on, company_id
                )
                return
        except Exception:  # a database hiccup: try again at the next renewal
            log.exception("dunning run %s of company %s: lease not renewed", on, company_id)


async def run_claimed(company_id: int, on: date, settings: Settings, worker: str) -> RunReport:
    """The company's run for `on`, by the worker holding its claim, renewing it meanwhile."""
    keeper = asyncio.create_task(_keep_claim(company_id, on, worker))
    try:
        report = await run_dunning(on, settings, triggered_by="worker", company_id=company_id)
    except BaseException:
        await asyncio.shield(release(company_id, on, worker))
        raise
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    await finish(company_id, on, worker)
    return report


async def run_scheduled(settings: Settings, worker: str | None = None) -> list[RunReport]:
    """The worker's job: each company's run on its own date from its hour, started by one
    worker only (a run that did not finish is started again)."""
    worker = worker or worker_name()
    reports = []
    for company in await Company.select(
        Company.id, Company.timezone, Company.dunning_hour, Company.dunning_business_days
    ).order_by(Company.id):
        today = due_now(company)
        if today is None or await finished(today, company["id"]):
            continue
        if await claim(company["id"], today, worker):
            reports.append(await run_claimed(company["id"], today, settings, worker))
    if reports:
        await checkpoint_history(settings, "daily run")
    return reports


async def checkpoint_history(settings: Settings, made_by: str) -> None:
    """Seal the history's chain heads after a run (an HMAC kept with SECRET_KEY, not in the
    database); a damaged history is refused and logged, never sealed."""
    from receivables import history

    try:
        checkpoint = await history.checkpoint_all(settings, made_by=made_by)
    except history.HistoryBroken as exc:
        log.error("history checkpoint refused: %s", exc)
        return
    log.info("history checkpoint %s", checkpoint.line())
