"""The daily run's schedule: once per company and date whatever the number of workers; a
dead worker's run is taken over; a failed run is given back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from receivables.clock import now as clock_now
from receivables.dunning import schedule
from receivables.dunning.run import due_now
from receivables.dunning.schedule import DunningSchedule, claim, renew, run_scheduled
from receivables.dunning.tables import DunningAction, DunningRun
from receivables.ledger.tables import Company, PayerProfile
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET
from tests.factories import make_company, make_contact, make_customer, make_item

SETTINGS = load_settings({"SECRET_KEY": TEST_SECRET, "BASE_URL": "http://testserver.local"})


async def due_company() -> tuple[Company, object]:
    """A company whose run is due now (any hour, any day: CI runs whenever), with an account
    to remind; returns it and its date."""
    company = await make_company(dunning_hour=0, dunning_business_days=False, timezone="UTC")
    buyer = await make_customer(company, payer_profile=PayerProfile.negligent.value)
    await make_contact(buyer)
    row = await Company.select(
        Company.id, Company.timezone, Company.dunning_hour, Company.dunning_business_days
    ).where(Company.id == company.id)
    today = due_now(row[0])
    assert today is not None
    await make_item(buyer, "500.00", due=today - timedelta(days=3))
    return company, today


async def runs_of(company: Company) -> list[dict]:
    return await DunningRun.select().where(DunningRun.company == company.id)


async def test_workers_racing_start_the_run_once(pg_db, monkeypatch):
    """Three workers look at the same moment, each on its own connections."""
    company, today = await due_company()
    claims = []
    real_claim = schedule.claim

    async def claiming(*args, **kwargs):
        claims.append(await real_claim(*args, **kwargs))
        return claims[-1]

    monkeypatch.setattr(schedule, "claim", claiming)
    reports = await asyncio.gather(*(run_scheduled(SETTINGS, worker=w) for w in "abc"))
    assert sorted(claims) == [False, False, True]  # all three tried; one won
    assert sorted(len(r) for r in reports) == [0, 0, 1]
    assert len(await runs_of(company)) == 1
    assert await DunningAction.count() > 0
    row = await DunningSchedule.objects().get(DunningSchedule.company == company.id)
    assert row.run_on == today and row.attempts == 1 and row.finished_at is not None
    winner = "abc"[[len(r) for r in reports].index(1)]
    assert row.claimed_by == winner
    # Later looks find the day done.
    assert await run_scheduled(SETTINGS, worker="d") == []


async def test_the_run_is_started_once_a_day(db):
    company, _ = await due_company()
    first = await run_scheduled(SETTINGS, worker="a")
    assert len(first) == 1 and first[0].created == await DunningAction.count() > 0
    assert await run_scheduled(SETTINGS, worker="a") == []
    assert await run_scheduled(SETTINGS, worker="b") == []
    runs = await runs_of(company)
    assert len(runs) == 1 and runs[0]["triggered_by"] == "worker" and runs[0]["finished_at"]


async def test_a_claim_under_way_is_left_alone(db):
    company, today = await due_company()
    assert await claim(company.id, today, "busy")
    assert await run_scheduled(SETTINGS, worker="other") == []
    assert await runs_of(company) == []
    # Its worker keeps it; nobody else can renew it.
    assert await renew(company.id, today, "busy")
    assert not await renew(company.id, today, "other")


async def test_a_dead_workers_claim_is_taken_over(db):
    company, today = await due_company()
    # Claimed an hour ago by a worker that died before finishing: its lease ran out.
    assert await claim(company.id, today, "dead", now=clock_now() - timedelta(hours=1))
    reports = await run_scheduled(SETTINGS, worker="alive")
    assert len(reports) == 1 and len(await runs_of(company)) == 1
    row = await DunningSchedule.objects().get(DunningSchedule.company == company.id)
    assert row.claimed_by == "alive" and row.attempts == 2 and row.finished_at is not None
    # The dead worker cannot come back and renew what it lost.
    assert not await renew(company.id, today, "dead")


async def test_a_failed_run_is_given_back_for_the_next_look(db, monkeypatch):
    company, _ = await due_company()

    async def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(schedule, "run_dunning", broken)
    with pytest.raises(RuntimeError):
        await run_scheduled(SETTINGS, worker="a")
    monkeypatch.undo()
    assert len(await run_scheduled(SETTINGS, worker="b")) == 1
    row = await DunningSchedule.objects().get(DunningSchedule.company == company.id)
    assert row.claimed_by == "b" and row.attempts == 2 and row.finished_at is not None


async def test_the_claim_is_renewed_while_the_run_lasts(db, monkeypatch):
    company, today = await due_company()
    monkeypatch.setattr(schedule, "RENEW_EVERY", timedelta(milliseconds=10))
    leases = []
    real_run = schedule.run_dunning

    async def slow_run(*args, **kwargs):
        row = await DunningSchedule.objects().get(DunningSchedule.company == company.id)
        leases.append(row.lease_until)
        await asyncio.sleep(0.3)
        row = await DunningSchedule.objects().get(DunningSchedule.company == company.id)
        leases.append(row.lease_until)
        return await real_run(*args, **kwargs)

    monkeypatch.setattr(schedule, "run_dunning", slow_run)
    assert len(await run_scheduled(SETTINGS, worker="a")) == 1
    assert leases[1] > leases[0]


async def test_the_workers_daily_job_goes_through_the_schedule(db):
    from receivables.worker import JOBS

    company, today = await due_company()
    job = next(j for j in JOBS if j.name == "dunning")
    await job.run(SETTINGS)
    await job.run(SETTINGS)
    row = await DunningSchedule.objects().get(DunningSchedule.company == company.id)
    assert row.run_on == today and row.finished_at is not None
    assert row.claimed_by == schedule.worker_name()
    assert len(await runs_of(company)) == 1
