"""The `relance` command as an operator runs it (subprocesses on real databases)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from receivables.access.portal_links import resolve_token
from receivables.db import current_engine
from receivables.demo import seed
from receivables.history import HistoryEvent
from tests.conftest import TEST_SECRET

RELANCE = str(Path(sys.executable).with_name("relance"))


def run(args: list[str], url: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    full_env.update({"DATABASE_URL": url, "COLUMNS": "200", **env})
    return subprocess.run(
        [RELANCE, *args], capture_output=True, text=True, env=full_env, timeout=120
    )


async def test_history_verify_on_demo_data_then_altered_row(db, databases):
    await seed(date(2026, 11, 22))
    url = databases.urls[db]
    ok = run(["history", "verify"], url)
    assert ok.returncode == 0, ok.stderr
    assert "History intact" in ok.stdout
    victim = (
        await HistoryEvent.select(HistoryEvent.id).order_by(HistoryEvent.id).offset(10).first()
    )["id"]
    await current_engine().run_ddl(
        f"UPDATE history_event SET actor_label = 'someone else' WHERE id = {victim}"
    )
    broken = run(["history", "verify"], url)
    assert broken.returncode == 1
    assert f"BROKEN at event {victim}" in broken.stdout


async def test_portal_link_and_settings_errors(db, databases):
    summary = await seed(date(2026, 11, 22))
    url = databases.urls[db]
    missing = run(["portal-link", "C0001"], url)
    assert missing.returncode == 2 and "SECRET_KEY: missing" in missing.stderr
    printed = run(
        ["portal-link", "C0001"], url, SECRET_KEY=TEST_SECRET, BASE_URL="https://pay.example.com"
    )
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.strip()
    assert link.startswith("https://pay.example.com/p/")
    resolved = await resolve_token(link.rsplit("/", 1)[1], TEST_SECRET)
    assert resolved is not None and resolved.customer == summary.customers[0].id
    unknown = run(["portal-link", "NOPE"], url, SECRET_KEY=TEST_SECRET)
    assert unknown.returncode == 1 and "no customer with reference NOPE" in unknown.stderr


async def test_createuser_names_the_bad_field(db, databases):
    url = databases.urls[db]
    bad = run(
        [
            "createuser",
            "--email",
            "not-an-email",
            "--name",
            "X",
            "--role",
            "collector",
            "--password",
            "short",
        ],
        url,
    )
    assert bad.returncode == 1
    assert "email:" in bad.stderr and "password: at least 10 characters" in bad.stderr
    good = run(
        [
            "createuser",
            "--email",
            "Ann@Example.com",
            "--name",
            "Ann",
            "--role",
            "finance",
            "--password",
            "long enough pass",
        ],
        url,
    )
    assert good.returncode == 0 and "Created finance ann@example.com" in good.stdout


def test_migrate_brings_an_empty_sqlite_file_to_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    first = run(["migrate"], url)
    assert first.returncode == 0, first.stderr
    again = run(["migrate"], url)
    assert again.returncode == 0 and "up to date" in again.stdout
    import sqlite3

    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "fresh.sqlite3").execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
        )
    }
    assert {"company", "customer", "item", "payment", "allocation", "history_event"} <= tables


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = [
    str(EXAMPLES / n)
    for n in ("companies.csv", "customers.csv", "contacts.csv", "items.xlsx", "payments.csv")
]


async def test_import_examples_twice_then_a_bad_file(db, databases):
    from receivables.ledger.tables import Customer, Item, Payment

    url = databases.urls[db]
    first = run(["import", *EXAMPLE_FILES], url)
    assert first.returncode == 0, first.stderr
    assert "items: 32 created" in first.stdout

    async def snapshot():
        return (
            await Customer.select(Customer.ref, Customer.name).order_by(Customer.ref),
            await Item.select(
                Item.number, Item.total_minor, Item.open_minor, Item.due_date
            ).order_by(Item.number),
            await Payment.select(Payment.ref, Payment.unapplied_minor).order_by(Payment.ref),
        )

    before = await snapshot()
    second = run(["import", *EXAMPLE_FILES], url)
    assert second.returncode == 0 and "items: 0 created, 0 updated, 32 unchanged" in second.stdout
    assert await snapshot() == before

    bad = run(["import", str(EXAMPLES / "bad" / "items_bad.csv")], url)
    assert bad.returncode == 1
    assert "Nothing imported" in bad.stderr
    assert "items_bad.csv, line 3, column due_date" in bad.stderr
    assert await snapshot() == before


async def test_import_reads_amounts_in_the_locale_it_is_given(db, databases, tmp_path):
    from receivables.ledger.tables import Company, Item

    url = databases.urls[db]
    assert run(["import", *EXAMPLE_FILES[:2]], url).returncode == 0  # ATL, fr_FR, france
    atl = await Company.objects().get(Company.code == "ATL")
    assert (atl.penalty_margin_bp, atl.compensation_minor) == (1000, 4000)
    items = tmp_path / "items.csv"
    items.write_text(
        "number,customer_ref,issue_date,due_date,currency,total\n"
        'X-1,CLI-001,2026-06-01,2026-07-01,EUR,"1,000"\n'
    )
    refused = run(["import", str(items)], url)
    assert refused.returncode == 1
    assert "line 2, column total: '1,000' could be 1000.00 or 1.00" in refused.stderr
    assert "(amounts read the fr_FR way (company ATL's locale))" in refused.stderr
    done = run(["import", "--locale", "en_GB", str(items)], url)
    assert done.returncode == 0, done.stderr
    assert await Item.select(Item.number, Item.total_minor) == [
        {"number": "X-1", "total_minor": 100000}
    ]
    both = run(["import", "--locale", "en_GB", "--decimal-separator", ".", str(items)], url)
    assert both.returncode == 2 and "not both" in both.stderr


async def test_apikey_create_list_revoke(db, databases):
    from receivables.access.api_keys import resolve_key
    from receivables.access.tables import ApiKey
    from tests.factories import make_company

    await make_company(code="ATL")
    url = databases.urls[db]
    created = run(["apikey", "create", "--name", "SAP production"], url)
    assert created.returncode == 0, created.stderr
    clear = created.stdout.strip()
    assert clear.startswith("rk_") and "shown once" in created.stderr
    stored = await ApiKey.select(ApiKey.key_hash, ApiKey.prefix).first()
    assert clear not in str(stored) and stored["prefix"] == clear[:10]
    assert await resolve_key(clear) is not None

    listed = run(["apikey", "list"], url)
    assert clear[:10] in listed.stdout and "SAP production" in listed.stdout
    assert clear not in listed.stdout
    revoked = run(["apikey", "revoke", clear[:10]], url)
    assert revoked.returncode == 0 and "Revoked 1 key" in revoked.stdout
    assert await resolve_key(clear) is None
    again = run(["apikey", "revoke", clear[:10]], url)
    assert again.returncode == 1 and "no active key" in again.stderr


# ------------------------------------------------------------------ relance demo


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_demo(folder: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    return subprocess.Popen(
        [RELANCE, "demo", "--port", str(_free_port()), "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "COLUMNS": "400"},
    )


def _wait_for_lock(folder: Path, proc: subprocess.Popen[str]) -> None:
    """The demo takes its folder's lock first thing, before touching the database."""
    import time

    deadline = time.monotonic() + 60
    lock = folder / "relance-demo.lock"
    while f'"pid": {proc.pid}' not in (lock.read_text() if lock.exists() else ""):
        assert proc.poll() is None, "the demo stopped before taking its lock"
        assert time.monotonic() < deadline, "the demo did not take its lock"
        time.sleep(0.1)


def test_a_second_demo_in_a_running_demos_folder_is_refused(tmp_path):
    first = _start_demo(tmp_path)
    try:
        _wait_for_lock(tmp_path, first)
        database = tmp_path / "relance-demo.sqlite3"
        database.touch(exist_ok=True)
        before = database.stat().st_ino
        second = subprocess.run(
            [RELANCE, "demo", "--port", str(_free_port()), "--dir", str(tmp_path)],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "400"},
            timeout=60,
        )
        assert second.returncode == 1
        assert "a demo is already running in" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert database.stat().st_ino == before, "the running demo's database was left alone"
    finally:
        first.kill()
        first.wait(timeout=30)
    # A demo that died without cleaning up leaves its lock to the next one.
    third = _start_demo(tmp_path)
    try:
        _wait_for_lock(tmp_path, third)
    finally:
        third.kill()
        third.wait(timeout=30)
