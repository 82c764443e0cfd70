"""File import on both engines: the example files, idempotency, all-or-nothing, exact values."""

from __future__ import annotations

import importlib.util
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook

from receivables.access.tables import Role, StaffUser
from receivables.errors import InvalidInput
from receivables.history import Actor, HistoryEvent
from receivables.ledger.imports import import_files, import_uploads
from receivables.ledger.records import parse_item, upsert_items
from receivables.ledger.statement import build_statement
from receivables.ledger.tables import (
    Allocation,
    Company,
    Contact,
    Customer,
    Item,
    ItemStatus,
    Payment,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = [
    EXAMPLES / "companies.csv",
    EXAMPLES / "customers.csv",
    EXAMPLES / "contacts.csv",
    EXAMPLES / "items.xlsx",
    EXAMPLES / "payments.csv",
]
ACTOR = Actor.system("import test")
TABLES = (Company, Customer, Contact, Item, Payment, Allocation)


def _example_items():
    spec = importlib.util.spec_from_file_location(
        "make_items_xlsx", EXAMPLES / "make_items_xlsx.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _counts() -> dict[str, int]:
    return {t._meta.tablename: await t.count() for t in TABLES}


async def _snapshot() -> dict[str, list[dict]]:
    return {t._meta.tablename: await t.select().order_by(t.id) for t in TABLES}


async def _import_examples():
    report = await import_files(FILES, actor=ACTOR)
    assert report.problems == [], report.problem_lines()
    assert report.written
    return report


async def _item(number: str) -> dict:
    return await Item.select().where(Item.number == number).first()


def _csv(tmp_path: Path, name: str, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


async def test_example_files_import(db):
    report = await _import_examples()

    assert [f.kind for f in report.files] == [
        "companies",
        "customers",
        "contacts",
        "items",
        "payments",
    ]
    assert report.summary_lines() == [
        "companies: 1 created, 0 updated, 0 unchanged",
        "customers: 8 created, 0 updated, 0 unchanged",
        "contacts: 10 created, 0 updated, 0 unchanged",
        "items: 32 created, 0 updated, 0 unchanged",
        "payments: 3 created, 0 updated, 0 unchanged",
    ]
    assert await _counts() == {
        "company": 1,
        "customer": 8,
        "contact": 10,
        "item": 32,
        "payment": 3,
        "allocation": 2,
    }
    company = await Company.select().first()
    assert company["code"] == "ATL" and company["name"] == "Atelier Lumière SAS"
    assert company["iban"] == "FR7630006000011234567890189" and company["bic"] == "AGRIFRPP"
    assert company["locale"] == "fr_FR" and company["penalty_policy"] == "france"
    assert company["address"] == "18 rue des Vinaigriers\n75010 Paris\nFrance"

    profiles = {r["ref"]: r["payer_profile"] for r in await Customer.select()}
    assert profiles["CLI-003"] == "bad_payer" and profiles["CLI-006"] == "dispute_prone"
    assert profiles["CLI-001"] == profiles["CLI-008"] == "good_payer"
    assert len(set(profiles.values())) == 7
    limits = {r["ref"]: r["credit_limit_minor"] for r in await Customer.select()}
    assert limits["CLI-001"] == 1_500_000 and limits["CLI-004"] is None

    northbridge = await Contact.select().where(Contact.name == "Oliver Grant").first()
    assert northbridge["email"] == "ap@northbridge-interiors.co.uk"
    reminders = {r["email"]: r["receives_reminders"] for r in await Contact.select()}
    assert reminders["j.roche@boulangeries-martin.fr"] is False
    assert reminders["sandrine@transports-lefevre.fr"] is True  # "oui"

    usd = await _item("F2026-0110")
    assert usd["currency"] == "USD" and usd["total_minor"] == 299_999
    assert (await _item("AV2026-0001"))["kind"] == "credit_note"
    paid = await _item("F2026-0101")
    assert paid["open_minor"] == 0 and paid["status"] == ItemStatus.paid.value
    partial = await _item("F2026-0105")
    assert partial["total_minor"] == 243_560 and partial["open_minor"] == 143_560
    unallocated = await Payment.select().where(Payment.ref == "CB-2026-0077").first()
    assert unallocated["unapplied_minor"] == unallocated["amount_minor"] == 45_000
    received = await Payment.select().where(Payment.ref == "VIR-2026-0431").first()
    assert received["received_on"] == date(2026, 6, 12)  # written 12/06/2026


async def test_reimport_leaves_the_same_rows(db):
    await _import_examples()
    before = await _snapshot()

    again = await import_files(FILES, actor=ACTOR)

    assert again.problems == [] and again.written
    assert {k: (r.created, r.updated) for k, r in again.results.items()} == {
        k: (0, 0) for k in ("companies", "customers", "contacts", "items", "payments")
    }
    assert [r.unchanged for r in again.results.values()] == [1, 8, 10, 32, 3]
    assert await _snapshot() == before


async def test_one_bad_row_imports_nothing_from_any_file(db):
    files = [
        EXAMPLES / "companies.csv",
        EXAMPLES / "customers.csv",
        EXAMPLES / "bad" / "items_bad.csv",
    ]

    report = await import_files(files, actor=ACTOR)

    assert not report.ok and not report.written and report.results == {}
    assert await _counts() == dict.fromkeys(
        ("company", "customer", "contact", "item", "payment", "allocation"), 0
    )
    assert await HistoryEvent.count() == 0
    name = str(EXAMPLES / "bad" / "items_bad.csv")
    assert [(p.file, p.line, p.column) for p in report.problems] == [
        (name, 3, "due_date"),
        (name, 4, "total"),
        (name, 5, "customer_ref"),
        (name, 6, "currency"),
    ]
    assert "'31/02/2026' is not a real date" in report.problems[0].message
    assert "more than zero" in report.problems[1].message
    assert "CLI-999" in report.problems[2].message
    assert "EURO" in report.problems[3].message
    assert report.problem_lines()[0].startswith(f"{name}, line 3, column due_date: ")


async def test_every_problem_of_every_row_and_file_is_reported(db, tmp_path):
    await _import_examples()
    items = _csv(
        tmp_path,
        "items.csv",
        "Number,Customer ref,Issue date,Due date,Currency,Total\n"
        "F-1,CLI-001,2026-13-01,2026-05-31,XYZ,abc\n"
        "F-2,CLI-001,2026-05-01,2026-04-30,EUR,10.001\n"
        "F-3,CLI-001,2026-05-01,2026-05-31,EUR,12.00\n"
        "F-3,CLI-002,2026-05-01,2026-05-31,EUR,13.00\n",
    )
    payments = _csv(
        tmp_path,
        "payments.csv",
        "ref,customer_ref,received_on,amount,item_number\n"
        "P-1,CLI-404,2026-06-01,10.00,\n"
        "P-2,CLI-001,2026-06-01,99999.00,F2026-0102\n"
        "VIR-2026-0412,CLI-001,2026-05-28,1900.00,F2026-0101\n",
    )
    before = await _snapshot()

    report = await import_files([items, payments], actor=ACTOR)

    found = [(Path(p.file).name, p.line, p.column) for p in report.problems]
    assert found == [
        ("items.csv", 2, "Issue date"),
        ("items.csv", 2, "Currency"),
        ("items.csv", 2, "Total"),
        ("items.csv", 3, "Due date"),
        ("items.csv", 3, "Total"),
        ("items.csv", 5, "Number"),
        ("payments.csv", 2, "customer_ref"),
        ("payments.csv", 3, "item_number"),
        ("payments.csv", 4, "amount"),
    ]
    messages = [p.message for p in report.problems]
    assert "appears twice (also line 4)" in messages[5]
    assert "only 742.35 EUR open" in messages[7]
    assert "already recorded with amount 1860.00" in messages[8]
    assert await _snapshot() == before


async def test_xlsx_dates_and_amounts_are_exact(db):
    await _import_examples()
    module = _example_items()
    rows = {r["number"]: r for r in await Item.select()}
    assert len(rows) == len(module.ITEMS)
    for number, _customer, kind, due_in, terms, currency, total, po in module.ITEMS:
        row = rows[number]
        due = module.REFERENCE_DATE + timedelta(days=due_in)
        assert row["due_date"] == due and row["issue_date"] == due - timedelta(days=terms)
        assert row["total_minor"] == int(Decimal(total) * 100), number
        assert row["currency"] == currency and row["po_number"] == po
        assert row["kind"] == ("invoice" if kind == "Invoice" else "credit_note")


async def test_xlsx_float_cells_and_text_dates(db, tmp_path):
    await import_files(FILES[:2], actor=ACTOR)
    book = Workbook()
    sheet = book.active
    sheet.append(["Due date", "Number", "customer_ref", "Issue date", "currency", "TOTAL"])
    sheet.append([datetime(2026, 7, 31), "X-1", "CLI-001", date(2026, 7, 1), "EUR", 0.1 + 0.2])
    sheet.append(["31/07/2026", "X-2", "CLI-001", "2026-07-01", "eur", 1234567.89])
    sheet.append([None, None, None, None, None, None])
    sheet.append([date(2026, 8, 1), "X-3", "CLI-003", date(2026, 7, 2), "JPY", 150000])
    sheet.append([date(2026, 8, 1), "X-4", "CLI-003", date(2026, 7, 2), "KWD", 12.345])
    path = tmp_path / "floats.xlsx"
    book.save(path)

    report = await import_files([path], actor=ACTOR)

    assert report.problems == [] and report.files[0].kind == "items"
    got = {
        r["number"]: (r["total_minor"], r["issue_date"], r["due_date"]) for r in await Item.select()
    }
    assert got == {
        "X-1": (30, date(2026, 7, 1), date(2026, 7, 31)),
        "X-2": (123456789, date(2026, 7, 1), date(2026, 7, 31)),
        "X-3": (150000, date(2026, 7, 2), date(2026, 8, 1)),
        "X-4": (12345, date(2026, 7, 2), date(2026, 8, 1)),
    }


async def test_csv_with_semicolons_bom_and_french_headers(db, tmp_path):
    await import_files(FILES[:2], actor=ACTOR)
    items = _csv(
        tmp_path,
        "export-erp.csv",
        "\ufeffN° facture;Client;Type;Date;Échéance;Devise;Montant TTC\n"
        "F-10;CLI-001;Facture;05/06/2026;05/07/2026;EUR;1 234,50\n"
        'F-11;CLI-002;avoir;06/06/2026;06/06/2026;EUR;"12,30"\n'
        ";;;;;;\n"
        "F-12;CLI-002;invoice;2026-06-07;2026-07-07;EUR;1.234,56\n",
    )

    report = await import_files([items], actor=ACTOR)

    assert report.problems == [] and report.files[0].kind == "items"
    got = {
        r["number"]: (r["kind"], r["total_minor"], r["issue_date"], r["due_date"])
        for r in await Item.select()
    }
    assert got == {
        "F-10": ("invoice", 123450, date(2026, 6, 5), date(2026, 7, 5)),
        "F-11": ("credit_note", 1230, date(2026, 6, 6), date(2026, 6, 6)),
        "F-12": ("invoice", 123456, date(2026, 6, 7), date(2026, 7, 7)),
    }


async def test_a_comma_amount_in_a_comma_file_is_caught(db, tmp_path):
    await import_files(FILES[:2], actor=ACTOR)
    items = _csv(
        tmp_path,
        "items.csv",
        "number,customer_ref,issue_date,due_date,currency,total\n"
        "F-20,CLI-001,2026-06-05,2026-07-05,EUR,12,50\n",
    )
    report = await import_files([items], actor=ACTOR)
    assert [(p.line, p.column) for p in report.problems] == [(2, "")]
    assert "7 cells for 6 columns" in report.problems[0].message
    assert await Item.count() == 0


async def test_total_below_allocated_is_refused(db, tmp_path):
    await _import_examples()
    before = await _snapshot()
    items = _csv(
        tmp_path,
        "items.csv",
        "number,customer_ref,issue_date,due_date,currency,total\n"
        "F2026-0102,CLI-001,2026-06-12,2026-07-12,EUR,750.00\n"
        "F2026-0105,CLI-002,2026-03-16,2026-04-30,EUR,999.99\n",
    )

    report = await import_files([items], actor=ACTOR)

    assert [(p.line, p.column) for p in report.problems] == [(3, "total")]
    assert "less than the 1000.00 EUR already allocated to F2026-0105" in report.problems[0].message
    assert await _snapshot() == before


async def test_customer_or_currency_of_an_allocated_item_cannot_change(db, tmp_path):
    await _import_examples()
    items = _csv(
        tmp_path,
        "items.csv",
        "number,customer_ref,issue_date,due_date,currency,total\n"
        "F2026-0105,CLI-003,2026-03-16,2026-04-30,EUR,2435.60\n"
        "F2026-0101,CLI-001,2026-04-28,2026-05-29,USD,1860.00\n"
        "F2026-0104,CLI-003,2026-02-16,2026-03-03,EUR,3120.00\n",
    )

    report = await import_files([items], actor=ACTOR)

    assert [(p.line, p.column) for p in report.problems] == [(2, "customer_ref"), (3, "currency")]
    assert (await _item("F2026-0104"))["customer"] != (
        await Customer.select(Customer.id).where(Customer.ref == "CLI-003").first()
    )["id"]


async def test_open_amounts_follow_a_changed_total(db, tmp_path):
    await _import_examples()
    items = _csv(
        tmp_path,
        "items.csv",
        "number,customer_ref,issue_date,due_date,currency,total\n"
        "F2026-0105,CLI-002,2026-03-16,2026-04-30,EUR,2500.00\n"
        "F2026-0101,CLI-001,2026-04-28,2026-05-29,EUR,2000.00\n"
        "F2026-0102,CLI-001,2026-06-12,2026-07-12,EUR,700.00\n",
    )

    report = await import_files([items], actor=ACTOR)
    assert report.problems == [] and report.results["items"].updated == 3

    partial, was_paid, plain = [await _item(n) for n in ("F2026-0105", "F2026-0101", "F2026-0102")]
    assert (partial["total_minor"], partial["open_minor"]) == (250_000, 150_000)
    assert (was_paid["open_minor"], was_paid["status"]) == (14_000, ItemStatus.open.value)
    assert (plain["total_minor"], plain["open_minor"]) == (70_000, 70_000)

    again = await import_files([items], actor=ACTOR)
    assert again.results["items"].unchanged == 3
    assert (await _item("F2026-0105"))["open_minor"] == 150_000

    # Back to the allocated amount exactly: settled again.
    settle = _csv(
        tmp_path,
        "settle.csv",
        "number,customer_ref,issue_date,due_date,currency,total\n"
        "F2026-0101,CLI-001,2026-04-28,2026-05-29,EUR,1860.00\n",
    )
    await import_files([settle], actor=ACTOR)
    item = await _item("F2026-0101")
    assert (item["open_minor"], item["status"]) == (0, ItemStatus.paid.value)
    customer = await Customer.select(Customer.id).where(Customer.ref == "CLI-002").first()
    statement = await build_statement(customer["id"], date(2026, 6, 30))
    lines = {line.number: line.open.amount for line in statement.invoices}
    assert lines["F2026-0105"] == Decimal("1500.00")


async def test_payments_are_facts(db, tmp_path):
    await _import_examples()
    payments = _csv(
        tmp_path,
        "payments.csv",
        "ref,customer_ref,received_on,amount,currency,method\n"
        "CB-2026-0077,CLI-007,2026-06-20,460.00,EUR,card\n"
        "VIR-2026-0431,CLI-001,12/06/2026,1000.00,EUR,transfer\n"
        "VIR-2026-0412,CLI-001,2026-05-29,1860.00,EUR,Bank transfer\n",
    )

    report = await import_files([payments], actor=ACTOR)

    assert [(p.line, p.column) for p in report.problems] == [(2, "amount"), (3, "customer_ref")]
    fixed = _csv(
        tmp_path,
        "payments.csv",
        "ref,customer_ref,received_on,amount,currency,method\n"
        "VIR-2026-0412,CLI-001,2026-05-29,1860.00,EUR,Bank transfer\n",
    )
    report = await import_files([fixed], actor=ACTOR)
    assert report.results["payments"].updated == 1
    row = await Payment.select().where(Payment.ref == "VIR-2026-0412").first()
    assert row["received_on"] == date(2026, 5, 29) and row["unapplied_minor"] == 0
    assert await Allocation.count() == 2


async def test_history_has_one_event_per_imported_kind(db):
    await _import_examples()
    kinds = [
        r["kind"] for r in await HistoryEvent.select(HistoryEvent.kind).order_by(HistoryEvent.id)
    ]
    imports = [k for k in kinds if k.startswith("import.")]
    assert imports == [
        "import.companies",
        "import.customers",
        "import.contacts",
        "import.items",
        "import.payments",
    ]
    assert kinds.count("allocation.created") == 2
    items_event = await HistoryEvent.select().where(HistoryEvent.kind == "import.items").first()
    details = json.loads(items_event["details"])
    assert details["created"] == 32 and details["unchanged"] == 0
    assert details["source"].endswith("items.xlsx")
    assert len(details["refs"]) == 20 and details["more_refs"] == 12
    assert items_event["item"] is None and items_event["actor_label"] == "import test"

    await import_files(FILES, actor=ACTOR)
    kinds = [r["kind"] for r in await HistoryEvent.select(HistoryEvent.kind)]
    assert sorted(k for k in kinds if k.startswith("import.")) == sorted(imports * 2)
    assert kinds.count("allocation.created") == 2


async def test_customer_file_links_collectors_and_leaves_absent_columns(db, tmp_path):
    await _import_examples()
    collector = StaffUser(
        email="Camille@Atelier-Lumiere.fr", name="Camille", role=Role.collector, password_hash="x"
    )
    await collector.save()
    customers = _csv(
        tmp_path,
        "customers.csv",
        "ref,name,collector_email\n"
        "CLI-001,Boulangeries Martin SARL,camille@atelier-lumiere.fr\n"
        "CLI-002,Transports Lefèvre & Fils,nobody@atelier-lumiere.fr\n",
    )
    report = await import_files([customers], actor=ACTOR)
    assert [(p.line, p.column) for p in report.problems] == [(3, "collector_email")]

    customers = _csv(
        tmp_path,
        "customers.csv",
        "ref,name,collector_email\nCLI-001,Boulangeries Martin SARL,camille@atelier-lumiere.fr\n",
    )
    report = await import_files([customers], actor=ACTOR)
    assert report.results["customers"].updated == 1
    row = await Customer.select().where(Customer.ref == "CLI-001").first()
    assert row["collector"] == collector.id
    # Columns the file did not carry keep their values.
    assert (
        row["credit_limit_minor"] == 1_500_000 and row["address"] == "4 place du Marché, 69002 Lyon"
    )


async def test_unknown_columns_are_warned_and_kind_can_be_forced(db, tmp_path):
    await import_files(FILES[:2], actor=ACTOR)
    contacts = _csv(
        tmp_path,
        "people.csv",
        "Customer ref,E-mail,Name,Favourite colour\nCLI-001,ap@martin.example,Anne,blue\n",
    )
    report = await import_files([contacts], actor=ACTOR)
    assert report.written and report.files[0].kind == "contacts"
    assert report.warnings == [
        f"{contacts}: columns ignored (not contacts fields): Favourite colour"
    ]

    report = await import_files([contacts], actor=ACTOR, kind="items")
    assert not report.written
    assert {p.column for p in report.problems} >= {"number", "total"}


async def test_unreadable_files_are_problems(db, tmp_path):
    (tmp_path / "a.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "b.xlsx").write_bytes(b"not a zip")
    latin = tmp_path / "c.csv"
    latin.write_bytes("ref,name\nCLI-9,Société\n".encode("latin-1"))
    report = await import_files([tmp_path / "a.xls", tmp_path / "b.xlsx", latin], actor=ACTOR)
    assert [Path(p.file).name for p in report.problems] == ["a.xls", "b.xlsx", "c.csv"]
    assert "UTF-8" in report.problems[2].message
    assert not report.written


async def test_uploads_and_dry_run(db):
    uploads = [(p.name, p.read_bytes()) for p in FILES]
    checked = await import_uploads(uploads, actor=ACTOR, dry_run=True)
    assert checked.problems == [] and not checked.written
    assert await Company.count() == 0

    steps: list[tuple[str, int, int]] = []
    report = await import_uploads(uploads, actor=ACTOR, progress=lambda *s: steps.append(s))
    assert report.written and await Item.count() == 32
    assert ("items", 32, 32) in steps and ("read items.xlsx", 32, 32) in steps


async def test_upsert_one_item_through_the_api_functions(db):
    await import_files(FILES[:2], actor=ACTOR)
    record = parse_item(
        {
            "number": "API-1",
            "customer_ref": "CLI-008",
            "issue_date": "2026-06-01",
            "due_date": "2026-07-01",
            "currency": "EUR",
            "total": "99.90",
        }
    )
    api = Actor.system("erp")

    result = await upsert_items([record], api, company_code="ATL")

    assert (result.created, result.updated, result.unchanged) == (1, 0, 0)
    item_id = result.ids[("ATL", "API-1")]
    event = await HistoryEvent.select().where(HistoryEvent.kind == "api.items").first()
    assert event["item"] == item_id and event["customer"] is not None
    again = await upsert_items([record], api)
    assert (again.unchanged, again.ids[("ATL", "API-1")]) == (1, item_id)

    wrong = parse_item(
        {
            "number": "API-2",
            "customer_ref": "CLI-008",
            "issue_date": "2026-06-01",
            "due_date": "2026-07-01",
            "currency": "EUR",
            "total": "5",
            "company": "ZZZ",
        }
    )
    with pytest.raises(InvalidInput) as refused:
        await upsert_items([wrong], api, company_code="ATL")
    assert [p.field for p in refused.value.problems] == ["company"]
    assert "'ZZZ' is not ATL" in str(refused.value)
    assert await Item.count() == 1


async def test_amounts_are_read_in_the_files_locale(db, tmp_path):
    """The company's locale reads the file unless the import says otherwise; "1,000" has two
    readings in a French file and is refused with both; read the English way it is 1000."""
    await import_files(FILES[:2], actor=ACTOR)  # ATL, whose locale is fr_FR
    french = _csv(
        tmp_path,
        "fr.csv",
        "number;customer_ref;issue_date;due_date;currency;Montant TTC\n"
        "A-1;CLI-001;2026-06-05;2026-07-05;EUR;1 234,56\n"
        "A-2;CLI-001;2026-06-05;2026-07-05;EUR;1,000\n"
        "A-3;CLI-001;2026-06-05;2026-07-05;EUR;2\u202f500\n",
    )
    english = _csv(
        tmp_path,
        "en.csv",
        "number,customer_ref,issue_date,due_date,currency,Montant TTC\n"
        'B-1,CLI-001,2026-06-05,2026-07-05,EUR,"1,000"\n'
        'B-2,CLI-001,2026-06-05,2026-07-05,EUR,"12,500.50"\n',
    )

    report = await import_files([french], actor=ACTOR)
    assert report.amounts == "amounts read the fr_FR way (company ATL's locale)"
    assert [str(p) for p in report.problems] == [
        f"{french}, line 3, column Montant TTC: '1,000' could be 1000.00 or 1.00: set the "
        "file's locale or decimal separator (read the fr_FR way it has 3 decimals, EUR has "
        "fewer)"
    ]
    report = await import_files([french], actor=ACTOR, decimal_separator=",")
    assert [p.line for p in report.problems] == [3]
    report = await import_files([english], actor=ACTOR)
    assert [(p.line, p.column) for p in report.problems] == [(2, "Montant TTC"), (3, "Montant TTC")]
    assert "'12,500.50' is not an amount written the fr_FR way" in report.problems[1].message
    assert await Item.count() == 0  # nothing half-saved

    report = await import_files([english], actor=ACTOR, locale="en_GB")
    assert report.problems == [] and report.amounts == "amounts read the en_GB way"
    got = {r["number"]: r["total_minor"] for r in await Item.select()}
    assert got == {"B-1": 100000, "B-2": 1250050}
    with pytest.raises(ValueError, match="not both"):
        await import_files([english], actor=ACTOR, locale="en_GB", decimal_separator=".")


async def test_a_penalty_policy_imports_with_its_presets_values(db, tmp_path):
    await import_files(FILES[:1], actor=ACTOR)  # ATL: penalty_policy france
    company = await Company.objects().get(Company.code == "ATL")
    assert (company.penalty_margin_bp, company.compensation_minor) == (1000, 4000)

    # An admin's adjustment survives a re-import of the same policy...
    await Company.update({Company.penalty_margin_bp: 1200}).where(Company.id == company.id)
    assert (await import_files(FILES[:1], actor=ACTOR)).problems == []
    company = await Company.objects().get(Company.code == "ATL")
    assert (company.penalty_margin_bp, company.compensation_minor) == (1200, 4000)
    # ...a new policy brings its own preset, a policy without one leaves the values.
    eu = _csv(tmp_path, "eu.csv", "code,name,penalty_policy\nATL,Atelier Lumière SAS,eu\n")
    assert (await import_files([eu], actor=ACTOR)).problems == []
    company = await Company.objects().get(Company.code == "ATL")
    assert (company.penalty_policy, company.penalty_margin_bp) == ("eu", 800)
    new = _csv(tmp_path, "uk.csv", "code,name,currency,penalty_policy\nUKL,UK Ltd,GBP,uk\n")
    assert (await import_files([new], actor=ACTOR)).problems == []
    uk = await Company.objects().get(Company.code == "UKL")
    assert (uk.penalty_margin_bp, uk.compensation_minor) == (800, 0)
