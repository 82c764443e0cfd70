"""Sixty days of daily runs over a population with scripted behaviours, on both engines.

Customers pay the oldest invoice, pay everything, promise and keep, promise and break,
dispute with nobody deciding, answer "already paid" with nobody deciding, ignore
everything, or receive new invoices every week. Each day: the customers act, then (in the
attended variant) a collector works the whole agenda and decides the answers, then the
run, then the worker sends the outbox to a real SMTP server. What a careful collector
would never do is asserted on what the customers actually received:

- two dunning emails to one customer closer than the scenario's interval;
- a demand when nothing is overdue net of holds, or for an invoice on hold;
- a step earlier than one already made while the account stays overdue;
- litigation without a posted formal notice whose deadline passed, and a confirmation;
- a broken promise left out of the collector's sight for longer than the interval;
- anything made twice by running a date twice.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from receivables.dunning.defaults import install_defaults
from receivables.dunning.run import run_dunning
from receivables.dunning.tables import DunningAction, Level
from receivables.history import HistoryEvent, verify
from receivables.ledger.statement import build_statement, hold_of
from receivables.ledger.tables import Customer, Item
from receivables.mail.outbox import send_due
from tests.factories import make_company
from tests.integration.test_dunning_run import settings_for
from tests.simulation import (
    DAYS,
    INTERVAL,
    START,
    act,
    deliveries,
    population,
    work_the_agenda,
)
from tests.smtp import start_smtp


async def simulate(db: str, attended: bool, tmp_path: Path) -> None:
    server, rec, port = await start_smtp()
    settings = settings_for(port, documents=str(tmp_path / "documents"))
    try:
        company = await make_company(
            penalty_policy="france", penalty_margin_bp=1000, email="ar@seller.example"
        )
        await install_defaults(company.id)
        buyers = await population(company, repeat=1)
        by_email = {b.email: b for b in buyers}
        by_id = {b.customer.id: b for b in buyers}
        seen = 0
        escalation = {b.customer.id: 1 for b in buyers}
        made: dict[int, list[tuple[date, int, tuple[int, int]]]] = defaultdict(list)
        for day in range(DAYS):
            on = START + timedelta(days=day)
            for buyer in buyers:
                await act(buyer, on, settings)
            if attended:
                await work_the_agenda(on, settings)
            # What the account looks like when the run starts: overdue net of holds?
            overdue_before = {
                b.customer.id: bool((await build_statement(b.customer.id, on)).overdue)
                for b in buyers
            }
            report = await run_dunning(on, settings)
            assert report.failed == 0, report
            if day % 10 == 3:  # running a date twice makes nothing
                again = await run_dunning(on, settings)
                assert (again.created, again.queued) == (0, 0), (on, again)
            await send_due(settings)
            received = await deliveries(rec, seen, on, by_email)
            seen = len(rec.messages)
            for r in received:
                if r.action.level == Level.pre_dunning.value:
                    continue
                statement = await build_statement(r.customer, on)
                # A demand only when something is overdue net of holds, never for a held item.
                assert statement.overdue, (on, by_id[r.customer].behaviour, r.action.step_name)
                held = {i.id for i in statement.on_hold}
                assert not held & {s["id"] for s in r.asked}, (on, r.action.step_name)
            # The escalation moves forward, or starts again only from "nothing overdue".
            for row in await Customer.select(Customer.id, Customer.escalation):
                if row["escalation"] != escalation[row["id"]]:
                    assert not overdue_before[row["id"]], (on, by_id[row["id"]].behaviour)
                    escalation[row["id"]] = row["escalation"]
        # Every action made, in order, per customer and escalation.
        actions = await DunningAction.select().order_by(DunningAction.id)
        for a in actions:
            if a["offset_days"] >= 0 and not (
                a["status"] == "cancelled" and a["cycle_key"] is None
            ):
                made[a["customer"]].append((a["due_on"], a["escalation"], a["offset_days"]))
        for customer_id, steps in made.items():
            for (_d1, e1, o1), (_d2, e2, o2) in zip(steps, steps[1:], strict=False):
                assert e2 > e1 or o2 > o1, (by_id[customer_id].behaviour, steps)
        # What each customer received: never two dunning emails closer than the interval.
        for buyer in buyers:
            for first, second in zip(buyer.received, buyer.received[1:], strict=False):
                assert (second - first).days >= INTERVAL, (buyer.behaviour, buyer.received)
        # Litigation: offered only after a posted notice's deadline, done only when confirmed.
        for a in (x for x in actions if x["level"] == Level.litigation.value):
            notices = [
                n
                for n in actions
                if n["customer"] == a["customer"]
                and n["escalation"] == a["escalation"]
                and n["channel"] == "letter"
                and n["letter_sent_on"] is not None
            ]
            assert any(n["letter_deadline"] < a["due_on"] for n in notices), a
            if a["status"] == "done":
                assert await HistoryEvent.exists().where(
                    (HistoryEvent.kind == "dunning.litigation_confirmed")
                    & (HistoryEvent.customer == a["customer"])
                )
        if not attended:
            assert not any(x["channel"] == "letter" and x["letter_sent_on"] for x in actions)
            assert not any(x["level"] == Level.litigation.value for x in actions)
        # A broken promise is back in sight (an action made, or a task open) within the interval.
        broken = await HistoryEvent.select().where(HistoryEvent.kind == "promise.broken")
        assert broken or not attended  # promises are validated only by a collector
        for event in broken:
            on = json.loads(event["details"])["on"]
            on = date.fromisoformat(on)
            customer_actions = [x for x in actions if x["customer"] == event["customer"]]
            assert any(
                on <= x["due_on"] <= on + timedelta(days=INTERVAL)
                or (x["due_on"] <= on and (x["done_on"] is None or x["done_on"] >= on))
                for x in customer_actions
            ), (by_id[event["customer"]].behaviour, on, customer_actions)
        # Sanity: the population did meet every situation.
        assert rec.messages and any(b.received for b in buyers if b.behaviour == "ignores")
        held_asks = [
            i
            for i in await Item.select()
            if hold_of(i["status"], i["promise_date"], i["pending_answer"], START + timedelta(DAYS))
        ]
        assert held_asks  # disputes and "already paid" nobody decided stay on hold
        assert (await verify()).ok
    finally:
        server.close()


@pytest.mark.parametrize("attended", [False, True], ids=["unattended", "collector"])
async def test_sixty_days_of_runs_behave_like_a_careful_collector(db, attended, tmp_path):
    await simulate(db, attended, tmp_path)
