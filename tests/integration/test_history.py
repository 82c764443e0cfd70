"""The history: one chain per account and per company, any row altered, removed or added by
hand is found, and checkpoints (HMAC under a key outside the database) find a removed tail
or a rewritten chain and say which checkpoint the database contradicts."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receivables import history
from receivables.db import atomic, current_engine
from receivables.history import (
    GENESIS,
    Actor,
    Checkpoint,
    HistoryBroken,
    HistoryCheckpoint,
    HistoryEvent,
    chain_hash,
    checkpoint_all,
    verify,
)
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET
from tests.factories import make_company, make_customer

RELANCE = str(Path(sys.executable).with_name("relance"))


async def _events(company, customer, n: int = 3, kind: str = "test.event") -> list[int]:
    return [
        await history.record(
            company_id=company.id,
            actor=Actor.system(),
            kind=kind,
            customer_id=customer.id if customer else None,
            details={"n": i, "note": "é"},
        )
        for i in range(n)
    ]


async def _ids() -> list[int]:
    return [r["id"] for r in await HistoryEvent.select(HistoryEvent.id).order_by(HistoryEvent.id)]


async def _sql(statement: str) -> None:
    await current_engine().run_ddl(statement)


async def _legacy_rows(company, customer, n: int) -> list[int]:
    """Rows as the single-chain version wrote them (no chain, no position)."""
    prev, ids = GENESIS, []
    for i in range(n):
        row = {
            "company": company.id,
            "occurred_at": datetime(2026, 1, 1, 9, i, tzinfo=UTC),
            "actor_kind": "system",
            "actor_id": None,
            "actor_label": "system",
            "customer": customer.id if i % 2 else None,
            "item": None,
            "kind": "legacy.event",
            "details": history.canonical_json({"n": i}),
            "chain": None,
            "seq": None,
            "prev_hash": prev,
        }
        row["hash"] = prev = chain_hash(prev, row)
        inserted = await HistoryEvent.insert(HistoryEvent(**row)).returning(HistoryEvent.id)
        ids.append(inserted[0]["id"])
    return ids


def _settings():
    return load_settings({"SECRET_KEY": TEST_SECRET})


# ------------------------------------------------------------------ chains


async def test_events_go_to_their_account_or_company_chain(db):
    company = await make_company()
    first, second = await make_customer(company), await make_customer(company)
    await _events(company, first, 2)
    await _events(company, second, 1)
    await _events(company, None, 2)
    rows = await HistoryEvent.select(
        HistoryEvent.chain, HistoryEvent.seq, HistoryEvent.prev_hash, HistoryEvent.hash
    ).order_by(HistoryEvent.id)
    assert [(r["chain"], r["seq"]) for r in rows] == [
        (f"c{first.id}", 1),
        (f"c{first.id}", 2),
        (f"c{second.id}", 1),
        (f"k{company.id}", 1),
        (f"k{company.id}", 2),
    ]
    assert rows[0]["prev_hash"] == GENESIS and rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[2]["prev_hash"] == GENESIS  # chains are independent
    report = await verify()
    assert report.ok and report.checked == 5 and report.chains == 3


async def test_chain_verifies_and_names_the_altered_row(db):
    company = await make_company()
    other = await make_company()
    customer = await make_customer(company)
    await _events(company, customer)
    await history.record(company_id=other.id, actor=Actor.system(), kind="test.other")
    report = await verify()
    assert report.ok and report.checked == 4

    target = (await _ids())[1]
    await _sql(f"UPDATE history_event SET details = '{{\"n\": 99}}' WHERE id = {target}")
    report = await verify()
    assert not report.ok and report.broken_event_id == target
    assert report.problems[0].kind == "altered" and "altered" in report.reason


async def test_removed_rows_are_named_even_when_replaced(db):
    company = await make_company()
    customer = await make_customer(company)
    ids = await _events(company, customer, 4)
    await _sql(f"DELETE FROM history_event WHERE id = {ids[1]}")
    report = await verify()
    assert report.broken_event_id == ids[2] and report.problems[0].kind == "removed"
    assert "position 2" in report.reason

    # A row put back at position 2 by hand, its hash computed as the format says: the
    # event after it no longer links to it.
    await _sql(f"DELETE FROM history_event WHERE id = {ids[2]}")
    row = (await HistoryEvent.select().where(HistoryEvent.id == ids[0]))[0]
    fake = {**row, "details": '{"n":42}', "seq": 2, "prev_hash": row["hash"]}
    del fake["id"]
    fake["hash"] = chain_hash(fake["prev_hash"], fake)
    await HistoryEvent.insert(HistoryEvent(**fake))
    report = await verify()
    assert [p.kind for p in report.problems] == ["removed"]
    assert report.broken_event_id == ids[3]


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
    rows = await HistoryEvent.select(HistoryEvent.prev_hash, HistoryEvent.seq)
    assert len({r["prev_hash"] for r in rows}) == 20  # no fork: every row has its own predecessor
    assert sorted(r["seq"] for r in rows) == list(range(1, 21))


async def test_legacy_chain_still_verifies_and_anchors_the_company_chain(db):
    company = await make_company()
    customer = await make_customer(company)
    legacy = await _legacy_rows(company, customer, 4)
    await _events(company, customer, 2)
    await _events(company, None, 1)
    report = await verify()
    assert report.ok and report.checked == 7
    first_k = (
        await HistoryEvent.select(HistoryEvent.prev_hash)
        .where(HistoryEvent.chain == f"k{company.id}")
        .first()
    )
    last_legacy = (
        await HistoryEvent.select(HistoryEvent.hash).where(HistoryEvent.id == legacy[-1])
    )[0]["hash"]
    assert first_k["prev_hash"] == last_legacy

    # The legacy chain's last row removed: its company chain no longer starts from it.
    await _sql(f"DELETE FROM history_event WHERE id = {legacy[-1]}")
    report = await verify()
    assert not report.ok
    assert report.problems[0].chain == f"k{company.id}" and "legacy" in report.reason

    # An altered legacy row is still named as before.
    await _sql(f"UPDATE history_event SET kind = 'x' WHERE id = {legacy[1]}")
    report = await verify()
    assert report.problems[0].event_id == legacy[1] and report.problems[0].kind == "altered"


# ------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("removed", [1, 6])
async def test_removed_tail_contradicts_the_checkpoint(db, removed):
    company = await make_company()
    customers = [await make_customer(company) for _ in range(2)]
    for _ in range(4):  # interleaved: the last six cut two from each chain
        for customer in [*customers, None]:
            await _events(company, customer, 1)
    cp = await checkpoint_all(_settings(), made_by="test")
    assert cp.number == 1 and cp.events == 12 and cp.chains == 3
    assert (await verify(_settings())).ok

    gone = (await _ids())[-removed:]
    await _sql(f"DELETE FROM history_event WHERE id IN ({','.join(map(str, gone))})")
    report = await verify(_settings())
    assert not report.ok
    assert [p.kind for p in report.problems] == ["truncated"] * min(removed, 3)
    assert all("checkpoint #1 of " in p.message for p in report.problems)
    assert gone[-1] in {p.event_id for p in report.problems}

    # And no later checkpoint launders it.
    with pytest.raises(HistoryBroken) as refused:
        await checkpoint_all(_settings())
    assert refused.value.problems[0].kind == "truncated"
    assert await HistoryCheckpoint.count() == 1


async def test_rewritten_chain_and_removed_chain_are_named(db):
    company = await make_company()
    victim, other = await make_customer(company), await make_customer(company)
    ids = await _events(company, victim, 4)
    await _events(company, other, 2)
    await checkpoint_all(_settings())

    # Rewritten from its second event on with valid hashes: every link holds, the seal not.
    rows = (
        await HistoryEvent.select()
        .where(HistoryEvent.chain == f"c{victim.id}")
        .order_by(HistoryEvent.seq)
    )
    prev = rows[0]["hash"]
    for row in rows[1:]:
        row["details"] = '{"n":"rewritten"}'
        row["prev_hash"] = prev
        row["hash"] = prev = chain_hash(prev, row)
        await HistoryEvent.update(
            {
                HistoryEvent.details: row["details"],
                HistoryEvent.prev_hash: row["prev_hash"],
                HistoryEvent.hash: row["hash"],
            }
        ).where(HistoryEvent.id == row["id"])
    await _sql(f"DELETE FROM history_event WHERE chain = 'c{other.id}'")
    report = await verify(_settings())
    kinds = {p.chain: p.kind for p in report.problems}
    assert kinds == {f"c{victim.id}": "rewritten", f"c{other.id}": "chain removed"}
    rewritten = next(p for p in report.problems if p.kind == "rewritten")
    assert rewritten.event_id == ids[-1] and "checkpoint #1" in rewritten.message


async def test_checkpoints_are_incremental_chained_and_authenticated(db):
    company = await make_company()
    customer = await make_customer(company)
    await _events(company, customer, 2)
    first = await checkpoint_all(_settings())
    await _events(company, None, 1)
    second = await checkpoint_all(_settings())
    assert (second.number, second.changed, second.chains, second.events) == (2, 1, 2, 3)
    assert second.prev_hmac == first.hmac
    third = await checkpoint_all(_settings())
    assert third.changed == 0 and third.events == 3
    assert Checkpoint.parse(third.line()) == Checkpoint(**{**third.__dict__, "made_by": ""})

    report = await verify(_settings(), against=[first.line(), third.line()])
    assert report.ok and report.checkpoint and report.checkpoint.number == 3
    assert report.seals_checked and report.unsealed == 0

    # Another installation's key: the seals are not ours.
    stranger = load_settings({"SECRET_KEY": "another-secret-key-" + "y" * 32})
    report = await verify(stranger)
    assert {p.kind for p in report.problems} == {"seal"}
    with pytest.raises(HistoryBroken):
        await checkpoint_all(stranger)

    # The latest seal removed with its heads (and whatever came after the one before):
    # only a kept line can tell.
    await _sql(f"DELETE FROM history_checkpoint WHERE number = {third.number}")
    assert (await verify(_settings())).ok
    report = await verify(_settings(), against=[third.line()])
    assert (
        not report.ok
        and "checkpoint #3" in report.reason
        and "not in the database" in (report.reason)
    )


async def test_altered_seal_or_stored_head_is_found(db):
    company = await make_company()
    customer = await make_customer(company)
    await _events(company, customer, 3)
    await checkpoint_all(_settings())
    await _sql("UPDATE history_checkpoint SET events = events + 1")
    report = await verify(_settings())
    assert [p.kind for p in report.problems] == ["seal"]
    assert "not authentic" in report.reason
    await _sql("UPDATE history_checkpoint SET events = events - 1")
    assert (await verify(_settings())).ok

    # The sealed head moved back by hand, with the tail: the stored heads no longer give
    # the seal's state.
    ids = await _ids()
    await _sql(f"DELETE FROM history_event WHERE id = {ids[-1]}")
    await _sql(
        f"UPDATE history_checkpoint_head SET seq = 2, event = {ids[-2]}, "
        f"hash = (SELECT hash FROM history_event WHERE id = {ids[-2]})"
    )
    report = await verify(_settings())
    assert report.problems and report.problems[0].kind == "seal"
    assert "heads" in report.reason


async def test_legacy_chain_is_sealed_closed(db):
    company = await make_company()
    customer = await make_customer(company)
    await _legacy_rows(company, customer, 3)
    await _events(company, customer, 1)
    cp = await checkpoint_all(_settings())
    assert cp.chains == 2 and cp.events == 4
    # A row appended to the closed legacy chain, hashed as the old format wants.
    last = (
        await HistoryEvent.select().where(HistoryEvent.chain.is_null()).order_by(HistoryEvent.id)
    )[-1]
    extra = {**last, "details": '{"n":"late"}', "prev_hash": last["hash"]}
    del extra["id"]
    extra["hash"] = chain_hash(extra["prev_hash"], extra)
    await HistoryEvent.insert(HistoryEvent(**extra))
    report = await verify(_settings())
    kinds = {p.kind for p in report.problems}
    assert "inserted" in kinds and any("appended" in p.message for p in report.problems)


# ------------------------------------------------------------------ locks (Postgres)


async def test_writers_on_different_accounts_do_not_wait(pg_db):
    company = await make_company()
    busy, free = await make_customer(company), await make_customer(company)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with atomic():
            await history.lock_accounts([busy.id], company_id=company.id)
            await _events(company, busy, 1)
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    # Another account, the company's chain, and a job's claim skip nothing but the held one.
    await asyncio.wait_for(_events(company, free, 1), 2)
    await asyncio.wait_for(_events(company, None, 1), 2)
    waiting = asyncio.create_task(_events(company, busy, 1))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # same account: waits for the holder
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiting), 5)
    assert (await verify()).ok


async def test_claims_skip_accounts_another_worker_claimed(pg_db):
    company = await make_company()
    customers = [await make_customer(company) for _ in range(3)]
    ids = [c.id for c in customers]
    claimed, release = asyncio.Event(), asyncio.Event()

    async def first_worker() -> list[int]:
        async with atomic():
            mine = await history.claim_accounts(ids[:2])
            claimed.set()
            await release.wait()
            return mine

    task = asyncio.create_task(first_worker())
    await claimed.wait()
    async with atomic():
        assert await asyncio.wait_for(history.claim_accounts(ids), 2) == [ids[2]]
    release.set()
    assert await task == ids[:2]


async def test_locks_out_of_order_are_logged(pg_db, caplog):
    company = await make_company()
    low, high = await make_customer(company), await make_customer(company)
    caplog.set_level(logging.WARNING, logger="relance.history")
    async with atomic():
        await history.lock_accounts([low.id, high.id], company_id=company.id)
        await _events(company, high, 1)
        await _events(company, low, 1)
    assert not caplog.records
    async with atomic():
        await _events(company, high, 1)
        await _events(company, low, 1)  # a lower account after a higher one
    assert "out of order" in caplog.text
    # lock_chain() without companies no longer locks anything.
    async with atomic():
        await history.lock_chain()
        await asyncio.wait_for(_events(company, low, 1), 2)


# ------------------------------------------------------------------ the command line


def _relance(args: list[str], url: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    full_env.update({"DATABASE_URL": url, "COLUMNS": "200", "SECRET_KEY": TEST_SECRET, **env})
    return subprocess.run(
        [RELANCE, *args], capture_output=True, text=True, env=full_env, timeout=120
    )


async def test_cli_checkpoint_export_and_verify_against(db, databases, tmp_path):
    company = await make_company()
    customer = await make_customer(company)
    await _events(company, customer, 8)
    url = databases.urls[db]
    kept = tmp_path / "kept.txt"
    made = _relance(["history", "checkpoint", "--export", str(kept)], url)
    assert made.returncode == 0, made.stderr
    line = made.stdout.strip()
    assert line.startswith("relance-history-checkpoint v1 #1 ") and kept.read_text() == line + "\n"

    ok = _relance(["history", "verify", "--against", str(kept)], url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "History intact: 8 events checked in 1 chains; checkpoint #1" in ok.stdout

    last = (await _ids())[-1]
    await _sql(f"DELETE FROM history_event WHERE id = {last}")
    broken = _relance(["history", "verify"], url)
    assert broken.returncode == 1
    assert f"BROKEN at event {last} (truncated, chain c{customer.id})" in broken.stdout
    assert "checkpoint #1 of" in broken.stdout

    # Hiding it by removing the checkpoint too: the kept line still knows.
    await _sql("DELETE FROM history_checkpoint_head")
    await _sql("DELETE FROM history_checkpoint")
    assert _relance(["history", "verify"], url).returncode == 0
    against = _relance(["history", "verify", "--against", str(kept)], url)
    assert against.returncode == 1
    assert "checkpoint #1 of" in against.stdout and "not in the database" in against.stdout

    # Sealing needs the key; without it nothing is sealed.
    refused = _relance(["history", "checkpoint"], url, SECRET_KEY="")
    assert refused.returncode == 2 and "SECRET_KEY" in refused.stderr


async def test_an_old_seal_stays_valid_as_history_grows(db):
    company = await make_company()
    customer = await make_customer(company)
    await _events(company, customer, 2)
    first = await checkpoint_all(_settings())
    await _events(company, customer, 3)
    report = await verify(_settings(), against=[first.line()])
    assert report.ok and report.unsealed == 3
    # Writing after the seal is what a history does; at the next seal they are covered.
    second = await checkpoint_all(_settings())
    assert second.events == 5 and second.made_at >= first.made_at - timedelta(seconds=1)


async def test_a_bulk_writer_takes_the_company_gate(pg_db, monkeypatch):
    company, other = await make_company(), await make_company()
    accounts = [await make_customer(company) for _ in range(3)]
    elsewhere = await make_customer(other)
    monkeypatch.setattr(history, "MAX_ACCOUNT_LOCKS", 2)
    holding, release = asyncio.Event(), asyncio.Event()

    async def bulk() -> None:
        async with atomic():
            await history.lock_accounts([a.id for a in accounts[:3]], company_id=company.id)
            holding.set()
            await release.wait()

    holder = asyncio.create_task(bulk())
    await holding.wait()
    await asyncio.wait_for(_events(other, elsewhere, 1), 2)  # another company: free
    waiting = asyncio.create_task(_events(company, accounts[0], 1))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the company's writers wait for the bulk writer
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiting), 5)


async def test_record_many_links_each_batch_in_order_into_every_chain(db, databases):
    """One INSERT per batch, interleaved accounts and the company chain (which starts where
    the legacy chain ends), three batches racing one another and a single writer: every
    chain is whole, each id is its event's, and the command line verifies it."""
    company = await make_company()
    first, second = await make_customer(company), await make_customer(company)
    await _legacy_rows(company, first, 2)
    await _events(company, first, 1)

    def batch(b: int) -> list[history.Event]:
        return [
            history.Event(
                company.id,
                Actor.system(),
                f"test.batch{b}",
                customer_id=customer.id if customer else None,
                details={"b": b, "n": n},
            )
            for n, customer in enumerate([first, second, None, first, first, None])
        ]

    written = await asyncio.gather(
        *(history.record_many(batch(b)) for b in range(3)), _events(company, second, 1)
    )
    for b, ids in enumerate(written[:3]):
        rows = await HistoryEvent.select().where(HistoryEvent.id.is_in(ids))
        by_id = {r["id"]: r for r in rows}
        assert [by_id[i]["details"] for i in ids] == [
            history.canonical_json({"b": b, "n": n}) for n in range(6)
        ]
        assert {by_id[i]["kind"] for i in ids} == {f"test.batch{b}"}
        # A batch's events of one chain are consecutive there, in the order given.
        for chain in (f"c{first.id}", f"c{second.id}", f"k{company.id}"):
            seqs = [by_id[i]["seq"] for i in ids if by_id[i]["chain"] == chain]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert await history.record_many([]) == []
    counts = {
        r["chain"]: (r["n"], r["top"])
        for r in await HistoryEvent.raw(
            "SELECT chain, COUNT(*) AS n, MAX(seq) AS top FROM history_event "
            "WHERE chain IS NOT NULL GROUP BY chain"
        )
    }
    assert counts == {f"c{first.id}": (10, 10), f"c{second.id}": (4, 4), f"k{company.id}": (6, 6)}
    report = await verify()
    assert report.ok and report.checked == 22
    url = databases.urls[db]
    ok = _relance(["history", "verify"], url)
    assert ok.returncode == 0 and "History intact: 22 events checked" in ok.stdout, ok.stdout

    middle = written[1][3]
    await _sql(f"UPDATE history_event SET details = '{{}}' WHERE id = {middle}")
    broken = _relance(["history", "verify"], url)
    assert broken.returncode == 1 and f"BROKEN at event {middle} (altered" in broken.stdout
