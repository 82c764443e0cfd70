"""EUR, JPY and KWD amounts round-trip exactly through Stripe itself (localstripe): what we
charge is what Stripe records, and what it reports back is the money we asked for."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receivables.money import Money
from receivables.payments.amounts import from_stripe, to_stripe

EXPONENTS = {"EUR": 2, "JPY": 0, "KWD": 3}


@pytest.mark.parametrize("currency", sorted(EXPONENTS))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(minor=st.integers(min_value=1, max_value=99_999_999))
def test_amounts_round_trip_through_stripe(stripe_emulator, currency, minor):
    if currency == "KWD":
        minor = max(10, minor - minor % 10)
    money = Money(Decimal(minor).scaleb(-EXPONENTS[currency]), currency)
    client = stripe.StripeClient(
        "sk_test_relance", base_addresses={"api": stripe_emulator.api_base}
    )
    amount, code = to_stripe(money)
    created = client.v1.payment_intents.create(
        {"amount": amount, "currency": code, "payment_method_types": ["card"]}
    )
    fetched = client.v1.payment_intents.retrieve(created.id)
    assert from_stripe(fetched.amount, fetched.currency) == money
