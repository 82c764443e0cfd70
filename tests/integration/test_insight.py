"""The dashboard's figures on a ledger built by hand, each checked against numbers worked
out by hand below, on both engines.

The ledger (company A, EUR unless said; T = Tuesday 30 June 2026):

    invoice  customer  issued  due     amount   what happened
    A1       Alpha     15/03   14/04   1000.00  paid 20/04 (P1, 6 days late)
    A2       Alpha     10/05   09/06   2000.00  500.00 paid 19/06 (P2, 10 days late); 1500 open
    A3       Alpha     20/06   20/07    600.00  open, not due
    B1       Beta      01/02   03/03    800.00  disputed (price)
    B2       Beta      25/04   25/05   1200.00  promised 01/06 for 20/06: broken 24/06
    B3       Beta      01/04   01/05    400.00  promised 05/05 for 20/05: kept, paid 18/05 (P3)
    B4       Beta      01/06   16/06    300.00  promised 26/06 for 03/07: running
    G1       Gamma     10/01   09/02    700.00  open
    G2       Gamma     25/06   25/07    900.00  open, not due
    CN1      Gamma     05/06   05/06    100.00  credit note, open
    U1       Gamma     01/06   01/07 USD 250.00 open, not due
    P4       Gamma     28/06            50.00   payment not applied
    (company B: one overdue EUR invoice of 100.00, left out of company A's figures)
"""

from datetime import date, timedelta
from decimal import Decimal

from receivables.access.tables import Role
from receivables.dunning.tables import ActionStatus, DunningAction
from receivables.history import Actor
from receivables.insight import figures as f
from receivables.insight import snapshots
from receivables.ledger.allocations import allocate
from receivables.ledger.tables import ItemKind, ItemStatus, PromiseToPay
from receivables.money import Money
from receivables.portal.tables import Feedback
from tests.factories import make_company, make_customer, make_item, make_payment

T = date(2026, 6, 30)


def eur(amount: str) -> int:
    return Money(Decimal(amount), "EUR").minor


async def _staff(name: str) -> int:
    from receivables.access.staff import create_user

    user = await create_user(f"{name.lower()}@seller.example", name, Role.collector, "pw-" * 6)
    return int(user.id)


async def build_ledger() -> dict:
    a = await make_company(code="A")
    camille = await _staff("Camille")
    alpha = await make_customer(a, name="Alpha", collector=camille)
    beta = await make_customer(a, name="Beta", collector=camille)
    gamma = await make_customer(a, name="Gamma")
    sys = Actor.system("test")

    async def inv(c, number, issued, due, amount, **kw):
        return await make_item(c, amount, number=number, issue_date=issued, due=due, **kw)

    a1 = await inv(alpha, "A1", date(2026, 3, 15), date(2026, 4, 14), "1000.00")
    a2 = await inv(alpha, "A2", date(2026, 5, 10), date(2026, 6, 9), "2000.00")
    await inv(alpha, "A3", date(2026, 6, 20), date(2026, 7, 20), "600.00")
    await inv(
        beta,
        "B1",
        date(2026, 2, 1),
        date(2026, 3, 3),
        "800.00",
        status=ItemStatus.disputed.value,
        dispute_reason="price",
    )
    b2 = await inv(beta, "B2", date(2026, 4, 25), date(2026, 5, 25), "1200.00")
    b3 = await inv(beta, "B3", date(2026, 4, 1), date(2026, 5, 1), "400.00")
    b4 = await inv(
        beta,
        "B4",
        date(2026, 6, 1),
        date(2026, 6, 16),
        "300.00",
        status=ItemStatus.promised.value,
        promise_date=date(2026, 7, 3),
    )
    g1 = await inv(gamma, "G1", date(2026, 1, 10), date(2026, 2, 9), "700.00")
    await inv(gamma, "G2", date(2026, 6, 25), date(2026, 7, 25), "900.00")
    cn1 = await inv(
        gamma,
        "CN1",
        date(2026, 6, 5),
        date(2026, 6, 5),
        "100.00",
        kind=ItemKind.credit_note,
    )
    await inv(gamma, "U1", date(2026, 6, 1), date(2026, 7, 1), "250.00", currency="USD")

    for customer, item, amount, on in (
        (alpha, a1, "1000.00", date(2026, 4, 20)),
        (alpha, a2, "500.00", date(2026, 6, 19)),
        (beta, b3, "400.00", date(2026, 5, 18)),
    ):
        p = await make_payment(customer, amount, received_on=on)
        await allocate(p.id, item.id, Money(Decimal(amount), "EUR"), sys)
    await make_payment(gamma, "50.00", received_on=date(2026, 6, 28))

    for item, customer, made, promised, status, closed in (
        (b2, beta, date(2026, 6, 1), date(2026, 6, 20), "broken", date(2026, 6, 24)),
        (b3, beta, date(2026, 5, 5), date(2026, 5, 20), "kept", date(2026, 5, 18)),
        (b4, beta, date(2026, 6, 26), date(2026, 7, 3), "running", None),
    ):
        await PromiseToPay.insert(
            PromiseToPay(
                company=a.id,
                customer=customer.id,
                item=item.id,
                promised_for=promised,
                made_on=made,
                status=status,
                closed_on=closed,
            )
        )

    # Camille: Beta's level 1 done on 10/06 and its level 2 due today; Alpha's call due
    # since 25/06. Gamma (no collector) has an answer waiting.
    def action(customer, name, level, due_on, status, done_on=None):
        return DunningAction(
            company=a.id,
            customer=customer.id,
            step_name=name,
            level=level,
            channel="email",
            mode="manual",
            offset_days=0,
            cycle_start=date(2026, 5, 25),
            due_on=due_on,
            status=status,
            done_on=done_on,
        )

    await DunningAction.insert(
        action(beta, "First reminder", "level_1", date(2026, 6, 10), "done", date(2026, 6, 10)),
        action(beta, "Second reminder", "level_2", T, ActionStatus.due.value),
        action(alpha, "Call", "level_1", date(2026, 6, 25), ActionStatus.due.value),
    )
    await Feedback.insert(
        Feedback(company=a.id, customer=gamma.id, item=g1.id, batch="b1", kind="question")
    )

    b = await make_company(code="B")
    other = await make_customer(b, name="Other")
    await inv(other, "O1", date(2026, 4, 1), date(2026, 5, 1), "100.00")
    return {
        "a": a.id,
        "camille": camille,
        "alpha": alpha.id,
        "beta": beta.id,
        "gamma": gamma.id,
        "cn1": cn1.id,
        "g1": g1.id,
    }


async def test_every_figure_by_hand(db):
    ids = await build_ledger()
    scope = f.Scope(company_id=ids["a"])

    # Live balances on T. Open invoices: A2 1500 + A3 600 + B1 800 + B2 1200 + B4 300
    # + G1 700 + G2 900 = 6000. On hold: B1 (dispute) 800 + B4 (promise till 03/07 + 3)
    # 300 = 1100. Overdue (past due, not held): A2 1500 + B2 1200 + G1 700 = 3400.
    # Not due: A3 600 + G2 900 = 1500. Share overdue 3400 / 6000 = 56.67 %.
    # Credits: CN1 100 + P4 50 = 150. Buckets: not due 1500; 1-30: A2 (21 days) 1500
    # + B4 (14) 300 = 1800; 31-60: B2 (36) 1200; 61-90: 0; over 90: B1 (119) 800
    # + G1 (141) 700 = 1500.
    live = await f.balances(scope, T)
    assert list(live) == ["EUR", "USD"]
    e = live["EUR"]
    assert (e.open_minor, e.overdue_minor, e.on_hold_minor, e.not_due_minor) == (
        eur("6000"),
        eur("3400"),
        eur("1100"),
        eur("1500"),
    )
    assert e.share_overdue == Decimal("56.7")
    assert e.credits_minor == eur("150")
    expected_t = [eur(x) for x in ("1500", "1800", "1200", "0", "1500")]
    assert list(e.buckets.values()) == expected_t
    assert live["USD"].open_minor == 25000 and live["USD"].overdue_minor == 0
    # All companies: company B's 100.00 overdue is added; Camille's accounts: Alpha 1500 +
    # Beta 1200.
    assert (await f.balances(f.Scope(), T))["EUR"].overdue_minor == eur("3500")
    mine = await f.balances(f.Scope(company_id=ids["a"], collector_id=ids["camille"]), T)
    assert mine["EUR"].overdue_minor == eur("2700")
    assert list(await f.balances(f.Scope(currency="USD"), T)) == ["USD"]

    # Aging rebuilt for T equals the live buckets. On 31/05: A2 2000 not due; B2 (6 days)
    # 1200; B1 (89 days) 800; G1 (111 days) 700; A1 and B3 were paid by then.
    # On 15/04: B3 400 not due (issued 01/04); A1 (1 day, P1 came 20/04) 1000; B1 (43 days)
    # 800; G1 (65 days) 700; A2, B2 not issued yet.
    assert list((await f.aging_as_of(scope, T))["EUR"].values()) == expected_t
    may = await f.aging_as_of(scope, date(2026, 5, 31))
    assert list(may["EUR"].values()) == [eur(x) for x in ("2000", "1200", "0", "800", "700")]
    april = await f.aging_as_of(scope, date(2026, 4, 15))
    assert list(april["EUR"].values()) == [eur(x) for x in ("400", "1000", "800", "700", "0")]
    assert "USD" not in april

    # DSO on T. Invoiced by month back from T: (30/05, 30/06] 31 days: A3 600 + B4 300
    # + G2 900 = 1800; (30/04, 30/05] 30 days: A2 2000; (30/03, 30/04] 31 days: B2 1200
    # + B3 400 = 1600; (28/02, 30/03] 30 days: A1 1000.
    # Count-back: 6000 - 1800 = 4200 (31 d), - 2000 = 2200 (61 d), - 1600 = 600 (92 d),
    # 600 / 1000 x 30 = 18 d: 110.0 days.
    # Simple over 3 months (30/03, 30/06], 92 days, sales 5400: 6000 / 5400 x 92 = 102.2.
    # Best possible: 1500 / 5400 x 92 = 25.6. ADD: 4500 / 5400 x 92 = 76.7.
    # CEI 30: open on 31/05 = A2 2000 + B1 800 + B2 1200 + G1 700 = 4700; invoiced since:
    # A3 600 + B4 300 + G2 900 = 1800; (4700 + 1800 - 6000) / (4700 + 1800 - 1500) = 10.0 %.
    # CEI 90: open on 01/04 = A1 1000 + B1 800 + B3 400 + G1 700 = 2900; invoiced since:
    # A2 2000 + A3 600 + B2 1200 + B4 300 + G2 900 = 5000;
    # (2900 + 5000 - 6000) / (2900 + 5000 - 1500) = 1900 / 6400 = 29.7 %.
    r = (await f.ratios(scope, T))["EUR"]
    assert r.dso_countback == Decimal("110.0")
    assert (r.period_sales_minor, r.period_days) == (eur("5400"), 92)
    assert (r.dso_simple, r.best_dso, r.add) == (
        Decimal("102.2"),
        Decimal("25.6"),
        Decimal("76.7"),
    )
    assert (r.cei_30, r.cei_90) == (Decimal("10.0"), Decimal("29.7"))

    # Disputes: B1, 800, price, over 90 days past due. Promises: B4 running (300); over 90
    # days B3 kept, B2 broken: 50 %.
    d = (await f.disputes(scope, T))["EUR"]
    assert (d.count, d.amount_minor, d.by_reason) == (1, eur("800"), {"price": (1, eur("800"))})
    assert d.by_age["90+"] == (1, eur("800")) and d.by_age["1-30"] == (0, 0)
    p = await f.promises(scope, T)
    assert (p.running, p.running_minor, p.kept, p.broken, p.kept_rate) == (
        1,
        {"EUR": eur("300")},
        1,
        1,
        Decimal("50.0"),
    )

    # Workload: Camille has Beta's level 2 due today and Alpha's call overdue; Gamma's
    # question waits with no collector.
    work = {w.collector: w for w in await f.workload(scope, T)}
    assert (work["Camille"].due_today, work["Camille"].overdue_tasks) == (1, 1)
    assert work["Camille"].pending_answers == 0
    assert (work[""].due_today, work[""].pending_answers) == (0, 1)

    # Top accounts: Alpha 1500 (no action done; next: the call of 25/06), Beta 1200 (level 1
    # done; next: level 2 today), Gamma 700.
    top = (await f.top_accounts(scope, T))["EUR"]
    assert [(t.name, t.overdue_minor) for t in top] == [
        ("Alpha", eur("1500")),
        ("Beta", eur("1200")),
        ("Gamma", eur("700")),
    ]
    assert (top[0].level, top[0].next_step, top[0].next_on) == ("", "Call", date(2026, 6, 25))
    assert (top[1].level, top[1].next_step, top[1].next_on) == ("level_1", "Second reminder", T)

    # Average days late over 6 months: Alpha (1000 x 6 + 500 x 10) / 1500 = 7.3 -> 7;
    # Beta 17 (B3 paid 18/05, due 01/05); Gamma none (0).
    late = await f.average_days_late(scope, T)
    assert late == {ids["alpha"]: 7, ids["beta"]: 17}

    # Forecast made on T; weeks from Monday 29/06. A2 09/06 + 7 -> now (week 0); B2 25/05
    # + 17 -> now; G1 -> now; B4 at its promised 03/07 (week 0); G2 25/07 (week 3: 20-26/07);
    # A3 20/07 + 7 = 27/07 (week 4); B1 disputed, left out. Week 0 = 1500 + 1200 + 700 + 300.
    fc = (await f.forecast(scope, T))["EUR"]
    assert fc.weeks[0] == (date(2026, 6, 29), eur("3700"))
    assert fc.weeks[3] == (date(2026, 7, 20), eur("900"))
    assert fc.weeks[4] == (date(2026, 7, 27), eur("600"))
    assert sum(m for _, m in fc.weeks) == eur("5200")
    assert (fc.disputed_minor, fc.later_minor) == (eur("800"), 0)

    # Rebuild: month ends and past Mondays' forecasts, then T's figures.
    # Forecast rebuilt for Monday 22/06: open then A2 1500 (P2 came 19/06), B1 800 (past
    # disputes are not dated), B2 1200, G1 700 all due -> week of 22/06 = 4200; B4 16/06
    # + 17 = 03/07 next week; received that week: P4 50.
    # For Monday 15/06: A2 2000 (Alpha's lateness then: 6 days, 09/06 + 6 = 15/06), B1 800,
    # B2 1200, G1 700 -> 4700; received that week: P2 500.
    await snapshots.rebuild(T)
    versus = (await snapshots.forecast_vs_actual(scope, T))["EUR"]
    by_week = {w.week_start: (w.forecast_minor, w.actual_minor) for w in versus}
    assert by_week[date(2026, 6, 22)] == (eur("4200"), eur("50"))
    assert by_week[date(2026, 6, 15)] == (eur("4700"), eur("500"))

    # Trend: 31/05 rebuilt, past due = 4700 - 2000 not due = 2700; count-back on 31/05:
    # (30/04, 31/05] 31 d A2 2000 -> 2700 left; (31/03, 30/04] 30 d 1600 -> 1100 left;
    # (28/02, 31/03] 31 d A1 1000 -> 100 left; (31/01, 28/02] 28 d B1 800: 100/800 x 28 =
    # 3.5: 95.5 days. 30/04: past due B1 800 + G1 700 = 1500. June: T's figures (3400, 110).
    points = {p.month: p for p in (await snapshots.trend(scope, T))["EUR"]}
    may_end = points[date(2026, 5, 31)]
    assert (may_end.overdue_minor, may_end.dso, may_end.rebuilt) == (
        eur("2700"),
        Decimal("95.5"),
        True,
    )
    assert points[date(2026, 4, 30)].overdue_minor == eur("1500")
    assert (points[T].overdue_minor, points[T].dso, points[T].rebuilt) == (
        eur("3400"),
        Decimal("110"),
        False,
    )
    # A point for each month end from the first invoice (January: G1 alone, 31 days).
    assert sorted(points)[0] == date(2026, 1, 31) and len(points) == 6
    assert points[date(2026, 1, 31)].dso == Decimal("31")

    # Finance applies CN1 (100.00) to G1: through its carrier payment, dated as the credit
    # note (05/06). G1 owes 600 now and on any date from 05/06; credits drop to P4's 50; no
    # money came in (the week of 01/06 collected nothing) and Gamma still has no lateness.
    from receivables.ledger.cash_application import apply

    await apply("credit_note", ids["cn1"], {ids["g1"]: "100.00"}, Actor.system("test"))
    after = (await f.balances(scope, T))["EUR"]
    assert (after.buckets["90+"], after.credits_minor) == (eur("1400"), eur("50"))
    assert (await f.aging_as_of(scope, date(2026, 6, 5)))["EUR"]["90+"] == eur("1500") - eur("100")
    assert (await f.aging_as_of(scope, date(2026, 6, 4)))["EUR"]["90+"] == eur("1500")
    assert await f.collected(scope, [date(2026, 6, 1)]) == {}
    assert ids["gamma"] not in await f.average_days_late(scope, T)

    # What the page reads: T's kept figures, the same as computed.
    kept = await snapshots.latest(scope, T + timedelta(days=1))
    assert kept is not None and kept.taken_on == T
    assert kept.nightly.ratios["EUR"].cei_90 == Decimal("29.7")
    assert kept.nightly.balances["EUR"].buckets == e.buckets
    assert [t.name for t in kept.nightly.top["EUR"]] == ["Alpha", "Beta", "Gamma"]


async def test_the_page_and_the_aged_balance(db, client):
    """The page as admin on the same ledger: the kept figures, a past date's aging, a
    collector's figures computed now, the charts, and the aged balance whose totals are
    the page's buckets for that date."""
    import csv
    import io
    import re
    from datetime import UTC, datetime

    import openpyxl
    import time_machine

    from receivables.access.staff import create_user

    ids = await build_ledger()
    await create_user("boss@seller.example", "Boss", Role.admin, "boss-password-2026")
    await snapshots.write_nightly(f.Scope(company_id=ids["a"]), T)
    with time_machine.travel(datetime(2026, 6, 30, 12, tzinfo=UTC), tick=True):
        login = await client.get("/backoffice/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', login.text).group(1)
        r = await client.post(
            "/backoffice/login",
            data={
                "email": "boss@seller.example",
                "password": "boss-password-2026",
                "_csrf_token": token,
            },
        )
        assert r.status_code == 303
        start = await client.get("/backoffice/")
        assert start.headers["location"] == "/backoffice/dashboard"

        def figure(html: str, fid: str) -> str:
            block = html.split(f'id="fig-{fid}"', 1)[1]
            return re.search(r'class="stat-value">([^<]*)<', block).group(1).strip()

        page = await client.get(f"/backoffice/dashboard?company={ids['a']}")
        assert page.status_code == 200
        html = page.text
        assert "As of the night of" in html and "30 Jun 2026" in html
        assert figure(html, "open-EUR") == "€6,000.00"
        assert figure(html, "overdue-EUR") == "€3,400.00"
        assert figure(html, "share-EUR") == "56.7 %"
        assert figure(html, "hold-EUR") == "€1,100.00"
        assert figure(html, "dso-EUR") == "110.0 days"
        assert figure(html, "add-EUR") == "76.7 days"
        assert figure(html, "cei90-EUR") == "29.7 %"
        assert figure(html, "open-USD") == "US$250.00"
        # Each figure carries its definition, on hover and in small print.
        tile = html.split('id="fig-overdue-EUR"', 1)[1].split("</div>", 1)[0]
        assert tile.startswith(' title="Past its due date and not on hold')
        assert 'class="stat-hint dash-def">Past its due date and not on hold' in tile
        # Each chart is an SVG with shapes, and its numbers in a table.
        for chart in (
            "aging-EUR",
            "disputes-EUR",
            "overdue-trend-EUR",
            "dso-trend-EUR",
            "forecast-EUR",
        ):
            svg = html.split(f'id="chart-{chart}"', 1)[1].split("</svg>", 1)[0]
            assert "<svg" in svg and ("<rect" in svg or "<polyline" in svg), chart
        assert 'id="aging-table-EUR"' in html and 'id="forecast-table-EUR"' in html
        assert "Alpha" in html.split('id="top-table-EUR"', 1)[1]

        # A past date's aging, and its aged balance: the same totals.
        may = await client.get(f"/backoffice/dashboard?company={ids['a']}&on=2026-05-31")
        aging = may.text.split('id="aging-table-EUR"', 1)[1].split("</table>", 1)[0]
        amounts = re.findall(r'class="num[^"]*">(€[0-9,.]+)<', aging)
        assert amounts == ["€2,000.00", "€1,200.00", "€0.00", "€800.00", "€700.00", "€4,700.00"]
        xlsx = await client.get(
            f"/backoffice/dashboard/aged-balance?company={ids['a']}&on=2026-05-31&format=xlsx"
        )
        assert xlsx.status_code == 200
        sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True).active
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert rows[0][:3] == ["Customer", "Name", "Currency"]
        by_name = {r[1]: r[3:] for r in rows[1:] if r[0] != "Total"}
        assert by_name["Alpha"] == [2000, 0, 0, 0, 0, 2000]
        assert by_name["Beta"] == [0, 1200, 0, 800, 0, 2000]
        totals = [r for r in rows if r[0] == "Total"]
        assert totals == [["Total", None, "EUR", 2000, 1200, 0, 800, 700, 4700]]

        # Today's aged balance in CSV: the page's buckets (EUR and USD apart).
        text = (
            await client.get(f"/backoffice/dashboard/aged-balance?company={ids['a']}&format=csv")
        ).content.decode("utf-8-sig")
        lines = list(csv.reader(io.StringIO(text)))
        assert [
            "Total",
            "",
            "EUR",
            "1500.00",
            "1800.00",
            "1200.00",
            "0.00",
            "1500.00",
            "6000.00",
        ] in lines
        assert ["Total", "", "USD", "250.00", "0.00", "0.00", "0.00", "0.00", "250.00"] in lines

        # One collector's accounts: not kept overnight, computed for the page.
        mine = await client.get(f"/backoffice/dashboard?collector={ids['camille']}")
        assert "Computed now" in mine.text
        assert figure(mine.text, "overdue-EUR") == "€2,700.00"


async def test_the_nightly_job_writes_once_after_the_run(sqlite_db):
    """The worker's job: nothing before the company's run has finished today, then its
    figures and those of all companies, once."""
    from receivables.clock import now, today_in
    from receivables.dunning.tables import DunningRun
    from receivables.insight.tables import InsightSnapshot

    company = await make_company(code="N")
    customer = await make_customer(company)
    await make_item(customer, "100.00", due=today_in("UTC") - timedelta(days=3))
    assert await snapshots.write_due() == 0
    run = DunningRun(run_on=today_in("UTC"), company=company.id, triggered_by="test")
    await run.save()
    assert await snapshots.write_due() == 0  # started, not finished
    await DunningRun.update({DunningRun.finished_at: now()}).where(DunningRun.id == run.id)
    assert await snapshots.write_due() == 2
    assert await snapshots.write_due() == 0
    rows = await InsightSnapshot.select(InsightSnapshot.company, InsightSnapshot.overdue_minor)
    assert sorted((r["company"] or 0, r["overdue_minor"]) for r in rows) == [
        (0, 10000),
        (company.id, 10000),
    ]
