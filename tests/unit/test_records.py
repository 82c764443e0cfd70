"""Parsing without a database: headers, kind detection, dates, amounts, rows to records."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receivables.errors import InvalidInput
from receivables.ledger.imports import (
    UnreadableFile,
    detect_kind,
    field_for,
    normalise_header,
    read_upload,
)
from receivables.ledger.records import (
    clean_text,
    exact_minor,
    parse_choice,
    parse_customer,
    parse_date,
    parse_flag,
    parse_item,
    parse_money,
    parse_rows,
    try_parse,
)

ITEM = {
    "number": "F-1",
    "customer_ref": "CLI-1",
    "issue_date": "2026-06-01",
    "due_date": "2026-07-01",
    "currency": "EUR",
    "total": "100.00",
}


@pytest.mark.parametrize(
    "label", ["Due date", "due_date", "DUE DATE", " Due-Date ", "due  date", "Due_Date", "DUE.DATE"]
)
def test_header_spellings_normalise_alike(label):
    assert normalise_header(label) == "due_date"


def test_header_accents_and_symbols():
    assert normalise_header("Échéance") == "echeance"
    assert normalise_header("N° facture") == "n_facture"
    assert normalise_header("\ufeffRef") == "ref"
    assert normalise_header(None) == ""
    assert field_for("items", "montant_ttc") == "total"
    assert field_for("payments", "montant") == "amount"
    assert field_for("items", "favourite_colour") is None


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        (["code", "name", "iban", "currency"], "companies"),
        (["ref", "name", "country", "payer_profile"], "customers"),
        (["customer_ref", "name", "email", "receives_reminders"], "contacts"),
        (
            ["number", "customer_ref", "kind", "issue_date", "due_date", "currency", "total"],
            "items",
        ),
        (["ref", "customer_ref", "received_on", "amount", "item_number"], "payments"),
        (["n_facture", "client", "date", "echeance", "devise", "montant"], "items"),
        (["customer_code", "customer_name", "address", "email"], "customers"),
    ],
)
def test_kind_detected_from_headers(headers, kind):
    assert detect_kind(headers) == kind


def test_kind_detection_failures_say_what_is_needed():
    with pytest.raises(ValueError, match="items: currency, customer_ref, due_date"):
        detect_kind(["number", "total"])
    # ref + name + customer_ref + email: a customer or a contact, nothing tells which.
    with pytest.raises(ValueError, match="fit customers and contacts"):
        detect_kind(["ref", "customer_ref", "name", "email"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-06-30", date(2026, 6, 30)),
        ("30/06/2026", date(2026, 6, 30)),
        ("1/2/2026", date(2026, 2, 1)),
        ("30.06.2026", date(2026, 6, 30)),
        (" 2026-06-30 ", date(2026, 6, 30)),
        ("2026-06-30 00:00:00", date(2026, 6, 30)),
        (date(2026, 6, 30), date(2026, 6, 30)),
        (datetime(2026, 6, 30, 0, 0), date(2026, 6, 30)),
    ],
)
def test_dates(raw, expected):
    assert parse_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("31/02/2026", "not a real date"),
        ("2026-02-30", "not a real date"),
        ("06/30/2026", "not a real date"),
        ("2026/06/30", "write YYYY-MM-DD or DD/MM/YYYY"),
        ("30-06-26", "write YYYY-MM-DD or DD/MM/YYYY"),
        (46203, "a number, not a date"),
        (46203.0, "a number, not a date"),
    ],
)
def test_bad_dates(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_date(raw)


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("1234.50", "EUR", Decimal("1234.50")),
        ("1 234,50", "EUR", Decimal("1234.50")),
        ("1,234.50", "EUR", Decimal("1234.50")),
        ("1.234,50", "EUR", Decimal("1234.50")),
        ("12,5", "EUR", Decimal("12.50")),
        (12.5, "EUR", Decimal("12.50")),
        (0.1 + 0.2, "EUR", Decimal("0.30")),
        (1234567.89, "EUR", Decimal("1234567.89")),
        (150000, "JPY", Decimal("150000")),
        (12.345, "KWD", Decimal("12.345")),
        (Decimal("99.99"), "USD", Decimal("99.99")),
    ],
)
def test_amounts(raw, currency, expected):
    value = parse_money(raw, currency)
    assert value == expected and isinstance(value, Decimal)
    assert str(value) == str(expected)


@pytest.mark.parametrize(
    ("raw", "currency", "message"),
    [
        ("10.001", "EUR", "could be 10001.00 or 10.001"),
        ("10.0001", "EUR", "more decimals than EUR allows"),
        ("10.5", "JPY", "more decimals than JPY allows"),
        ("12,50 $", "EUR", "is not an amount"),
        ("abc", "EUR", "is not an amount"),
        (True, "EUR", "is not an amount"),
        (float("nan"), "EUR", "is not an amount"),
    ],
)
def test_bad_amounts(raw, currency, message):
    with pytest.raises(ValueError, match=message):
        parse_money(raw, currency)


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999999.99"), places=2))
def test_spreadsheet_floats_come_back_exact(amount):
    # What an .xlsx number cell holding the amount gives openpyxl: a float.
    assert parse_money(float(amount), "EUR") == amount


def test_amount_without_currency_is_checked_once_the_currency_is_known():
    value = parse_money("1234.125", None)
    assert value == Decimal("1234.125")
    assert exact_minor(value, "KWD") == 1234125
    with pytest.raises(ValueError, match="more decimals than EUR"):
        exact_minor(value, "EUR")


@pytest.mark.parametrize("raw", ["yes", "Yes", "TRUE", "1", "oui", "Oui", True, 1])
def test_flags_true(raw):
    assert parse_flag(raw) is True


@pytest.mark.parametrize("raw", ["no", "NO", "false", "0", "non", False, 0])
def test_flags_false(raw):
    assert parse_flag(raw) is False


def test_choices_accept_human_spellings():
    profiles = ["good_payer", "bad_payer", "dispute_prone"]
    assert parse_choice("bad payer", profiles) == "bad_payer"
    assert parse_choice("Bad-Payer", profiles) == "bad_payer"
    assert parse_choice(" Dispute Prone ", profiles) == "dispute_prone"
    with pytest.raises(ValueError, match="is not one of good_payer, bad_payer"):
        parse_choice("late", profiles)


def test_text_refuses_control_characters_and_keeps_address_lines():
    assert clean_text("  Atelier Lumière  ") == "Atelier Lumière"
    assert clean_text("1 rue X\r\n75001 Paris ", multiline=True) == "1 rue X\n75001 Paris"
    with pytest.raises(ValueError, match="U\\+0007"):
        clean_text("Bell\x07")
    with pytest.raises(ValueError, match="U\\+000A"):
        clean_text("two\nlines")
    with pytest.raises(ValueError, match="U\\+202E"):
        clean_text("invoice\u202efdp.exe")


def test_item_row_lists_every_problem():
    record, problems = try_parse(
        "items",
        {
            **ITEM,
            "issue_date": "2026-07-02",
            "total": "-5",
            "currency": "EUR",
            "kind": "bill",
            "number": "",
        },
        line=7,
        source="items.csv",
    )
    assert record is None
    assert sorted((p.field, p.line) for p in problems) == [
        ("due_date", 7),
        ("kind", 7),
        ("number", 7),
        ("total", 7),
    ]
    assert all(p.source == "items.csv" for p in problems)
    assert "before the issue date 2026-07-02" in next(
        p.message for p in problems if p.field == "due_date"
    )


def test_item_record_values_and_fields_carried():
    item = parse_item({**ITEM, "kind": "Credit note", "total": 49.9})
    assert item.kind == "credit_note" and item.total == Decimal("49.90")
    assert item.fields_set == frozenset({*ITEM, "kind"})
    assert item.due_date == date(2026, 7, 1)


def test_missing_and_unknown_fields():
    with pytest.raises(InvalidInput) as caught:
        parse_item({"number": "F-1", "colour": "blue"})
    fields = sorted(p.field for p in caught.value.problems)
    assert fields == ["colour", "currency", "customer_ref", "due_date", "issue_date", "total"]


def test_customer_defaults_and_refusals():
    customer = parse_customer(
        {
            "ref": "CLI-1",
            "name": "Harrow & Finch Ltd",
            "country": "gb",
            "payer_profile": "Bad-Payer",
            "credit_limit": "5000.00",
        }
    )
    assert customer.country == "GB" and customer.payer_profile == "bad_payer"
    assert customer.credit_limit == Decimal("5000.00") and customer.currency is None
    with pytest.raises(InvalidInput) as caught:
        parse_customer(
            {
                "ref": "CLI-1",
                "name": "X",
                "country": "EU",
                "language": "de",
                "collector_email": "not-an-email",
                "credit_limit": "-1",
            }
        )
    assert sorted(p.field for p in caught.value.problems) == [
        "collector_email",
        "country",
        "credit_limit",
        "language",
    ]


def test_parse_rows_keeps_good_rows_and_keys_of_bad_ones():
    parsed = parse_rows("items", [(2, ITEM), (3, {**ITEM, "number": "F-2", "total": "x"})])
    assert [r.number for r in parsed.records] == ["F-1"]
    assert [(p.line, p.field) for p in parsed.problems] == [(3, "total")]
    assert parsed.bad_keys == {"F-2"}


def test_csv_upload_with_bom_semicolons_and_quoted_lines():
    data = (
        "\ufeffref;name;address\r\n"
        'CLI-1;Maison Dupré;"12 cours X\r\n33000 Bordeaux"\r\n'
        "\r\n"
        "CLI-2;Harrow; Finch\r\n"
    ).encode()
    sheet = read_upload("customers.csv", data)
    assert sheet.headers == ["ref", "name", "address"] and sheet.header_line == 1
    assert sheet.rows == [
        (2, ("CLI-1", "Maison Dupré", "12 cours X\r\n33000 Bordeaux")),
        (4, ("CLI-2", "Harrow", " Finch")),
    ]


def test_unreadable_uploads():
    with pytest.raises(UnreadableFile, match="save it as .xlsx or CSV"):
        read_upload("old.xls", b"")
    with pytest.raises(UnreadableFile, match="empty"):
        read_upload("blank.csv", b"\n ,  \n")
    with pytest.raises(UnreadableFile, match="not a readable .xlsx"):
        read_upload("x.xlsx", b"PK nope")
