"""The company's dunning rules and a scenario's spacing: strict input, named fields, history;
the scheduled run's hour, business days and time zone; the minimum worth chasing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from receivables.dunning.defaults import install_defaults
from receivables.dunning.rules import RulesInput, check_rules
from receivables.dunning.run import due_now, run_dunning
from receivables.dunning.tables import DunningAction, Scenario
from receivables.errors import InvalidInput
from receivables.history import HistoryEvent
from receivables.ledger.tables import Company, PayerProfile
from tests.conftest import app_client
from tests.factories import make_company, make_contact, make_customer, make_item
from tests.integration.test_backoffice import make_staff, sign_in
from tests.integration.test_dunning_pages import app  # noqa: F401 (fixture)
from tests.integration.test_dunning_run import settings_for

GOOD = RulesInput(min_amount="10", timezone="Europe/Paris", hour="8", notice_days="8")


def fields(exc: InvalidInput) -> set[str]:
    return {p.field for p in exc.problems}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"min_amount": "1,000"}, "min_amount"),  # ambiguous: refused, never 1.00
        ({"min_amount": "1 000"}, "min_amount"),
        ({"min_amount": "-5"}, "min_amount"),
        ({"min_amount": "10.555"}, "min_amount"),  # EUR has two decimals
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"hour": "24"}, "hour"),
        ({"hour": "7.5"}, "hour"),
        ({"notice_days": "0"}, "notice_days"),
    ],
)
def test_bad_rules_name_their_field(change, field):
    with pytest.raises(InvalidInput) as caught:
        check_rules(RulesInput(**{**GOOD.__dict__, **change}), "EUR")
    assert fields(caught.value) == {field}


def test_good_rules_read_exactly():
    rules = check_rules(RulesInput(**{**GOOD.__dict__, "min_amount": "10.50"}), "EUR")
    assert (rules.min_minor, rules.timezone, rules.hour, rules.notice_days) == (
        1050,
        "Europe/Paris",
        8,
        8,
    )
    assert (
        check_rules(RulesInput(**{**GOOD.__dict__, "min_amount": "1000"}), "JPY").min_minor == 1000
    )
    with pytest.raises(InvalidInput):
        check_rules(RulesInput(**{**GOOD.__dict__, "min_amount": "10.5"}), "JPY")


def test_the_scheduled_run_waits_for_the_companys_hour_and_business_days():
    paris = {"timezone": "Europe/Paris", "dunning_hour": 7, "dunning_business_days": True}
    # Friday 2026-03-06 05:30 UTC is 06:30 in Paris: not yet; 06:10 UTC is 07:10: go.
    with time_machine.travel(datetime(2026, 3, 6, 5, 30, tzinfo=UTC), tick=False):
        assert due_now(paris) is None
    with time_machine.travel(datetime(2026, 3, 6, 6, 10, tzinfo=UTC), tick=False):
        assert due_now(paris) == date(2026, 3, 6)
    # Saturday: nothing, unless the company runs every day.
    with time_machine.travel(datetime(2026, 3, 7, 12, 0, tzinfo=UTC), tick=False):
        assert due_now(paris) is None
        assert due_now({**paris, "dunning_business_days": False}) == date(2026, 3, 7)
    # 23:30 UTC on Sunday is already Monday in Tokyo: its date, not the server's.
    tokyo = {"timezone": "Asia/Tokyo", "dunning_hour": 7, "dunning_business_days": True}
    with time_machine.travel(datetime(2026, 3, 8, 23, 30, tzinfo=UTC), tick=False):
        assert due_now(tokyo) == date(2026, 3, 9)


async def test_amounts_under_the_minimum_are_not_chased_and_the_level_is_kept(db):
    company = await make_company(dunning_min_minor=5000)  # 50.00
    await install_defaults(company.id)
    small = await make_customer(company, payer_profile=PayerProfile.bad_payer.value)
    await make_contact(small)
    d = date(2026, 3, 10)
    await make_item(small, "30.00", due=d - timedelta(days=3), number="SMALL-1")
    assert (await run_dunning(d, settings_for())).created == 0
    await make_item(small, "30.00", due=d - timedelta(days=2), number="SMALL-2")  # 60 now
    assert (await run_dunning(d, settings_for())).created == 1


async def test_admin_sets_rules_and_spacing_with_values_kept_on_error(db, app):  # noqa: F811
    admin = await make_staff("admin")
    company = await make_company()
    await install_defaults(company.id)
    scenario = await Scenario.objects().where(Scenario.company == company.id).first()
    async with app_client(app) as client:
        csrf = await sign_in(client, admin.email)
        bad = {
            "_csrf_token": csrf,
            "min_amount": "1,000",
            "timezone": "Europe/Paris",
            "hour": "9",
            "notice_days": "10",
        }
        r = await client.post(f"/backoffice/penalties/rules?company={company.id}", data=bad)
        assert r.status_code == 422
        assert "an amount in EUR like 10 or 10.50" in r.text
        assert 'value="Europe/Paris"' in r.text and 'value="1,000"' in r.text
        good = {**bad, "min_amount": "25.50"}
        r = await client.post(f"/backoffice/penalties/rules?company={company.id}", data=good)
        assert r.status_code == 303
        saved = await Company.objects().get(Company.id == company.id)
        assert (saved.dunning_min_minor, saved.timezone, saved.dunning_hour) == (
            2550,
            "Europe/Paris",
            9,
        )
        assert saved.dunning_business_days is False  # the box was not ticked
        assert await HistoryEvent.exists().where(HistoryEvent.kind == "dunning.rules_set")
        form = {"_csrf_token": csrf, "name": scenario.name, "min_interval_days": "0"}
        r = await client.post(f"/backoffice/scenarios/{scenario.id}", data=form)
        assert r.status_code == 422 and "from 1 to 90" in r.text
        r = await client.post(
            f"/backoffice/scenarios/{scenario.id}", data={**form, "min_interval_days": "10"}
        )
        assert r.status_code == 303
        assert (await Scenario.objects().get(Scenario.id == scenario.id)).min_interval_days == 10
    assert await DunningAction.count() == 0
