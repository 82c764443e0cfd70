"""The history chain: appends only, and any row altered or removed by hand is found."""

import asyncio

from receivables import history
from receivables.db import current_engine
from receivables.history import Actor, HistoryEvent, verify
from tests.factories import make_company, make_customer


async def _three_events(company, customer):
    for n in range(3):
        await history.record(
            company_id=company.id,
            actor=Actor.system(),
            kind="test.event",
            customer_id=customer.id,
            details={"n": n, "note": "é"},
        )


async def test_chain_verifies_and_names_the_altered_row(db):
    company = await make_company()
    other = await make_company()
    customer = await make_customer(company)
    await _three_events(company, customer)
    await history.record(company_id=other.id, actor=Actor.system(), kind="test.other")
    report = await verify()
    assert report.ok and report.checked == 4

    rows = await HistoryEvent.select(HistoryEvent.id).order_by(HistoryEvent.id)
    target = rows[1]["id"]
    await current_engine().run_ddl(
        f"UPDATE history_event SET details = '{{\"n\": 99}}' WHERE id = {target}"
    )
    report = await verify()
    assert not report.ok and report.broken_event_id == target
    assert "altered" in report.reason


async def test_removed_row_breaks_the_next_link(db):
    company = await make_company()
    customer = await make_customer(company)
    await _three_events(company, customer)
    rows = await HistoryEvent.select(HistoryEvent.id).order_by(HistoryEvent.id)
    await current_engine().run_ddl(f"DELETE FROM history_event WHERE id = {rows[1]['id']}")
    report = await verify()
    assert report.broken_event_id == rows[2]["id"]


async def test_concurrent_writers_keep_one_chain(db):
    company = await make_company()
    customer = await make_customer(company)

    async def write(n: int) -> None:
        await history.record(
            company_id=company.id,
            actor=Actor.system(),
            kind="test.race",
            customer_id=customer.id,
            details={"n": n},
        )

    await asyncio.gather(*(write(n) for n in range(20)))
    report = await verify()
    assert report.ok and report.checked == 20
    prevs = [r["prev_hash"] for r in await HistoryEvent.select(HistoryEvent.prev_hash)]
    assert len(set(prevs)) == 20  # no fork: every row has its own predecessor
