"""Payer profile suggestions: six months of payments, promises and disputes of a few customers,
the suggestion and its reason computed by hand, then accepted in one click from the account."""
# ruff: noqa: F811 - pytest fixtures imported from test_backoffice are parameters here

from __future__ import annotations

import html
import re
from datetime import date, timedelta

from receivables.clock import company_today
from receivables.db import atomic
from receivables.dunning.payer_profiles import (
    BAD_PAYER_MIN_BROKEN,
    BAD_PAYER_MIN_DAYS,
    DISPUTE_PRONE_MIN_DISPUTES,
    ON_TIME_MAX_DAYS,
    PaymentBehaviour,
    _average,
    months_before,
    profile_for,
    profile_suggestions,
    suggestion_for,
)
from receivables.history import Actor, ActorKind, HistoryEvent
from receivables.ledger.account_changes import StatusInput, set_item_status
from receivables.ledger.allocations import allocate
from receivables.ledger.promises import settle_promises
from receivables.ledger.tables import Customer, Item
from receivables.money import Money
from receivables.portal.feedback import AnswerForm, submit_answer, validate
from tests.conftest import app_client
from tests.factories import make_contact, make_customer, make_item, make_payment
from tests.integration.test_backoffice import (  # noqa: F401 - fixtures
    bo_app,
    sign_in,
    stub_mail,
    world,
)

SYSTEM = Actor.system("test")


def words(page) -> str:
    """The page's text: tags out, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


async def paid(customer: Customer, amount: str, *, due: date, on: date, pay: str = "") -> Item:
    """An invoice due on `due`, paid (`pay` of it, else all) by a payment received on `on`."""
    item = await make_item(customer, amount, due=due)
    payment = await make_payment(customer, pay or amount, received_on=on)
    await allocate(payment.id, item.id, Money.from_minor(payment.amount_minor, "EUR"), SYSTEM)
    return item


async def broken_promise(customer: Customer, *, made: date, settled: date) -> None:
    """An open invoice promised on `made` for 5 days later; the run on `settled` breaks it."""
    item = await make_item(customer, "400.00", due=made - timedelta(days=10))
    promise = StatusInput(status="promised", promise_date=made + timedelta(days=5))
    await set_item_status(customer.id, item.id, promise, SYSTEM, made)
    async with atomic():
        result = await settle_promises([customer.id], settled, SYSTEM)
    assert [b["item"] for b in result.broken] == [item.id]


async def six_months(company, tmp_path) -> dict[str, Customer]:
    t = await company_today(company.id)
    d = lambda n: t - timedelta(days=n)  # noqa: E731 - n days ago
    c = {
        "prompt": await make_customer(company, name="Prompt Print", payer_profile="negligent"),
        "slow": await make_customer(company, name="Slow Logistics"),
        "promiser": await make_customer(company, name="Promise Pharmacy"),
        "disputer": await make_customer(company, name="Dispute Dental", payer_profile="negligent"),
        "mandate": await make_customer(company, name="Mandate Motors", payer_profile="automatic"),
        "newcomer": await make_customer(company, name="Newcomer Nursery"),
    }
    # prompt: 1000 paid 2 days early (counts 0), 2000 on the day (0), 3000 two days late:
    # (1000x0 + 2000x0 + 3000x2) / 6000 = 1 day <= ON_TIME_MAX_DAYS -> good payer.
    await paid(c["prompt"], "1000.00", due=d(150), on=d(152))
    await paid(c["prompt"], "2000.00", due=d(90), on=d(90))
    await paid(c["prompt"], "3000.00", due=d(30), on=d(28))
    # slow: 1000 20 days late, 1000 40 days late, 1000 of a 2000 invoice 30 days late:
    # (1000x20 + 1000x40 + 1000x30) / 3000 = 30 >= BAD_PAYER_MIN_DAYS -> bad payer. The invoice
    # paid 100 days late 200 days ago is before the six months: not counted.
    await paid(c["slow"], "1000.00", due=d(120), on=d(100))
    await paid(c["slow"], "1000.00", due=d(80), on=d(40))
    await paid(c["slow"], "2000.00", due=d(60), on=d(30), pay="1000.00")
    await paid(c["slow"], "5000.00", due=d(300), on=d(200))
    # promiser: 1000 3 days late, 500 6 days late: (3000 + 3000) / 1500 = 4 days (on time),
    # but two promises broken in the six months (a third, 210 days ago, is older) -> bad payer.
    await paid(c["promiser"], "1000.00", due=d(100), on=d(97))
    await paid(c["promiser"], "500.00", due=d(50), on=d(44))
    await broken_promise(c["promiser"], made=d(60), settled=d(45))
    await broken_promise(c["promiser"], made=d(20), settled=d(10))
    await broken_promise(c["promiser"], made=d(220), settled=d(210))
    # disputer: 1000 10 days late (negligent on its own), and two invoices disputed: one by a
    # collector (twice: disputed, reopened, disputed again, still one invoice), one from the
    # portal, validated -> dispute-prone.
    await paid(c["disputer"], "1000.00", due=d(70), on=d(60))
    first = await make_item(c["disputer"], "700.00", due=d(20))
    for status in ("disputed", "open", "disputed"):
        data = StatusInput(status=status, dispute_reason="price" if status == "disputed" else "")
        await set_item_status(c["disputer"].id, first.id, data, SYSTEM, t)
    second = await make_item(c["disputer"], "300.00", due=d(5))
    contact = await make_contact(c["disputer"])
    submitted = await submit_answer(
        customer_id=c["disputer"].id,
        contact_id=contact.id,
        actor=Actor(ActorKind.contact, contact.email, contact.id),
        ip="198.51.100.4",
        item_ids=[str(second.id)],
        form=AnswerForm(kind="dispute", dispute_reason="quality", text="Broken on arrival"),
        proof=None,
        today=t,
        documents_dir=tmp_path,
        mail=stub_mail(),
    )
    await validate(submitted.feedback_ids[0], SYSTEM)
    # mandate: paid on the due date, but its direct debit is why: automatic stands.
    await paid(c["mandate"], "800.00", due=d(15), on=d(15))
    # newcomer: nothing paid yet -> no suggestion.
    await make_item(c["newcomer"], "900.00", due=d(10))
    return c


def test_the_rules_read_in_order():
    b = PaymentBehaviour(customer_id=1, since=date(2026, 1, 1), invoices_paid=1, days_late=0)
    assert profile_for(b) == "good_payer"
    assert profile_for(PaymentBehaviour(1, b.since)) is None
    late = b.__class__(1, b.since, 1, ON_TIME_MAX_DAYS + 1)
    assert profile_for(late) == "negligent"
    assert profile_for(b.__class__(1, b.since, 1, 0, broken_promises=1)) == "negligent"
    assert profile_for(b.__class__(1, b.since, 1, BAD_PAYER_MIN_DAYS)) == "bad_payer"
    broken = b.__class__(1, b.since, 1, 0, broken_promises=BAD_PAYER_MIN_BROKEN)
    assert profile_for(broken) == "bad_payer"
    very_late = b.__class__(1, b.since, 1, 90, disputes=DISPUTE_PRONE_MIN_DISPUTES)
    assert profile_for(very_late) == "dispute_prone"
    assert months_before(date(2026, 8, 31), 6) == date(2026, 2, 28)
    assert months_before(date(2026, 3, 15), 6) == date(2025, 9, 15)
    several = PaymentBehaviour(1, b.since, 3, 12, "USD", several_currencies=True)
    assert "(amount-weighted, USD invoices)" in several.reason
    # Never added across currencies: EUR 30000 x days / 3000 = 10, USD 20000 / 1000 = 20 (the
    # latest-paying currency is the figure); 12.5 rounds half up to 13.
    assert _average(
        [
            {"currency": "EUR", "paid_minor": 3000, "weighted": 30000},
            {"currency": "USD", "paid_minor": 1000, "weighted": 20000},
        ]
    ) == (20, "USD")
    assert _average([{"currency": "EUR", "paid_minor": 200, "weighted": 2500}]) == (13, "EUR")
    # What the figures cannot see: insolvency, a direct debit, an approval circuit.
    bad = b.__class__(1, b.since, 1, 45)
    assert suggestion_for("insolvent", bad) is None
    assert suggestion_for("automatic", b) is None and suggestion_for("automatic", bad)
    assert suggestion_for("administrative", late) is None
    assert suggestion_for("administrative", bad) == "bad_payer"
    assert suggestion_for("bad_payer", bad) is None and suggestion_for("negligent", b)


async def test_six_months_of_behaviour_suggest_profiles_and_one_click_accepts(
    bo_app, world, tmp_path
):
    c = await six_months(world.company, tmp_path)
    t = await company_today(world.company.id)
    found = await profile_suggestions([x.id for x in c.values()], t)
    got = {k: (found[x.id].suggested, found[x.id].reason) for k, x in c.items()}
    over = "(amount-weighted) over 6 months"
    assert got == {
        "prompt": ("good_payer", f"3 invoices paid on average 1 day late {over}"),
        "slow": ("bad_payer", f"3 invoices paid on average 30 days late {over}"),
        "promiser": (
            "bad_payer",
            f"2 invoices paid on average 4 days late {over}, 2 promises broken",
        ),
        "disputer": (
            "dispute_prone",
            f"1 invoice paid on average 10 days late {over}, 2 invoices disputed",
        ),
        "mandate": (None, f"1 invoice paid on average 0 days late {over}"),
        "newcomer": (None, "no invoice paid over 6 months: not enough history"),
    }

    async with app_client(bo_app) as client:
        token = await sign_in(client, world.users["collector"].email)
        listed_page = await client.get("/backoffice/customers?sort=name")
        listed = words(listed_page)
        assert "suggested: bad payer — 3 invoices paid on average 30 days late" in listed
        assert "suggested: dispute prone — 1 invoice paid" in listed
        assert (
            listed_page.text.count('/payer-profile/accept"') == 4
        )  # prompt, slow, promiser, disputer

        slow = f"/backoffice/customers/{c['slow'].id}"
        page = words(await client.get(slow))
        assert "Suggested profile: Bad payer" in page and "instead of good payer" in page
        assert f"3 invoices paid on average 30 days late {over}." in page
        # A suggestion that no longer holds is not applied.
        r = await client.post(
            f"{slow}/payer-profile/accept", data={"_csrf_token": token, "profile": "negligent"}
        )
        assert r.status_code == 303
        assert "The suggestion changed" in words(await client.get(slow))
        assert (await Customer.objects().get(Customer.id == c["slow"].id)).payer_profile == (
            "good_payer"
        )
        # Without the CSRF token: refused.
        r = await client.post(f"{slow}/payer-profile/accept", data={"profile": "bad_payer"})
        assert r.status_code == 403
        r = await client.post(
            f"{slow}/payer-profile/accept", data={"_csrf_token": token, "profile": "bad_payer"}
        )
        assert r.status_code == 303 and r.headers["location"] == slow
        page = words(await client.get(slow))
        assert "Payer profile set to bad payer; its default scenario now applies." in page
        assert "Suggested profile" not in page and "the profile stands" in page
        assert (
            "Account payer profile → bad payer Suggested by the payment behaviour: 3 invoices"
            in page
        )

        # From the list: back to the list.
        back = "/backoffice/customers?sort=name"
        r = await client.post(
            f"/backoffice/customers/{c['disputer'].id}/payer-profile/accept",
            data={"_csrf_token": token, "profile": "dispute_prone", "back": back},
        )
        assert r.status_code == 303 and r.headers["location"] == back

        page = words(await client.get(f"/backoffice/customers/{c['newcomer'].id}"))
        assert "not enough history" in page and "Accept:" not in page

    slow_row = await Customer.objects().get(Customer.id == c["slow"].id)
    assert slow_row.payer_profile == "bad_payer"
    events = await HistoryEvent.select(HistoryEvent.details, HistoryEvent.actor_label).where(
        (HistoryEvent.customer == c["slow"].id) & (HistoryEvent.kind == "account.assigned")
    )
    assert len(events) == 1
    assert '"payer_profile":{"from":"good_payer","to":"bad_payer"}' in events[0]["details"]
    assert '"via":"suggestion"' in events[0]["details"]
    assert '"days_late":30' in events[0]["details"]
    assert events[0]["actor_label"] == world.users["collector"].email
    after = await profile_suggestions([c["slow"].id, c["disputer"].id], t)
    assert after[c["slow"].id].suggested is None
    assert after[c["disputer"].id].suggested is None
    assert (await Customer.objects().get(Customer.id == c["disputer"].id)).payer_profile == (
        "dispute_prone"
    )
