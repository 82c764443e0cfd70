"""Stripe amounts round-trip exactly through the money module: EUR (2 decimals), JPY (0) and
KWD (3, charged to 0.010), Stripe's unit where it differs from CLDR (HUF, IDR, ISK), and its
minimum and maximum per currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receivables.money import Money, MoneyError
from receivables.payments.amounts import (
    OutsideLimits,
    check_limits,
    from_stripe,
    maximum_charge,
    minimum_charge,
    minor_from_stripe,
    to_stripe,
)

EXPONENTS = {"EUR": 2, "JPY": 0, "KWD": 3}


@st.composite
def chargeable(draw, currency: str) -> Money:
    minor = draw(st.integers(min_value=1, max_value=99_999_999_99))
    if currency == "KWD":
        minor -= minor % 10  # card networks settle KWD to 0.010
        minor = max(minor, 10)
    return Money(Decimal(minor).scaleb(-EXPONENTS[currency]), currency)


@pytest.mark.parametrize("currency", sorted(EXPONENTS))
@given(data=st.data())
def test_money_to_stripe_and_back_is_exact(currency, data):
    money = data.draw(chargeable(currency))
    amount, code = to_stripe(money)
    assert isinstance(amount, int) and code == currency.lower()
    assert from_stripe(amount, code) == money
    assert minor_from_stripe(amount, code) == money.minor


@pytest.mark.parametrize("currency", sorted(EXPONENTS))
@given(amount=st.integers(min_value=0, max_value=10**15))
def test_stripe_integers_to_money_and_back_are_exact(currency, amount):
    if currency == "KWD":
        amount -= amount % 10
    money = from_stripe(amount, currency.lower())
    assert money.amount.as_tuple().exponent == -EXPONENTS[currency]
    assert to_stripe(money) == (amount, currency.lower())


def test_units_per_currency():
    assert to_stripe(Money(Decimal("12.34"), "EUR")) == (1234, "eur")
    assert to_stripe(Money(Decimal("1234"), "JPY")) == (1234, "jpy")
    assert to_stripe(Money(Decimal("1.230"), "KWD")) == (1230, "kwd")
    assert from_stripe(1230, "kwd") == Money(Decimal("1.230"), "KWD")
    # Stripe takes ISK (0 decimals) as a two-decimal amount ending in 00.
    assert to_stripe(Money(Decimal("5"), "ISK")) == (500, "isk")
    assert from_stripe(500, "isk") == Money(Decimal("5"), "ISK")


def test_what_stripe_cannot_take_is_refused():
    with pytest.raises(MoneyError, match="0.010"):
        to_stripe(Money(Decimal("1.234"), "KWD"))
    with pytest.raises(MoneyError, match="more decimals"):
        to_stripe(Money(Decimal("1.005"), "EUR"))
    with pytest.raises(MoneyError, match="whole"):
        from_stripe(550, "isk")
    with pytest.raises(MoneyError):
        from_stripe(12.5, "eur")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        from_stripe(True, "eur")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        from_stripe(100, "xyz")


def test_stripe_unit_is_stripes_not_cldrs():
    # CLDR gives HUF and IDR no decimals; Stripe takes them as two-decimal amounts.
    assert to_stripe(Money(Decimal("10000"), "HUF")) == (1_000_000, "huf")
    assert from_stripe(1_000_000, "huf") == Money(Decimal("10000"), "HUF")
    assert to_stripe(Money(Decimal("150000"), "IDR")) == (15_000_000, "idr")
    assert to_stripe(Money(Decimal("1000.50"), "TWD")) == (100_050, "twd")
    assert to_stripe(Money(Decimal("50000"), "UGX")) == (50_000, "ugx")  # zero-decimal list
    with pytest.raises(MoneyError, match="whole"):
        from_stripe(1_000_050, "huf")


def test_minimum_and_maximum_per_currency():
    assert check_limits(Money(Decimal("0.50"), "EUR")) == 50
    assert check_limits(Money(Decimal("999999.99"), "EUR")) == 99_999_999
    assert maximum_charge("ISK") == Money(Decimal("999999"), "ISK")
    assert maximum_charge("KWD") == Money(Decimal("99999.990"), "KWD")
    assert minimum_charge("XOF") is None  # not in Stripe's table: Stripe's refusal decides
    for money, too_small in [
        (Money(Decimal("0.49"), "EUR"), True),
        (Money(Decimal("0.29"), "GBP"), True),
        (Money(Decimal("174"), "HUF"), True),
        (Money(Decimal("1000000"), "EUR"), False),
        (Money(Decimal("100000000"), "JPY"), False),
    ]:
        with pytest.raises(OutsideLimits) as refused:
            check_limits(money)
        assert refused.value.too_small is too_small and refused.value.limit is not None
