"""Stripe amounts round-trip exactly through the money module: EUR (2 decimals), JPY (0) and
KWD (3, charged to 0.010), plus Stripe's two-decimal exceptions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receivables.money import Money, MoneyError
from receivables.payments.amounts import from_stripe, minor_from_stripe, to_stripe

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
