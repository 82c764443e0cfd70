"""The demo's data: the weeks before today replayed leave each collector a day's work, the
inbox and finance pages something to act on, and a ledger that could be real.

One demo is built (SQLite, in its own folder) for the whole module: about ten seconds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from receivables.clock import today_in
from receivables.db import make_engine, migrate, start, stop, use_engine
from receivables.demo import DemoSummary, build, make_plan
from receivables.demo.bank import example_statements
from receivables.demo.data import COMPANY_TIMEZONE
from receivables.dunning.agenda import Who, agenda
from receivables.dunning.tables import ActionStatus, Channel, Level
from receivables.history import Actor, HistoryEvent
from receivables.ledger.tables import Customer, Item
from receivables.payments.bank_reconciliation import import_statement
from receivables.payments.tables import FinanceException, StripePayout
from receivables.portal.emails import PortalMail
from receivables.portal.tables import Feedback, FeedbackStatus
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET
from web.mailing import TemplateComposer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
async def demo(tmp_path_factory) -> AsyncIterator[tuple[DemoSummary, object]]:
    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'relance-demo.sqlite3'}"
    engine = make_engine(url)
    await migrate(engine)
    await start(engine)
    settings = load_settings(
        {"SECRET_KEY": TEST_SECRET, "DATABASE_URL": url, "DOCUMENTS_DIR": str(folder / "docs")}
    )
    mail = PortalMail(
        compose=TemplateComposer(ROOT / "templates"),
        mail_from=settings.smtp_from,
        base_url=settings.base_url,
    )
    summary = await build(settings, mail)
    yield summary, engine
    await stop(engine)


@pytest.fixture
async def seeded(demo) -> DemoSummary:
    summary, engine = demo
    use_engine(engine)  # other modules' tests point the tables elsewhere meanwhile
    return summary


def _today() -> date:
    return today_in(COMPANY_TIMEZONE)


async def test_every_collector_has_a_days_work(seeded):
    today = _today()
    assert len(seeded.collectors) >= 2
    for user in seeded.collectors:
        found = await agenda(today, who=Who.mine, user_id=user.id)
        entries = [e for _, _, group in found.groups for e in group]
        kinds = {
            "to_confirm": [e for e in entries if e.status == ActionStatus.to_confirm.value],
            "call": [
                e
                for e in entries
                if e.channel == Channel.phone.value and e.level != Level.litigation.value
            ],
            "letter": [e for e in entries if e.channel == Channel.letter.value],
            "late": [e for e in entries if e.due_on < today],
        }
        missing = [kind for kind, found_entries in kinds.items() if not found_entries]
        assert not missing, f"{user.name}'s agenda lacks {missing}: {seeded.agenda}"
        assert seeded.agenda[user.name]["total"] == len(entries)


async def test_promises_were_broken_and_answers_wait_in_the_inbox(seeded):
    assert await HistoryEvent.count().where(HistoryEvent.kind == "promise.broken") >= 1
    pending = await Feedback.select(Feedback.customer).where(
        Feedback.status == FeedbackStatus.pending.value
    )
    assert pending
    collectors = {
        c["collector"]
        for c in await Customer.select(Customer.collector).where(
            Customer.id.is_in([p["customer"] for p in pending])
        )
    }
    assert collectors == {u.id for u in seeded.collectors}


async def test_finance_has_exceptions_and_a_reconciled_payout(seeded):
    open_exceptions = await FinanceException.count().where(FinanceException.resolved_at.is_null())
    assert open_exceptions >= 2
    assert await FinanceException.count().where(FinanceException.resolved_at.is_not_null())
    assert await StripePayout.exists().where(StripePayout.balanced == True)  # noqa: E712


async def test_the_ledger_could_be_real(seeded):
    today = _today()
    late = await Item.select(Item.number, Item.issue_date).where(Item.issue_date > today)
    assert late == [], "no invoice is issued after today"
    for c in await Customer.select(Customer.ref, Customer.address, Customer.country):
        lines = c["address"].splitlines()
        town = lines[-2] if len(lines) >= 3 else ""
        # A postcode (digits, or the British and Irish letters-and-digits) beside a town.
        assert re.search(r"\b[A-Z]{0,2}\d[\dA-Z]*\b", town), (c["ref"], c["address"])
        assert re.search(r"[^\W\d_]{3,}", town), (c["ref"], c["address"])


def test_the_sample_statements_do_not_depend_on_the_day():
    booked = date(2026, 11, 27)
    assert example_statements(make_plan(date(2026, 3, 2)), booked) == example_statements(
        make_plan(date(2027, 1, 15)), booked
    )
    csv_file, camt_file = example_statements(make_plan(date(2026, 3, 2)), booked)
    assert (EXAMPLES / "bank-statement-demo.csv").read_bytes() == csv_file, (
        "examples/ is stale: python examples/make_bank_statements.py"
    )
    assert (EXAMPLES / "bank-statement-demo.xml").read_bytes() == camt_file


async def test_the_sample_statements_match_the_demo(seeded):
    actor = Actor.system("test")
    company = seeded.company.id
    csv_report = await import_statement(
        company_id=company,
        filename="bank-statement-demo.csv",
        content=(EXAMPLES / "bank-statement-demo.csv").read_bytes(),
        currency="EUR",
        actor=actor,
    )
    assert (csv_report.proposed, csv_report.review, csv_report.debits) == (2, 3, 1)
    camt_report = await import_statement(
        company_id=company,
        filename="bank-statement-demo.xml",
        content=(EXAMPLES / "bank-statement-demo.xml").read_bytes(),
        currency="EUR",
        actor=actor,
    )
    assert (camt_report.proposed, camt_report.review) == (2, 0)


def test_the_demo_terminal_is_quiet(capsys):
    from web.logs import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("INFO", demo=True)
        access = logging.getLogger("relance.access")
        access.info("request", extra={"method": "GET", "path": "/static/css/relance.css"})
        access.info("request", extra={"method": "GET", "path": "/backoffice/agenda", "status": 200})
        logging.getLogger("weasyprint.progress").info("Step 4 - Creating formatting structure")
        logging.getLogger("fontTools.subset").info("maxp pruned")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "GET /backoffice/agenda 200" in lines[0], lines
