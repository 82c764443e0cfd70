"""Stripe amounts: integers in Stripe's unit for the currency, converted only here.

Stripe's unit is the ISO 4217 minor unit (EUR cents, JPY yen, KWD fils) with two
documented exceptions: ISK and UGX are sent as two-decimal amounts ending in 00, and the
three-decimal currencies (BHD, JOD, KWD, OMR, TND) must end in 0 (card networks settle
them to 0.010). Everything else goes through `receivables.money`.
"""

from __future__ import annotations

from receivables.money import Money, MoneyError, check_currency, exponent, to_minor

_TWO_DECIMAL_ON_STRIPE = frozenset({"ISK", "UGX"})
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def _shift(currency: str) -> int:
    """Powers of ten between our minor unit and Stripe's."""
    return 2 - exponent(currency) if currency in _TWO_DECIMAL_ON_STRIPE else 0


def to_stripe(money: Money) -> tuple[int, str]:
    """(amount, currency) as the Stripe API takes them; refuses what Stripe cannot charge."""
    currency = check_currency(money.currency)
    minor = to_minor(money.amount, currency)
    if currency in _THREE_DECIMAL and minor % 10:
        raise MoneyError(f"card payments in {currency} go to 0.010; {money.amount} cannot be paid")
    return minor * 10 ** _shift(currency), currency.lower()


def from_stripe(amount: int, currency: str) -> Money:
    """A Stripe amount (charge, fee, refund, payout) back to exact money."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError(f"Stripe amounts are integers, not {type(amount).__name__}")
    code = check_currency(currency)
    factor = 10 ** _shift(code)
    if amount % factor:
        raise MoneyError(f"{amount} is not a whole {code} amount in Stripe's unit")
    return Money.from_minor(amount // factor, code)


def minor_from_stripe(amount: int, currency: str) -> int:
    """The same, as our integer minor units (what the tables store)."""
    return from_stripe(amount, currency).minor
