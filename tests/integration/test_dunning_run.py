"""The daily run on a fixed date over a hand-built set of customers, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from receivables.dunning.defaults import install_defaults
from receivables.dunning.run import run_dunning
from receivables.dunning.tables import (
    ActionStatus,
    DunningAction,
    DunningActionMessage,
)
from receivables.history import Actor, HistoryEvent
from receivables.ledger.allocations import allocate
from receivables.ledger.tables import Company, Item, ItemStatus, PayerProfile
from receivables.mail.outbox import send_due
from receivables.mail.tables import OutboxMessage, OutboxStatus
from receivables.money import Money
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET
from tests.factories import make_company, make_contact, make_customer, make_item, make_payment
from tests.smtp import start_smtp

D = date(2026, 3, 10)


def settings_for(port: int = 25, documents: str = ""):
    return load_settings(
        {
            "SECRET_KEY": TEST_SECRET,
            "BASE_URL": "http://testserver.local",
            "SMTP_PORT": str(port),
            **({"DOCUMENTS_DIR": documents} if documents else {}),
        }
    )


async def customer(company, profile, name, *, contact=True, **kw):
    c = await make_customer(company, name=name, payer_profile=profile.value, **kw)
    if contact:
        await make_contact(c, name=f"Clerk of {name}", email=f"ap@{name.lower()}.example")
    return c


async def build(company=None):
    """Ten customers, each in one situation the run must handle; returns them by letter."""
    company = company or await make_company(penalty_policy="france", penalty_margin_bp=1000)
    await install_defaults(company.id)
    n, g, b, i = (
        PayerProfile.negligent,
        PayerProfile.good_payer,
        PayerProfile.bad_payer,
        PayerProfile.insolvent,
    )
    c = {}
    c["A"] = await customer(company, n, "Alpha")  # 3 days late: first reminder, automatic
    await make_item(c["A"], "1200.00", due=D - timedelta(days=3), number="A-1")
    c["B"] = await customer(company, n, "Bravo")  # due in 5 days: friendly pre-dunning
    await make_item(c["B"], "300.00", due=D + timedelta(days=5), number="B-1")
    c["C"] = await customer(company, g, "Charlie")  # good payer, late: nothing more
    await make_item(c["C"], "50.00", due=D - timedelta(days=20), number="C-1")
    c["D"] = await customer(company, b, "Delta")  # bad payer 8 days late: 2nd reminder to confirm
    await make_item(c["D"], "800.00", due=D - timedelta(days=8), number="D-1")
    c["E"] = await customer(company, n, "Echo")  # only a disputed item: left out
    await make_item(
        c["E"],
        "90.00",
        due=D - timedelta(days=10),
        number="E-1",
        status="disputed",
        dispute_reason="price",
    )
    c["F"] = await customer(company, n, "Foxtrot")  # promise still running: left out
    await make_item(
        c["F"],
        "70.00",
        due=D - timedelta(days=10),
        number="F-1",
        status="promised",
        promise_date=D + timedelta(days=5),
    )
    c["G"] = await customer(company, n, "Golf")  # promise broken (date + 3 days' grace): back in
    await make_item(
        c["G"],
        "60.00",
        due=D - timedelta(days=5),
        number="G-1",
        status="promised",
        promise_date=D - timedelta(days=4),
    )
    c["H"] = await customer(company, n, "Hotel", blocked=True, blocked_reason="90 days")
    await make_item(c["H"], "40.00", due=D - timedelta(days=3), number="H-1")
    c["I"] = await customer(company, i, "India")  # insolvent 13 days late: formal notice
    await make_item(c["I"], "5000.00", due=D - timedelta(days=13), number="I-1")
    c["J"] = await customer(company, n, "Juliett", contact=False)  # nobody to write to
    await make_item(c["J"], "10.00", due=D - timedelta(days=3), number="J-1")
    return company, c


async def actions_by_customer():
    rows = await DunningAction.select().order_by(DunningAction.id)
    return {r["customer"]: r for r in rows}


async def test_the_run_creates_exactly_the_expected_actions_once(db):
    company, c = await build()
    report = await run_dunning(D, settings_for())
    assert report.line() == "7 actions created, 5 emails queued, 0 cancelled"
    actions = await actions_by_customer()
    expected = {
        "A": ("First reminder", "level_1", ActionStatus.done.value),
        "B": ("Friendly reminder before due", "pre_dunning", ActionStatus.done.value),
        "D": ("First reminder", "level_1", ActionStatus.done.value),
        "G": ("First reminder", "level_1", ActionStatus.done.value),
        "H": ("First reminder", "level_1", ActionStatus.due.value),
        "I": ("Firm reminder", "level_1", ActionStatus.done.value),
        "J": ("First reminder", "level_1", ActionStatus.due.value),
    }
    got = {
        letter: (
            actions[c[letter].id]["step_name"],
            actions[c[letter].id]["level"],
            actions[c[letter].id]["status"],
        )
        for letter in expected
    }
    assert got == expected
    assert set(actions) == {c[k].id for k in expected}  # C, E, F: nothing
    assert actions[c["H"].id]["held_reason"] == "Account blocked: automatic mail stopped."
    assert actions[c["J"].id]["held_reason"] == "No contact receives reminders."
    assert actions[c["A"].id]["cycle_start"] == D - timedelta(days=3)
    assert all(a["due_on"] == D for a in actions.values())
    assert [i["number"] for i in json.loads(actions[c["A"].id]["items"])] == ["A-1"]
    # The emails: one per reminder contact, each in the outbox with its action.
    messages = await OutboxMessage.select().order_by(OutboxMessage.id)
    assert sorted(m["customer"] for m in messages) == sorted(c[k].id for k in "ABDGI")
    assert all(m["kind"] == "dunning" and m["status"] == "queued" for m in messages)
    alpha = next(m for m in messages if m["customer"] == c["A"].id)
    assert alpha["subject"] == "Overdue invoices: €1,200.00"
    assert "A-1" in alpha["text_body"] and "/p/" in alpha["text_body"]
    assert "<table" in alpha["html_body"] and "A-1" in alpha["html_body"]
    assert await DunningActionMessage.count() == 5

    # The second run on the same date creates nothing and queues nothing.
    again = await run_dunning(D, settings_for())
    assert again.line() == "0 actions created, 0 emails queued, 0 cancelled"
    assert await DunningAction.count() == 7 and await OutboxMessage.count() == 5


async def test_steps_follow_one_another_and_firmer_ones_wait_for_the_collector(db):
    from receivables.dunning.agenda import CallInput, confirm_actions, confirm_litigation, log_call
    from receivables.dunning.letters import mark_letter_sent

    company = await make_company(penalty_policy="france", penalty_margin_bp=1000)
    await install_defaults(company.id)
    delta = await customer(company, PayerProfile.bad_payer, "Delta")
    await make_item(delta, "800.00", due=D - timedelta(days=8), number="D-1")
    collector = Actor.system("collector")

    async def run(day: int) -> tuple[str, list[tuple[str, str, date]]]:
        report = await run_dunning(D + timedelta(days=day), settings_for())
        rows = await DunningAction.select().order_by(DunningAction.id)
        return report.line(), [(r["step_name"], r["status"], r["due_on"]) for r in rows]

    # Found 8 days late: the first reminder today, not the step of day 8.
    line, rows = await run(0)
    assert line == "1 actions created, 1 emails queued, 0 cancelled"
    assert rows == [("First reminder", "done", D)]
    # The second reminder keeps its 6 days after the first (scenario: day 1 -> day 7).
    assert (await run(5))[0] == "0 actions created, 0 emails queued, 0 cancelled"
    line, rows = await run(7)
    assert rows[-1] == ("Second reminder", "to_confirm", D + timedelta(days=7))
    # Nobody confirms it: the call does not supersede it, nothing firmer comes.
    line, rows = await run(12)
    assert line == "0 actions created, 0 emails queued, 0 cancelled"
    assert rows[-1] == ("Second reminder", "to_confirm", D + timedelta(days=7))
    assert (await confirm_actions([2], collector, settings_for(), D + timedelta(days=14))).done
    line, rows = await run(15)  # the call: 3 days after the reminder was sent (day 14)
    assert line == "0 actions created, 0 emails queued, 0 cancelled"
    line, rows = await run(17)
    assert rows[-1] == ("Phone call", "due", D + timedelta(days=17))
    await log_call(3, CallInput(outcome="no_answer"), collector, D + timedelta(days=17))
    line, rows = await run(22)
    assert rows[-1] == ("Formal notice", "due", D + timedelta(days=22))
    # Litigation is never offered before the notice is posted and its deadline passed.
    assert (await run(60))[0] == "0 actions created, 0 emails queued, 0 cancelled"
    await mark_letter_sent(
        4, D + timedelta(days=61), collector, settings_for(), D + timedelta(days=61)
    )
    # The deadline passed on day 70; the scenario keeps its 15 days after the notice (76).
    assert (await run(75))[0] == "0 actions created, 0 emails queued, 0 cancelled"
    line, rows = await run(76)
    assert rows[-1] == ("Hand over to litigation", "due", D + timedelta(days=76))
    litigation = await DunningAction.objects().get(DunningAction.id == 5)
    assert litigation.mode == "manual" and "Confirm" in litigation.held_reason
    # Offered, not done: the account is not in litigation until a collector confirms.
    assert (await run(77))[0] == "0 actions created, 0 emails queued, 0 cancelled"
    await confirm_litigation(5, "file sent to the lawyer", collector, D + timedelta(days=77))
    # In litigation, amicable collection has ended: nothing more, and the unsent reminders
    # (no worker ran in this test) will not go either.
    assert (await run(90))[0] == "0 actions created, 0 emails queued, 1 cancelled"
    first = await OutboxMessage.objects().order_by(OutboxMessage.id).first()
    assert first.status == "cancelled" and first.last_error == "the account is in litigation"
    assert [r[0] for r in rows] == [
        "First reminder",
        "Second reminder",
        "Phone call",
        "Formal notice",
        "Hand over to litigation",
    ]
    assert await HistoryEvent.exists().where(HistoryEvent.kind == "dunning.litigation_confirmed")


async def test_a_passed_promise_is_marked_broken_and_back_in_the_scenario(db, caplog):
    company, c = await build()
    await Company.update({Company.email: "ar@seller.example"}).where(Company.id == company.id)
    with caplog.at_level("WARNING", logger="relance.history"):
        await run_dunning(D, settings_for())
    # The collector's notice is written in the account's chain, whose lock the batch holds:
    # never a company-wide lock taken after the accounts' (the order that deadlocks).
    assert not [r for r in caplog.records if "out of order" in r.getMessage()]
    notice = await OutboxMessage.objects().get(OutboxMessage.kind == "promise_broken")
    assert notice.customer == c["G"].id and "G-1" in notice.text_body
    item = await Item.objects().get(Item.number == "G-1")
    assert item.status == ItemStatus.open.value and item.promise_date is None
    broken = await HistoryEvent.select().where(HistoryEvent.kind == "promise.broken")
    assert len(broken) == 1 and broken[0]["item"] == item.id
    assert json.loads(broken[0]["details"])["promise_date"] == str(D - timedelta(days=4))
    # The running promise (F) is untouched.
    assert (await Item.objects().get(Item.number == "F-1")).status == ItemStatus.promised.value
    # A second run does not mark it again.
    await run_dunning(D, settings_for())
    assert await HistoryEvent.count().where(HistoryEvent.kind == "promise.broken") == 1


async def test_an_item_paid_after_its_reminder_was_queued_cancels_it(db):
    server, rec, port = await start_smtp()
    try:
        company, c = await build()
        await run_dunning(D, settings_for(port))
        # Alpha pays its invoice before the worker sends the automatic reminder.
        item = await Item.objects().get(Item.number == "A-1")
        payment = await make_payment(c["A"], "1200.00")
        await allocate(payment.id, item.id, Money(Decimal("1200.00"), "EUR"), Actor.system())
        assert await send_due(settings_for(port)) == 4  # all but Alpha's
        assert sorted(m["To"] for m in rec.messages) == sorted(
            f"Clerk of {n} <ap@{n.lower()}.example>" for n in ("Bravo", "Delta", "Golf", "India")
        )
        alpha = await OutboxMessage.objects().get(OutboxMessage.customer == c["A"].id)
        assert alpha.status == OutboxStatus.cancelled.value and alpha.last_error == "A-1 paid"
        action = (await actions_by_customer())[c["A"].id]
        assert action["status"] == ActionStatus.cancelled.value
        assert action["outcome"] == "A-1 paid"
        kinds = [
            e["kind"]
            for e in await HistoryEvent.select(HistoryEvent.kind)
            .where(HistoryEvent.customer == c["A"].id)
            .order_by(HistoryEvent.id)
        ]
        assert kinds[-2:] == ["dunning.action_cancelled", "email.cancelled"]
        # Nothing is left to remind Alpha of: the next run creates nothing for it.
        report = await run_dunning(D, settings_for(port))
        assert report.created == 0
    finally:
        server.close()


async def test_a_partly_paid_reminder_is_cancelled_and_rebuilt_with_the_new_amount(db):
    company, c = await build()
    await run_dunning(D, settings_for())
    item = await Item.objects().get(Item.number == "A-1")
    payment = await make_payment(c["A"], "200.00")
    await allocate(payment.id, item.id, Money(Decimal("200.00"), "EUR"), Actor.system())
    # The run sees the unsent reminder is stale, cancels it, and builds it again.
    report = await run_dunning(D, settings_for())
    assert (report.cancelled, report.created, report.queued) == (1, 1, 1)
    rows = (
        await DunningAction.select()
        .where(DunningAction.customer == c["A"].id)
        .order_by(DunningAction.id)
    )
    assert [r["status"] for r in rows] == ["cancelled", "done"]
    assert rows[0]["outcome"] == "A-1 partly paid" and rows[0]["cycle_key"] is None
    messages = (
        await OutboxMessage.select(OutboxMessage.status, OutboxMessage.subject)
        .where(OutboxMessage.customer == c["A"].id)
        .order_by(OutboxMessage.id)
    )
    assert [(m["status"], m["subject"]) for m in messages] == [
        ("cancelled", "Overdue invoices: €1,200.00"),
        ("queued", "Overdue invoices: €1,000.00"),
    ]


async def test_open_tasks_are_cancelled_when_nothing_is_left_to_collect(db):
    company, c = await build()
    await run_dunning(D, settings_for())
    item = await Item.objects().get(Item.number == "H-1")
    payment = await make_payment(c["H"], "40.00")
    await allocate(payment.id, item.id, Money(Decimal("40.00"), "EUR"), Actor.system())
    report = await run_dunning(D + timedelta(days=1), settings_for())
    assert report.cancelled == 1
    action = (await actions_by_customer())[c["H"].id]
    assert action["status"] == "cancelled"
    assert action["outcome"] == "nothing left to collect: H-1 paid"


async def test_a_run_interrupted_by_a_crash_resumes_without_duplicates(db):
    company, c = await build()
    calls = 0

    def crash_after_first_batch(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first batch is committed, then the process dies
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await run_dunning(D, settings_for(), batch=3, progress=crash_after_first_batch)
    first = await DunningAction.count()
    assert 0 < first < 7
    report = await run_dunning(D, settings_for(), batch=3)
    assert report.created == 7 - first
    assert await DunningAction.count() == 7
    assert await OutboxMessage.count() == 5
    assert await DunningActionMessage.count() == 5


async def test_two_runs_at_once_on_postgres_create_each_action_once(pg_db):
    company, c = await build()
    # More customers so both runs have batches to fight over.
    for k in range(40):
        extra = await customer(company, PayerProfile.negligent, f"Extra{k}")
        await make_item(extra, "10.00", due=D - timedelta(days=3), number=f"X-{k}")
    reports = await asyncio.gather(
        run_dunning(D, settings_for(), batch=5, triggered_by="w1"),
        run_dunning(D, settings_for(), batch=5, triggered_by="w2"),
    )
    assert sum(r.created for r in reports) == 47
    assert await DunningAction.count() == 47
    assert await OutboxMessage.count() == 45
    # How the batches split between the two runs depends on timing; that nothing is done
    # twice and nothing deadlocks does not.
    assert all(r.failed == 0 for r in reports), [r.line() for r in reports]


async def test_one_failing_customer_is_rolled_back_alone_and_retried(db, monkeypatch):
    company, c = await build()
    from receivables.dunning import run as run_module

    real = run_module.queue_action_emails

    async def broken_for_bravo(action, facts, **kw):
        if facts.customer.id == c["B"].id:
            raise RuntimeError("the mail composer fell over")
        return await real(action, facts, **kw)

    monkeypatch.setattr(run_module, "queue_action_emails", broken_for_bravo)
    report = await run_dunning(D, settings_for())
    assert (report.created, report.queued, report.failed) == (6, 4, 1)
    assert c["B"].id not in await actions_by_customer()
    assert not await HistoryEvent.exists().where(
        (HistoryEvent.customer == c["B"].id) & (HistoryEvent.kind == "dunning.action_created")
    )
    monkeypatch.setattr(run_module, "queue_action_emails", real)
    again = await run_dunning(D, settings_for())
    assert (again.created, again.queued, again.failed) == (1, 1, 0)


async def test_an_international_domain_is_sent_in_idna(db):
    server, rec, port = await start_smtp()
    try:
        company = await make_company()
        await install_defaults(company.id)
        hotel = await make_customer(company, name="Hôtel", payer_profile="negligent")
        await make_contact(hotel, name="Pierre", email="pierre@hôtel-des-arts.example")
        await make_item(hotel, "10.00", due=D - timedelta(days=3), number="HO-1")
        assert (await run_dunning(D, settings_for(port))).queued == 1
        assert await send_due(settings_for(port)) == 1
        punycode = "hôtel-des-arts.example".encode("idna").decode()
        assert punycode == "xn--htel-des-arts-plb.example"
        assert rec.messages[0]["To"] == f"Pierre <pierre@{punycode}>"
    finally:
        server.close()


async def test_the_plain_part_carries_the_tables_as_aligned_text(db):
    company, c = await build()
    await run_dunning(D, settings_for())
    bravo = await OutboxMessage.objects().get(OutboxMessage.customer == c["B"].id)
    lines = bravo.text_body.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Invoice"))
    assert lines[header - 1] == "Coming due: please check that nothing blocks payment"
    assert re.fullmatch(r"Invoice\s+Due date\s+Days late\s+Open\s+Note", lines[header])
    row = lines[header + 1]
    assert re.fullmatch(r"B-1\s+15 Mar 2026\s+€300\.00", row)
    # Right-aligned: the amount ends where the "Open" heading ends.
    assert row.index("€300.00") + len("€300.00") == lines[header].index("Open") + len("Open")


async def test_paying_or_promising_the_oldest_keeps_the_accounts_level(db):
    """The demo's complaint: paying the oldest invoice restarted at the friendliest step."""
    server, rec, port = await start_smtp()
    try:
        company = await make_company()
        await install_defaults(company.id)
        buyer = await customer(company, PayerProfile.negligent, "Kilo")
        oldest = await make_item(buyer, "500.00", due=D - timedelta(days=20), number="K-1")
        await make_item(buyer, "300.00", due=D - timedelta(days=10), number="K-2")
        await make_item(buyer, "200.00", due=D - timedelta(days=4), number="K-3")
        settings = settings_for(port)

        async def day(n: int) -> list[str]:
            await run_dunning(D + timedelta(days=n), settings)
            await send_due(settings)
            return [str(m["Subject"]) for m in rec.messages]

        assert len(await day(0)) == 1  # the first reminder, 20 days late
        # The customer pays the oldest by card the same day: nothing more that day, or the next.
        payment = await make_payment(buyer, "500.00")
        await allocate(payment.id, oldest.id, Money(Decimal("500.00"), "EUR"), Actor.system())
        assert len(await day(0)) == 1
        assert len(await day(1)) == 1
        # The next reminder is the next step (second reminder, to confirm), never the first
        # again: at its date from the new anchor (K-2, due D-10: D+5) but no sooner after the
        # first than the scenario spaces them (+3 -> +15: 12 days, D+12).
        for n in range(2, 12):
            assert len(await day(n)) == 1
        assert (await run_dunning(D + timedelta(days=12), settings)).created == 1
        steps = [
            r["step_name"]
            for r in await DunningAction.select(DunningAction.step_name).order_by(DunningAction.id)
        ]
        assert steps == ["First reminder", "Second reminder"]
        # A promise on K-2 ("will pay on"): K-3 still asks, the level stays where it is.
        await Item.update(
            {Item.status: ItemStatus.promised.value, Item.promise_date: D + timedelta(days=30)}
        ).where(Item.number == "K-2")
        for n in range(13, 20):
            await run_dunning(D + timedelta(days=n), settings)
        assert "First reminder" not in [
            r["step_name"]
            for r in await DunningAction.select(DunningAction.step_name).where(DunningAction.id > 2)
        ]
    finally:
        server.close()
