"""Money: exact conversions per currency exponent; no float ever gets in."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receivables.money import (
    PLAIN,
    AmbiguousAmount,
    AmountFormat,
    Money,
    MoneyError,
    check_currency,
    exponent,
    format_money,
    from_minor,
    parse_amount,
    parse_plain_amount,
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
    assert parse_plain_amount(str(amount), currency) == amount
    assert parse_amount(str(amount), currency, locale="en_GB") == amount


# Real-world spellings, per locale: what a person, an ERP export or a bank file writes.
SPELLINGS = {
    "fr_FR": [
        ("1 234,56", "EUR", "1234.56"),
        ("1\u00a0234,56", "EUR", "1234.56"),  # no-break space (Excel, most banks)
        ("1\u202f234,56", "EUR", "1234.56"),  # narrow no-break space (CLDR, Babel)
        ("1.234,56", "EUR", "1234.56"),
        ("1234,56", "EUR", "1234.56"),
        ("1234.56", "EUR", "1234.56"),  # what ERPs export whatever the locale
        ("1 000", "EUR", "1000.00"),
        ("-1234", "EUR", "-1234.00"),
        ("(1 234,56)", "EUR", "-1234.56"),
        ("-1 234,56 €", "EUR", "-1234.56"),
        ("1 234,56 EUR", "EUR", "1234.56"),
        ("1 234,56-", "EUR", "-1234.56"),
        ("12 500", "JPY", "12500"),
        ("1 234,567", "KWD", "1234.567"),
    ],
    "en_GB": [
        ("1,234.56", "EUR", "1234.56"),
        ("1234.56", "EUR", "1234.56"),
        ("1,000", "EUR", "1000.00"),
        ("12,500", "USD", "12500.00"),
        ("1,000", "JPY", "1000"),
        ("1,234,567.89", "GBP", "1234567.89"),
        ("1 234.56", "GBP", "1234.56"),
        ("-1234", "EUR", "-1234.00"),
        ("(1,234.56)", "GBP", "-1234.56"),
        ("£1,234.56", "GBP", "1234.56"),
        ("GBP -1,234.56", "GBP", "-1234.56"),
        ("1.000", "KWD", "1.000"),
    ],
    "de_DE": [
        ("1.234,56", "EUR", "1234.56"),
        ("1234,56", "EUR", "1234.56"),
        ("1.000", "EUR", "1000.00"),
        ("12.500", "USD", "12500.00"),
        ("1 234,56", "EUR", "1234.56"),
        ("-1.234,56", "EUR", "-1234.56"),
        ("1.234,56 €", "EUR", "1234.56"),
    ],
    "de_CH": [
        ("1'234.56", "CHF", "1234.56"),
        ("1\u2019234.56", "CHF", "1234.56"),  # the typographic apostrophe
        ("1'000", "CHF", "1000.00"),
        ("1234.56", "CHF", "1234.56"),
        ("-1'234.56", "CHF", "-1234.56"),
        ("CHF 1'234.56", "CHF", "1234.56"),
    ],
    "fr_CH": [
        ("1'234.56", "CHF", "1234.56"),  # Swiss French amounts take a point
        ("1'234,56", "CHF", "1234.56"),
    ],
    "en_IN": [("12,34,567.00", "INR", "1234567.00")],  # lakhs, checked by Babel
}


@pytest.mark.parametrize(
    ("locale", "text", "currency", "expected"),
    [(loc, *case) for loc, cases in SPELLINGS.items() for case in cases],
)
def test_real_world_spellings_per_locale(locale, text, currency, expected):
    value = parse_amount(text, currency, locale=locale)
    assert value == Decimal(expected) and str(value) == expected


@pytest.mark.parametrize(
    ("locale", "text", "currency"),
    [
        ("en_GB", "1.234,56", "EUR"),  # a German spelling in an English file: the file is
        ("en_GB", "1234,56", "EUR"),  # not what the company said; its other rows cannot
        ("de_DE", "1234.56", "EUR"),  # be trusted either
        ("de_DE", "1,234.56", "EUR"),
        ("fr_FR", "1,234.56", "EUR"),
        ("en_GB", "1,23", "EUR"),
        ("en_GB", "12,34,567", "EUR"),
        ("de_CH", "1,234,56", "CHF"),
    ],
)
def test_spellings_foreign_to_the_locale_are_refused(locale, text, currency):
    with pytest.raises(MoneyError, match=f"not an amount written the {locale} way"):
        parse_amount(text, currency, locale=locale)


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("1 234,56", "EUR", "1234.56"),
        ("1.234,56", "EUR", "1234.56"),
        ("1,234.56", "EUR", "1234.56"),
        ("1'234.56", "CHF", "1234.56"),
        ("1234,56", "EUR", "1234.56"),
        ("1234.5", "EUR", "1234.50"),
        ("1,234,567", "EUR", "1234567.00"),
        ("1.234.567,89", "EUR", "1234567.89"),
        ("12,5", "EUR", "12.50"),
        ("0,500", "EUR", "0.50"),  # 0 cannot start a group of thousands
        ("-1234", "EUR", "-1234.00"),
        ("(1234.56)", "EUR", "-1234.56"),
        ("1234,567", "KWD", "1234.567"),
        ("1500", "JPY", "1500"),
    ],
)
def test_one_reading_needs_no_locale(text, currency, expected):
    value = parse_amount(text, currency)
    assert value == Decimal(expected) and str(value) == expected


@pytest.mark.parametrize(
    ("text", "currency", "readings"),
    [
        ("1,000", "EUR", ("1000.00", "1.00")),
        ("1.000", "EUR", ("1000.00", "1.00")),
        ("12,500", "USD", ("12500.00", "12.50")),
        ("1,000", "JPY", ("1000", "1")),
        ("1.000", "KWD", ("1000.000", "1.000")),
        ("1,234", "EUR", ("1234.00", "1.234")),
        ("-999,000", "EUR", ("999000.00", "999.00")),
    ],
)
def test_two_readings_are_refused_with_both(text, currency, readings):
    with pytest.raises(AmbiguousAmount) as refused:
        parse_amount(text, currency)
    assert refused.value.readings == readings
    assert str(refused.value) == (
        f"'{text}' could be {readings[0]} or {readings[1]}: "
        "set the file's locale or decimal separator"
    )


def test_1000_is_read_as_1_nowhere():
    """With a locale whose decimal sign it uses, "1,000" would be three decimals of a
    two-decimal currency: refused there too, never read as 1.00."""
    assert parse_amount("1,000", "EUR", locale="en_GB") == Decimal("1000.00")
    assert parse_amount("1,000", "EUR", decimal_separator=".") == Decimal("1000.00")
    assert parse_amount("1.000", "EUR", locale="de_DE") == Decimal("1000.00")
    for how in ({"locale": "fr_FR"}, {"locale": "de_DE"}, {"decimal_separator": ","}):
        with pytest.raises(AmbiguousAmount, match="could be 1000.00 or 1.00"):
            parse_amount("1,000", "EUR", **how)
    for how in ({"locale": "en_GB"}, {"locale": "de_CH"}, {"locale": "fr_FR"}):
        with pytest.raises(AmbiguousAmount, match="has 3 decimals, EUR has fewer"):
            parse_amount("1.000", "EUR", **how)
    # A three-decimal currency has no doubt once the locale says which sign is decimal.
    assert parse_amount("1,000", "KWD", locale="fr_FR") == Decimal("1.000")


@pytest.mark.parametrize(
    ("text", "currency", "how", "message"),
    [
        ("1.5", "JPY", {"locale": "en_GB"}, "more decimals than JPY allows"),
        ("1,5", "JPY", {"locale": "fr_FR"}, "more decimals than JPY allows"),
        ("12.3456", "EUR", {"decimal_separator": "."}, "more decimals than EUR allows"),
        ("1.2345", "KWD", {"locale": "en_GB"}, "more decimals than KWD allows"),
        ("abc", "EUR", {}, "is not an amount"),
        ("NaN", "EUR", {}, "is not an amount"),
        ("Infinity", "EUR", {"locale": "en_GB"}, "is not an amount"),
        ("1e3", "EUR", {"locale": "en_GB"}, "is not an amount"),
        ("\u0661\u0662", "EUR", {}, "is not an amount"),  # Arabic-Indic digits
        ("--12", "EUR", {}, "is not an amount"),
        ("", "EUR", {}, "is not an amount"),
        ("USD 12.00", "EUR", {}, "is in USD, not EUR"),
        ("1,234", "EUR", {"decimal_separator": "."}, None),
    ],
)
def test_parse_amount_refuses(text, currency, how, message):
    if message is None:  # the control: the same text is fine
        assert parse_amount(text, currency, **how) == Decimal("1234.00")
        return
    with pytest.raises(MoneyError, match=message):
        parse_amount(text, currency, **how)


def test_currency_exponents():
    assert parse_amount("1,234", "JPY", locale="en_GB") == Decimal("1234")
    assert parse_amount("1,234.000", "JPY", locale="en_GB") == Decimal("1234")
    assert parse_amount("1 234,567", "KWD", locale="fr_FR") == Decimal("1234.567")
    assert str(parse_amount("1 234,5", "KWD", locale="fr_FR")) == "1234.500"
    assert str(parse_amount("1 234,5", "EUR", locale="fr_FR")) == "1234.50"


def test_plain_amounts_are_machines_own():
    """ISO 20022 XML and the JSON API: digits, '-', '.' for decimals, nothing else."""
    assert parse_plain_amount("1234.56", "EUR") == Decimal("1234.56")
    assert parse_plain_amount("-12", "JPY") == Decimal("-12")
    assert parse_plain_amount("1.000", "EUR") == Decimal("1.00")  # the schema says so
    for text in ("1,000", "1 234.56", "1,234.56", "+12", "12.", ".5", "1e3"):
        with pytest.raises(MoneyError, match="not an amount written like 1234.56"):
            parse_plain_amount(text, "EUR")
    with pytest.raises(MoneyError, match="more decimals than JPY"):
        parse_plain_amount("1.5", "JPY")


def test_amount_formats():
    assert AmountFormat(locale="en_GB").parse("1,000", "EUR") == Decimal("1000.00")
    assert AmountFormat(decimal_separator=",").parse("1.000", "EUR") == Decimal("1000.00")
    assert PLAIN.parse("1000.00", "EUR") == Decimal("1000.00")
    with pytest.raises(MoneyError, match="not both"):
        AmountFormat(locale="en_GB", decimal_separator=".")
    with pytest.raises(MoneyError, match="not a locale"):
        AmountFormat(locale="xx_YY")
    with pytest.raises(MoneyError, match="'.' or ','"):
        AmountFormat(decimal_separator=";")


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


@given(
    amount=st.decimals(
        min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=3, allow_nan=False
    ),
    locale=st.sampled_from(["en_GB", "fr_FR", "de_DE", "es_ES", "de_CH", "hi_IN", "ar_EG"]),
    currency=st.sampled_from(["EUR", "GBP", "JPY", "KWD", "CHF", "INR"]),
)
def test_format_money_writes_what_babel_writes(amount, locale, currency):
    # The cached fast path (or Babel itself where the locale's grouping is unusual).
    from babel.numbers import format_currency

    from receivables.money import format_money

    assert format_money(amount, currency, locale) == format_currency(
        amount, currency, locale=locale
    )


def test_amounts_too_large_to_store_are_refused():
    assert parse_amount("9 999 999 999 999 999,99", "EUR") == Decimal("9999999999999999.99")
    for text in ("10 000 000 000 000 000,00", "1" + "0" * 30):
        with pytest.raises(MoneyError, match="too large"):
            parse_amount(text, "EUR")
    with pytest.raises(MoneyError, match="too large"):
        parse_plain_amount("1" + "0" * 19, "JPY")


def test_an_amount_typed_in_a_form_is_read_strictly_or_refused():
    from receivables.money import NotTypedAmount, parse_typed_minor

    assert parse_typed_minor(" 120.50 ", "EUR") == 12050
    assert parse_typed_minor("5000", "JPY") == 5000
    assert parse_typed_minor("", "EUR") is None
    for ambiguous in ("1,000", "1 000", "-5", "1e3"):
        with pytest.raises(NotTypedAmount):
            parse_typed_minor(ambiguous, "EUR")
    with pytest.raises(MoneyError, match="JPY has 0 decimal places"):
        parse_typed_minor("1.5", "JPY")
