"""Money: exact conversions per currency exponent; no float ever gets in."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receivables.money import (
    Money,
    MoneyError,
    check_currency,
    exponent,
    format_money,
    from_minor,
    parse_amount,
    round_to_currency,
    to_minor,
)


@pytest.mark.parametrize(("currency", "digits"), [("EUR", 2), ("JPY", 0), ("KWD", 3), ("GBP", 2)])
def test_exponents(currency, digits):
    assert exponent(currency) == digits


@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(["EUR", "JPY", "KWD", "USD", "CHF"]),
)
def test_minor_units_round_trip_exactly(minor, currency):
    amount = from_minor(minor, currency)
    assert to_minor(amount, currency) == minor
    assert Money.from_minor(minor, currency).minor == minor
    assert parse_amount(str(amount), currency) == amount


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("1234.5", "EUR", Decimal("1234.50")),
        ("1 234,50", "EUR", Decimal("1234.50")),
        ("1,234.50", "EUR", Decimal("1234.50")),
        ("1.234,50", "EUR", Decimal("1234.50")),
        ("1500", "JPY", Decimal("1500")),
        ("12.345", "KWD", Decimal("12.345")),
        ("-12", "EUR", Decimal("-12.00")),
    ],
)
def test_parse_amount(text, currency, expected):
    assert parse_amount(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "currency"),
    [("12.345", "EUR"), ("1.5", "JPY"), ("abc", "EUR"), ("NaN", "EUR"), ("Infinity", "EUR")],
)
def test_parse_amount_refuses(text, currency):
    with pytest.raises(MoneyError):
        parse_amount(text, currency)


def test_floats_are_refused():
    with pytest.raises(MoneyError):
        parse_amount(0.1, "EUR")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(0.1, "EUR")  # type: ignore[arg-type]


def test_sum_of_many_cents_does_not_drift():
    total = Money.zero("EUR")
    for _ in range(10_000):
        total += Money(Decimal("0.01"), "EUR")
    assert total.amount == Decimal("100.00") and total.minor == 10_000


def test_currencies_do_not_mix():
    with pytest.raises(MoneyError):
        Money(Decimal(1), "EUR") + Money(Decimal(1), "USD")


def test_unknown_currency():
    with pytest.raises(MoneyError):
        check_currency("EUX")
    assert check_currency(" eur ") == "EUR"


def test_rounding_and_format():
    assert round_to_currency(Decimal("10.005"), "EUR") == Decimal("10.01")
    assert round_to_currency(Decimal("10.5"), "JPY") == Decimal("11")
    assert format_money(Decimal("1234.5"), "EUR", "fr_FR") == "1\u202f234,50\xa0€"
    assert format_money(Decimal("1234.5"), "EUR", "en_GB") == "€1,234.50"
