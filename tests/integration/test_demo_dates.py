"""The demo built around midnight in Paris: its 'today' is the company's date, not the UTC one.

Between midnight in Paris and midnight UTC the two disagree by a day. The demo opened at
00:30 on a Monday in Paris must hold Monday's work, as at 10:00; opened at 00:30 on a
Saturday (still Friday in UTC) it must not make a run for Friday as if it were today: the
company sends on business days only, so the agenda holds Friday's work, late. The clock
travels (time-machine); SQLite only, the engine does not matter here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import time_machine

from receivables.clock import company_today
from receivables.db import current_engine
from receivables.demo import build
from receivables.dunning.agenda import LATE_GROUP, Who, agenda
from receivables.dunning.tables import DunningRun
from receivables.portal.emails import PortalMail
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET, _empty_all_tables
from web.mailing import TemplateComposer

ROOT = Path(__file__).resolve().parents[2]
MONDAY_0030_PARIS = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)  # Sunday in UTC
SATURDAY_0030_PARIS = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)  # Friday in UTC


async def _build_at(moment: datetime, folder: Path) -> tuple[date, dict[str, list]]:
    """The demo built at `moment`, and its agenda for everyone as the page reads it."""
    settings = load_settings(
        {"SECRET_KEY": TEST_SECRET, "DOCUMENTS_DIR": str(folder / f"docs-{moment:%d}")}
    )
    mail = PortalMail(
        compose=TemplateComposer(ROOT / "templates"),
        mail_from=settings.smtp_from,
        base_url=settings.base_url,
    )
    with time_machine.travel(moment, tick=True):
        summary = await build(settings, mail)
        today = await company_today()
        found = await agenda(today, who=Who.everyone)
    assert sum(c["total"] for c in summary.agenda.values()) > 0, summary.agenda
    return today, {key: entries for key, _, entries in found.groups}


async def test_the_demo_opened_after_midnight_in_paris_holds_the_companys_day(sqlite_db, tmp_path):
    today, groups = await _build_at(MONDAY_0030_PARIS, tmp_path)
    assert today == date(2026, 11, 30)
    todays = {key: entries for key, entries in groups.items() if key != LATE_GROUP}
    assert todays, f"only late work on Monday: {list(groups)}"
    assert {e.due_on for entries in todays.values() for e in entries} == {today}
    assert await DunningRun.exists().where(DunningRun.run_on == today)

    await _empty_all_tables(current_engine())  # the next demo starts afresh
    today, groups = await _build_at(SATURDAY_0030_PARIS, tmp_path)
    assert today == date(2026, 12, 5)
    assert list(groups) == [LATE_GROUP], "no run on a Saturday: Friday's work is late"
    assert max(e.due_on for e in groups[LATE_GROUP]) == date(2026, 12, 4)
    assert not await DunningRun.exists().where(DunningRun.run_on >= date(2026, 12, 5))
