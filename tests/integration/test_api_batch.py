"""API batches: many records per call, all or nothing, problems named by position."""

from __future__ import annotations

import pytest

from receivables.history import HistoryEvent
from receivables.ledger.tables import Contact, Customer, Item, Payment
from tests.integration.test_api import Erp, erp_of, fields_named, invoice


@pytest.fixture
async def erp(db) -> Erp:
    return await erp_of("ATL")


def items(*numbers: str, **overrides) -> list[dict]:
    return [{"number": n, **invoice("ATL-CUST", **overrides)} for n in numbers]


async def test_an_items_batch_is_written_whole_and_idempotent(client, erp):
    body = {"items": items("B-1", "B-2", "B-3")}

    r = await client.post("/api/v1/items:batch", json=body, headers=erp.auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 3, "updated": 0, "unchanged": 0}

    body["items"][1]["total"] = "99.00"
    r = await client.post("/api/v1/items:batch", json=body, headers=erp.auth)
    assert r.json() == {"created": 0, "updated": 1, "unchanged": 2}
    assert await Item.count() == 3
    event = await HistoryEvent.select().where(HistoryEvent.kind == "api.items").first()
    assert event["actor_kind"] == "api"


async def test_one_bad_item_writes_none_and_every_problem_names_its_position(client, erp):
    batch = items("B-1", "B-2", "B-3", "B-4")
    batch[1]["due_date"] = "2026-05-01"  # before its issue date
    batch[2]["customer_ref"] = "NOBODY"
    batch[3]["number"] = "B-1"

    r = await client.post("/api/v1/items:batch", json={"items": batch}, headers=erp.auth)

    assert r.status_code == 400
    assert sorted(fields_named(r.json())) == [
        "items[1].due_date",
        "items[2].customer_ref",
        "items[3].number",
    ]
    assert await Item.count() == 0


async def test_a_type_error_in_a_batch_names_its_position(client, erp):
    batch = items("B-1", "B-2", "B-3")
    batch[2]["total"] = 12.5
    r = await client.post("/api/v1/items:batch", json={"items": batch}, headers=erp.auth)
    assert r.status_code == 400
    assert r.json()["extra"][0]["key"] == "items[2].total"
    assert fields_named(r.json()) == ["items[2].total"]
    assert "string" in r.json()["problems"][0]["message"]

    del batch[2]["total"]
    batch[2]["total"] = "12.50"
    del batch[0]["currency"]
    r = await client.post("/api/v1/items:batch", json={"items": batch}, headers=erp.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["items[0].currency"]

    r = await client.post("/api/v1/items:batch", json={"items": []}, headers=erp.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["items"]
    assert await Item.count() == 0


async def test_customers_contacts_and_payments_batches(client, erp):
    r = await client.post(
        "/api/v1/customers:batch",
        json={"customers": [{"ref": "C-1", "name": "One"}, {"ref": "C-2", "name": "Two"}]},
        headers=erp.auth,
    )
    assert r.status_code == 200 and r.json()["created"] == 2
    r = await client.post(
        "/api/v1/contacts:batch",
        json={
            "contacts": [
                {"customer_ref": "C-1", "email": "ap@one.example"},
                {"customer_ref": "C-2", "email": "ap@two.example", "name": "Bo"},
            ]
        },
        headers=erp.auth,
    )
    assert r.status_code == 200 and r.json()["created"] == 2
    await client.post("/api/v1/items:batch", json={"items": items("B-1")}, headers=erp.auth)
    r = await client.post(
        "/api/v1/payments:batch",
        json={
            "payments": [
                {
                    "ref": "P-1",
                    "customer_ref": "ATL-CUST",
                    "received_on": "2026-06-10",
                    "amount": "200.00",
                    "item_number": "B-1",
                },
                {
                    "ref": "P-2",
                    "customer_ref": "ATL-CUST",
                    "received_on": "2026-06-11",
                    "amount": "50.00",
                },
            ]
        },
        headers=erp.auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    assert (await Item.objects().get(Item.number == "B-1")).open_minor == 100000
    assert await Customer.count() == 3 and await Contact.count() == 2


async def test_a_ledger_batch_links_records_of_the_same_call_or_writes_nothing(client, erp):
    body = {
        "customers": [{"ref": "C-9", "name": "Nine"}],
        "contacts": [{"customer_ref": "C-9", "email": "ap@nine.example"}],
        "items": [{"number": "N-1", **invoice("C-9", total="300.00")}],
        "payments": [
            {
                "ref": "P-9",
                "customer_ref": "C-9",
                "received_on": "2026-06-15",
                "amount": "300.00",
                "item_number": "N-1",
            }
        ],
    }
    bad = {**body, "contacts": [{"customer_ref": "C-9", "email": "not an email"}]}
    r = await client.post("/api/v1/ledger:batch", json=bad, headers=erp.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["contacts[0].email"]
    assert await Customer.count() == 1 and await Item.count() == 0 and await Payment.count() == 0

    r = await client.post("/api/v1/ledger:batch", json=body, headers=erp.auth)
    assert r.status_code == 200, r.text
    assert {kind: counts["created"] for kind, counts in r.json().items()} == {
        "customers": 1,
        "contacts": 1,
        "items": 1,
        "payments": 1,
    }
    item = await Item.objects().get(Item.number == "N-1")
    assert item.open_minor == 0 and item.status == "paid"

    r = await client.post("/api/v1/ledger:batch", json={}, headers=erp.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["body"]


async def test_a_batch_cannot_reach_another_company(client, erp):
    other = await erp_of("BOR")
    r = await client.post(
        "/api/v1/items:batch",
        json={"items": [{"number": "X-1", **invoice("BOR-CUST", company="ATL")}]},
        headers=other.auth,
    )
    assert r.status_code == 400 and fields_named(r.json()) == ["items[0].company"]
    r = await client.post("/api/v1/items:batch", json={"items": items("X-1")}, headers=other.auth)
    assert r.status_code == 400 and fields_named(r.json()) == ["items[0].customer_ref"]
    assert await Item.count() == 0
