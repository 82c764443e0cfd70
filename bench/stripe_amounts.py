"""Each currency's amount as Stripe receives it, and Stripe's limits per currency.

    python bench/stripe_amounts.py

localstripe on a free local port; for each currency an invoice amount goes through
`receivables.payments.amounts` (the only conversion to Stripe's unit, its minimum and maximum
checked first), a PaymentIntent is created with it through the official SDK and read back:
the line shows the invoice, CLDR's digits (our minor unit) and Stripe's, the integer Stripe
holds, and that integer back to money (it must be the invoice). Then the amounts Stripe would
refuse, refused before any call, with the message the customer reads.
"""

from __future__ import annotations

from decimal import Decimal

import stripe

from receivables.money import Money, exponent
from receivables.payments.amounts import (
    OutsideLimits,
    check_limits,
    from_stripe,
    maximum_charge,
    minimum_charge,
    stripe_exponent,
)
from receivables.payments.emulator import start_emulator

CASES = [
    ("EUR", "12.34"),
    ("USD", "0.50"),
    ("GBP", "0.30"),
    ("HUF", "10000"),
    ("IDR", "150000"),
    ("COP", "20000"),
    ("ISK", "5000"),
    ("TWD", "1000.50"),
    ("JPY", "5000"),
    ("KRW", "12000"),
    ("UGX", "50000"),
    ("XOF", "7000"),
    ("KWD", "12.340"),
    ("BHD", "1.230"),
    ("TND", "45.670"),
]
REFUSED = [
    ("EUR", "0.40"),
    ("GBP", "0.29"),
    ("JPY", "49"),
    ("HUF", "174"),
    ("EUR", "1000000.00"),
    ("JPY", "100000000"),
    ("HUF", "1000000"),
    ("KWD", "12.345"),
]


def main() -> None:
    emulator = start_emulator()
    try:
        client = stripe.StripeClient("sk_test_bench", base_addresses={"api": emulator.api_base})
        print("Amounts as Stripe receives them (PaymentIntent created, then retrieved)")
        head = f"{'currency':8} {'invoice':>12} {'CLDR':>4} {'Stripe':>6} {'Stripe holds':>13} "
        print(head + f"{'back':>12} {'minimum':>10} {'maximum':>14}")
        wrong = 0
        for code, text in CASES:
            money = Money(Decimal(text), code)
            amount = check_limits(money)
            created = client.v1.payment_intents.create(
                {"amount": amount, "currency": code.lower(), "payment_method_types": ["card"]}
            )
            held = client.v1.payment_intents.retrieve(created.id)
            back = from_stripe(held.amount, held.currency)
            wrong += back != money
            minimum = minimum_charge(code)
            print(
                f"{code:8} {text:>12} {exponent(code):>4} {stripe_exponent(code):>6} "
                f"{held.amount:>13} {str(back.amount):>12} "
                f"{str(minimum.amount) if minimum else '-':>10} "
                f"{str(maximum_charge(code).amount):>14}"
            )
        print(f"round trips that changed the amount: {wrong}")
        print()
        print("Refused before any call to Stripe")
        for code, text in REFUSED:
            money = Money(Decimal(text), code)
            try:
                check_limits(money)
            except OutsideLimits as exc:
                print(f"{code:8} {text:>12}  {exc}")
            except ValueError as exc:  # not expressible in Stripe's unit (KWD to 0.010)
                print(f"{code:8} {text:>12}  {exc}")
            else:
                print(f"{code:8} {text:>12}  NOT REFUSED")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
