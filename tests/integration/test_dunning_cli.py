"""`relance dunning run` as an operator runs it, on the demo's data, on both engines."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from receivables.demo import seed
from receivables.dunning.tables import DunningAction, DunningRun
from receivables.mail.tables import OutboxMessage
from tests.conftest import TEST_SECRET

RELANCE = str(Path(sys.executable).with_name("relance"))
DAY = date(2026, 11, 22)


def relance(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET, "COLUMNS": "200"}
    return subprocess.run([RELANCE, *args], capture_output=True, text=True, env=env, timeout=300)


async def test_the_run_command_reports_what_it_did_and_is_idempotent(db, databases):
    await seed(DAY)
    url = databases.urls[db]
    first = relance(["dunning", "run", "--date", DAY.isoformat()], url)
    assert first.returncode == 0, first.stderr
    actions = await DunningAction.count()
    emails = await OutboxMessage.count().where(OutboxMessage.kind == "dunning")
    assert actions > 10 and emails > 0
    assert first.stdout.strip().splitlines()[-1] == (
        f"{actions} actions created, {emails} emails queued, 0 cancelled"
    )
    assert "Dunning run 2026-11-22" in first.stderr  # the progress bar, on stderr
    again = relance(["dunning", "run", "--date", DAY.isoformat()], url)
    assert (
        again.stdout.strip().splitlines()[-1] == "0 actions created, 0 emails queued, 0 cancelled"
    )
    assert await DunningAction.count() == actions
    runs = await DunningRun.select().order_by(DunningRun.id)
    assert [(r["created"], r["triggered_by"]) for r in runs] == [(actions, "cli"), (0, "cli")]
    later = relance(["dunning", "run", "--date", (DAY + timedelta(days=20)).isoformat()], url)
    assert later.returncode == 0 and not later.stdout.startswith("0 actions created")


async def test_a_bad_date_is_refused_with_the_field_named(db, databases):
    bad = relance(["dunning", "run", "--date", "22/11/2026"], databases.urls[db])
    assert bad.returncode == 2 and "Invalid value for '--date'" in bad.stderr
