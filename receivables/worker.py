"""The background worker: runs each registered job on its period until stopped.

Jobs are coroutines taking the settings; the mail outbox, the daily dunning run and the
Stripe events register here as they are built. On Postgres several workers may run: the
outbox claims its messages with row locks, the daily run is claimed once per company and
date (`receivables.dunning.schedule`) and its batches claim their accounts, Stripe events
are claimed in batches with row locks (`receivables.payments.events`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace

from receivables.settings import Settings

log = logging.getLogger("relance.worker")


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: float
    run: Callable[[Settings], Awaitable[None]]


JOBS: list[Job] = []


async def _loop(job: Job, settings: Settings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await job.run(settings)
        except Exception:  # one failing run must not end the worker
            log.exception("job %s failed; retrying next period", job.name)
        try:
            await asyncio.wait_for(stop.wait(), timeout=job.every_seconds)
        except TimeoutError:
            pass


async def run_forever(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    log.info("worker started with %d job(s): %s", len(JOBS), ", ".join(j.name for j in JOBS))
    tasks = [asyncio.create_task(_loop(job, settings, stop)) for job in JOBS]
    try:
        await stop.wait()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        from receivables.documents.pdf import stop_renderers

        await asyncio.to_thread(stop_renderers)  # letters and attachments render in children


async def _send_mail(settings: Settings) -> None:
    from receivables.mail.outbox import send_due

    await send_due(settings)


JOBS.append(Job("outbox", 2.0, _send_mail))


async def _dunning_run(settings: Settings) -> None:
    from receivables.dunning.schedule import run_scheduled

    await run_scheduled(settings)


# Each company's run, once a day from its hour, by one worker; checked every 5 minutes so a
# stopped worker catches up and a dead worker's run is taken over.
JOBS.append(Job("dunning", 300.0, _dunning_run))


_stripe = SimpleNamespace(gateway=None)  # the process's Stripe gateway, made on first use


async def _stripe_events(settings: Settings) -> None:
    from receivables.payments.events import apply_all
    from receivables.payments.gateway import make_gateway

    if _stripe.gateway is None or _stripe.gateway.settings is not settings:
        _stripe.gateway = make_gateway(settings)
    await apply_all(_stripe.gateway)


# Webhooks only store Stripe's events: they are applied here, in batches, as they arrive
# (each run applies until none is due; a failed event waits for its retry time). Looked for
# ten times a second: one indexed query each, and the portal's page waits for the result.
JOBS.append(Job("stripe_events", 0.1, _stripe_events))


async def _quiet_attempts(settings: Settings) -> None:
    from receivables.payments.checkout import settle_stale
    from receivables.payments.gateway import make_gateway

    if not settings.stripe_enabled:
        return
    if _stripe.gateway is None or _stripe.gateway.settings is not settings:
        _stripe.gateway = make_gateway(settings)
    await settle_stale(None, _stripe.gateway)


# Card payments Stripe has not settled by webhook within their window (the endpoint may be
# down) are read from Stripe and applied: a payment that succeeded is booked even if the
# customer never comes back; nothing is released without Stripe's word.
JOBS.append(Job("quiet_attempts", 300.0, _quiet_attempts))


async def _dashboard_figures(settings: Settings) -> None:
    from receivables.insight.snapshots import write_due

    await write_due()


# After each company's daily run, its dashboard figures of the night (and those of all
# companies) are written once; looked for every 5 minutes, like the run itself.
JOBS.append(Job("dashboard", 300.0, _dashboard_figures))
# The outbox asks dunning, before sending its emails, whether they are still wanted.
import receivables.dunning  # noqa: E402, F401
