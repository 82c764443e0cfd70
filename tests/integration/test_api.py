"""The JSON API for ERPs, over HTTP on the real app, on both engines."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from api.invoice_pdfs import MAX_PDF_BYTES
from receivables.access.api_keys import create_key
from receivables.access.tables import ApiKey
from receivables.history import HistoryEvent
from receivables.ledger.tables import Company, Contact, Customer, Item
from tests.conftest import TEST_SECRET
from tests.factories import make_company, make_customer, make_item

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def settings(tmp_path):
    """The app's settings with a documents folder of the test's own."""
    from receivables.settings import load_settings

    return load_settings(
        {
            "SECRET_KEY": TEST_SECRET,
            "BASE_URL": "http://testserver.local",
            "DOCUMENTS_DIR": str(tmp_path / "documents"),
        }
    )


@dataclass
class Erp:
    """A company with its API key, as an ERP holds it."""

    company: Company
    customer: Customer
    key: ApiKey
    auth: dict[str, str]


async def erp_of(code: str) -> Erp:
    company = await make_company(code=code)
    customer = await make_customer(company, ref=f"{code}-CUST")
    key, clear = await create_key(company, f"{code} ERP")
    return Erp(company, customer, key, {"Authorization": f"Bearer {clear}"})


@pytest.fixture
async def erp(db) -> Erp:
    return await erp_of("ATL")


def invoice(customer_ref: str, **overrides) -> dict:
    return {
        "customer_ref": customer_ref,
        "issue_date": "2026-06-01",
        "due_date": "2026-07-01",
        "currency": "EUR",
        "total": "1200.00",
        **overrides,
    }


def fields_named(body: dict) -> list[str]:
    return [p["field"] for p in body["problems"]]


# --------------------------------------------------------------------------------------
# Keys and schema


async def test_no_key_wrong_key_or_revoked_key_is_401(client, erp):
    path = f"/api/v1/customers/{erp.customer.ref}/statement"
    assert (await client.get(path, headers=erp.auth)).status_code == 200

    for headers in (
        {},
        {"Authorization": "Bearer rk_not-a-key-at-all"},
        {"Authorization": "Bearer "},
        {"Authorization": erp.auth["Authorization"].replace("Bearer", "Basic")},
    ):
        r = await client.get(path, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        put = await client.put("/api/v1/items/X-1", json=invoice("ATL-CUST"), headers=headers)
        assert put.status_code == 401
    assert await Item.count() == 0

    await ApiKey.update({ApiKey.revoked_at: datetime.now(UTC)}).where(ApiKey.id == erp.key.id)
    r = await client.get(path, headers=erp.auth)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


async def test_openapi_schema_is_served_without_a_key_and_lists_every_path(client):
    r = await client.get("/api/v1/schema/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert set(schema["paths"]) >= {
        "/api/v1/customers/{ref}",
        "/api/v1/customers/{ref}/contacts/{email}",
        "/api/v1/customers/{ref}/statement",
        "/api/v1/items/{number}",
        "/api/v1/items/{number}/pdf",
        "/api/v1/payments",
        "/api/v1/customers:batch",
        "/api/v1/contacts:batch",
        "/api/v1/items:batch",
        "/api/v1/payments:batch",
        "/api/v1/ledger:batch",
    }
    put_item = schema["paths"]["/api/v1/items/{number}"]["put"]
    assert put_item["summary"] and put_item["description"]
    assert put_item["parameters"][0]["in"] == "path"
    total = schema["components"]["schemas"]["ItemFields"]["properties"]["total"]
    assert total["type"] == "string"


# --------------------------------------------------------------------------------------
# Items


async def test_an_item_sent_twice_updates_it_and_never_duplicates(client, erp):
    first = await client.put("/api/v1/items/INV-100", json=invoice("ATL-CUST"), headers=erp.auth)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] is True and body["number"] == "INV-100"
    assert body["total"] == {"amount": "1200.00", "currency": "EUR"}
    assert body["open"] == {"amount": "1200.00", "currency": "EUR"}

    second = await client.put(
        "/api/v1/items/INV-100",
        json=invoice("ATL-CUST", total="1250.50", due_date="2026-07-15", po_number="PO-9"),
        headers=erp.auth,
    )
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["created"] is False
    assert body["total"]["amount"] == "1250.50" and body["open"]["amount"] == "1250.50"
    assert body["due_date"] == "2026-07-15" and body["po_number"] == "PO-9"

    rows = await Item.select().where(Item.number == "INV-100")
    assert len(rows) == 1
    assert rows[0]["total_minor"] == 125050 and rows[0]["due_date"] == date(2026, 7, 15)

    # po_number left out: kept; sent as null: cleared.
    kept = await client.put(
        "/api/v1/items/INV-100",
        json=invoice("ATL-CUST", total="1250.50", due_date="2026-07-15"),
        headers=erp.auth,
    )
    assert kept.status_code == 200 and kept.json()["po_number"] == "PO-9"
    cleared = await client.put(
        "/api/v1/items/INV-100",
        json=invoice("ATL-CUST", total="1250.50", due_date="2026-07-15", po_number=None),
        headers=erp.auth,
    )
    assert cleared.json()["po_number"] == ""

    events = await HistoryEvent.select(HistoryEvent.kind, HistoryEvent.actor_kind).where(
        HistoryEvent.kind == "api.items"
    )
    assert len(events) == 4 and {e["actor_kind"] for e in events} == {"api"}


async def test_a_bad_date_is_a_400_naming_due_date(client, erp):
    r = await client.put(
        "/api/v1/items/INV-1", json=invoice("ATL-CUST", due_date="2026-02-30"), headers=erp.auth
    )
    assert r.status_code == 400
    body = r.json()
    assert [e["key"] for e in body["extra"]] == ["due_date"]
    assert fields_named(body) == ["due_date"]

    before = await client.put(
        "/api/v1/items/INV-1", json=invoice("ATL-CUST", due_date="2026-05-01"), headers=erp.auth
    )
    assert before.status_code == 400
    assert fields_named(before.json()) == ["due_date"]
    assert "before the issue date" in before.json()["problems"][0]["message"]
    assert await Item.count() == 0


@pytest.mark.parametrize("number", [1200.5, 1200])
async def test_an_amount_sent_as_a_number_is_refused_naming_the_field(client, erp, number):
    r = await client.put(
        "/api/v1/items/INV-1", json=invoice("ATL-CUST", total=number), headers=erp.auth
    )
    assert r.status_code == 400
    (problem,) = r.json()["problems"]
    assert problem["field"] == "total" and "string" in problem["message"]
    assert r.json()["extra"][0]["key"] == "total"
    assert await Item.count() == 0


async def test_an_amount_string_is_a_machines_own_spelling(client, erp):
    """No locale decides for an ERP: "1,000" could be 1000.00 or 1.00, so the API takes
    digits and '.' only, and says so naming the field."""
    for text in ("1,000", "1 200,50", "1,200.50"):
        r = await client.put(
            "/api/v1/items/INV-1", json=invoice("ATL-CUST", total=text), headers=erp.auth
        )
        assert r.status_code == 400 and fields_named(r.json()) == ["total"], text
        assert "written like 1234.56" in r.json()["problems"][0]["message"]
    r = await client.put(
        "/api/v1/items/INV-1", json=invoice("ATL-CUST", total="1000.00"), headers=erp.auth
    )
    assert r.status_code in (200, 201)
    assert (await Item.select(Item.total_minor).first())["total_minor"] == 100000


async def test_missing_and_unknown_fields_are_named(client, erp):
    body = invoice("ATL-CUST")
    del body["total"]
    r = await client.put("/api/v1/items/INV-1", json=body, headers=erp.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["total"]

    r = await client.put(
        "/api/v1/items/INV-1", json=invoice("ATL-CUST", amount_due="3"), headers=erp.auth
    )
    assert r.status_code == 400 and fields_named(r.json()) == ["amount_due"]

    r = await client.put("/api/v1/items/INV-1", content=b"", headers=erp.auth)
    assert r.status_code == 400

    r = await client.put(
        "/api/v1/items/INV-1", json=invoice("ATL-CUST", currency="EURO"), headers=erp.auth
    )
    assert r.status_code == 400 and fields_named(r.json()) == ["currency"]


async def test_an_unknown_customer_is_named(client, erp):
    r = await client.put("/api/v1/items/INV-1", json=invoice("NOBODY"), headers=erp.auth)
    assert r.status_code == 400
    (problem,) = r.json()["problems"]
    assert problem["field"] == "customer_ref" and "NOBODY" in problem["message"]


async def test_another_companys_rows_are_invisible(client, erp):
    theirs = await make_item(erp.customer, "10.00", number="INV-ATL")
    other = await erp_of("BOR")

    statement = await client.get(
        f"/api/v1/customers/{erp.customer.ref}/statement", headers=other.auth
    )
    assert statement.status_code == 404

    r = await client.put("/api/v1/items/INV-X", json=invoice("ATL-CUST"), headers=other.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["customer_ref"]

    r = await client.put(
        "/api/v1/items/INV-X", json=invoice("BOR-CUST", company="ATL"), headers=other.auth
    )
    assert r.status_code == 400 and fields_named(r.json()) == ["company"]

    r = await client.post(
        "/api/v1/items/INV-ATL/pdf", files={"file": ("a.pdf", PDF)}, headers=other.auth
    )
    assert r.status_code == 404

    # The same number at another company is another item.
    mine = await client.put("/api/v1/items/INV-ATL", json=invoice("BOR-CUST"), headers=other.auth)
    assert mine.status_code == 201
    assert (await Item.objects().get(Item.id == theirs.id)).total_minor == 1000
    assert await Item.count() == 2


# --------------------------------------------------------------------------------------
# Customers and contacts


async def test_customer_and_contact_upserts(client, erp):
    r = await client.put(
        "/api/v1/customers/C-NEW",
        json={"name": "Nouveau SARL", "country": "fr", "credit_limit": "5000", "language": "fr"},
        headers=erp.auth,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True and body["country"] == "FR"
    assert body["credit_limit"] == {"amount": "5000.00", "currency": "EUR"}

    r = await client.put("/api/v1/customers/C-NEW", json={"name": "Nouveau SAS"}, headers=erp.auth)
    assert r.status_code == 200
    body = r.json()
    assert body["created"] is False and body["name"] == "Nouveau SAS"
    assert body["country"] == "FR" and body["credit_limit"]["amount"] == "5000.00"  # kept
    assert await Customer.count().where(Customer.ref == "C-NEW") == 1

    r = await client.put(
        "/api/v1/customers/C-NEW",
        json={"name": "Nouveau SAS", "credit_limit": 10},
        headers=erp.auth,
    )
    assert r.status_code == 400 and fields_named(r.json()) == ["credit_limit"]

    path = "/api/v1/customers/C-NEW/contacts/AP@Nouveau.example"
    r = await client.put(path, json={"name": "Ana", "role": "AP"}, headers=erp.auth)
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "ap@nouveau.example" and r.json()["receives_reminders"] is True
    r = await client.put(path, json={"receives_reminders": False}, headers=erp.auth)
    assert r.status_code == 200
    assert r.json()["created"] is False and r.json()["name"] == "Ana"
    assert r.json()["receives_reminders"] is False
    assert await Contact.count() == 1

    r = await client.put("/api/v1/customers/C-NEW/contacts/not-an-email", json={}, headers=erp.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["email"]
    r = await client.put("/api/v1/customers/NOBODY/contacts/a@b.example", json={}, headers=erp.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["customer_ref"]


# --------------------------------------------------------------------------------------
# Payments


async def test_a_payment_allocated_to_an_invoice_lowers_its_open_amount(client, erp):
    await client.put("/api/v1/items/INV-7", json=invoice("ATL-CUST"), headers=erp.auth)
    payment = {
        "ref": "BANK-0001",
        "customer_ref": "ATL-CUST",
        "received_on": "2026-06-20",
        "amount": "200.00",
        "item_number": "INV-7",
    }

    r = await client.post("/api/v1/payments", json=payment, headers=erp.auth)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True and body["unapplied"]["amount"] == "0.00"
    assert body["allocations"] == [
        {"item_number": "INV-7", "amount": {"amount": "200.00", "currency": "EUR"}}
    ]

    again = await client.post("/api/v1/payments", json=payment, headers=erp.auth)
    assert again.status_code == 200 and again.json()["created"] is False
    assert len(again.json()["allocations"]) == 1

    item = await Item.objects().get(Item.number == "INV-7")
    assert item.open_minor == 100000
    st = (
        await client.get(
            "/api/v1/customers/ATL-CUST/statement",
            params={"date": "2026-06-30"},
            headers=erp.auth,
        )
    ).json()
    (line,) = st["invoices"]
    assert line["open"] == {"amount": "1000.00", "currency": "EUR"}
    assert st["totals"]["EUR"]["open"] == "1000.00"

    changed = await client.post(
        "/api/v1/payments", json={**payment, "amount": "250.00"}, headers=erp.auth
    )
    assert changed.status_code == 400 and fields_named(changed.json()) == ["amount"]
    too_much = await client.post(
        "/api/v1/payments",
        json={**payment, "ref": "BANK-0002", "amount": "1000.01"},
        headers=erp.auth,
    )
    assert too_much.status_code == 400 and fields_named(too_much.json()) == ["item_number"]
    as_number = await client.post(
        "/api/v1/payments", json={**payment, "ref": "BANK-0003", "amount": 5}, headers=erp.auth
    )
    assert as_number.status_code == 400 and fields_named(as_number.json()) == ["amount"]
    assert (await Item.objects().get(Item.number == "INV-7")).open_minor == 100000


async def test_statement_names_a_bad_date_query(client, erp):
    r = await client.get(
        "/api/v1/customers/ATL-CUST/statement", params={"date": "yesterday"}, headers=erp.auth
    )
    assert r.status_code == 400 and fields_named(r.json()) == ["date"]


# --------------------------------------------------------------------------------------
# PDFs


async def test_an_invoice_pdf_is_stored_and_shown_on_the_statement(client, erp, settings):
    await client.put("/api/v1/items/INV-P", json=invoice("ATL-CUST"), headers=erp.auth)

    r = await client.post(
        "/api/v1/items/INV-P/pdf",
        files={"file": ("INV-P.pdf", PDF, "application/pdf")},
        headers=erp.auth,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "number": "INV-P",
        "bytes": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "changed": True,
    }
    item = await Item.objects().get(Item.number == "INV-P")
    stored = settings.documents_path / item.pdf_path
    assert item.pdf_path.startswith("invoices/") and stored.read_bytes() == PDF
    st = (await client.get("/api/v1/customers/ATL-CUST/statement", headers=erp.auth)).json()
    assert st["invoices"][0]["has_pdf"] is True
    event = await HistoryEvent.select().where(HistoryEvent.kind == "api.item_pdf").first()
    assert event["item"] == item.id and event["actor_kind"] == "api"

    same = await client.post(
        "/api/v1/items/INV-P/pdf", files={"file": ("again.pdf", PDF)}, headers=erp.auth
    )
    assert same.status_code == 200 and same.json()["changed"] is False
    assert await HistoryEvent.count().where(HistoryEvent.kind == "api.item_pdf") == 1


async def test_a_file_that_is_not_a_pdf_is_refused(client, erp, settings):
    await client.put("/api/v1/items/INV-P", json=invoice("ATL-CUST"), headers=erp.auth)
    for name, content in (
        ("fake.pdf", b"<html>not a pdf</html>"),
        ("empty.pdf", b""),
        ("huge.pdf", b"%PDF-" + b"0" * MAX_PDF_BYTES),
    ):
        r = await client.post(
            "/api/v1/items/INV-P/pdf", files={"file": (name, content)}, headers=erp.auth
        )
        assert r.status_code == 400, name
        assert fields_named(r.json()) == ["file"], name
    r = await client.post("/api/v1/items/INV-P/pdf", files={"other": ("a", PDF)}, headers=erp.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["file"]
    r = await client.post("/api/v1/items/NOPE/pdf", files={"file": ("a", PDF)}, headers=erp.auth)
    assert r.status_code == 404
    assert (await Item.objects().get(Item.number == "INV-P")).pdf_path == ""
    documents = settings.documents_path
    assert not documents.exists() or not any(p.is_file() for p in documents.rglob("*"))
