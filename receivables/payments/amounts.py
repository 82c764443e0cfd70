"""Stripe amounts: Stripe's own unit and limits per currency, and the only conversions between
our money (`receivables.money`, exponents from CLDR via Babel) and Stripe's integers.

Stripe's unit is not CLDR's minor unit. From Stripe's "Supported currencies" page
(https://docs.stripe.com/currencies, sections "Zero-decimal currencies", "Three-decimal
currencies", "Special cases", "Minimum and maximum charge amounts"):

- every currency is two-decimal to Stripe unless listed below: 10 USD is 1000. CLDR gives
  HUF, IDR, COP and others 0 digits, so their amounts are multiplied by 100 here (a HUF
  10,000 invoice is 1000000 to Stripe, not 10000: that was HUF 100);
- zero-decimal: BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF (500 JPY
  is 500). UGX is on that list in every copy of the page found (docs.stripe.com/currencies
  and its archive of 2022-06); no copy of a "special case" row for UGX could be read;
- three-decimal: BHD JOD KWD OMR TND, and "these API calls require the least-significant
  (last) digit to be 0" (5.124 KWD cannot be charged; 5.120 can);
- special cases: ISK "will remain a two-decimal currency in the Stripe API" but "amounts in
  ISK are stated in multiples of 100" (support.stripe.com/questions/deprecation-of-fractional-
  isk-charges-and-refunds, error invalid_charge_amount_no_decimal_compatible); HUF and TWD
  are zero-decimal for payouts only, "even though you can charge two-decimal amounts", so
  charges are plain two-decimal amounts;
- the amount "supports up to eight digits (e.g., a value of 99999999 for a USD charge of
  $999,999.99)" (the API reference of `amount`), in Stripe's unit;
- minimum charge per currency: the table below (Stripe's, for the currencies it lists; the
  others have the equivalent of USD 0.50 in the settlement currency, which needs an exchange
  rate: Stripe's own refusal, `amount_too_small`, is answered with the same message then).
"""

from __future__ import annotations

import math
from decimal import Decimal

from receivables.money import Money, MoneyError, check_currency, exponent, to_minor

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
STEP = {**{code: 10 for code in THREE_DECIMAL}, "ISK": 100}
"""Stripe amounts in these currencies must be multiples of this (in Stripe's unit)."""
MAXIMUM_AMOUNT = 99_999_999
"""The largest `amount` Stripe takes, in its unit, whatever the currency."""
MINIMUM_CHARGE = {
    code: Decimal(value)
    for code, value in {
        "USD": "0.50",
        "AED": "2.00",
        "AUD": "0.50",
        "BGN": "1.00",
        "BRL": "0.50",
        "CAD": "0.50",
        "CHF": "0.50",
        "CZK": "15.00",
        "DKK": "2.50",
        "EUR": "0.50",
        "GBP": "0.30",
        "HKD": "4.00",
        "HUF": "175.00",
        "INR": "0.50",
        "JPY": "50",
        "MXN": "10",
        "MYR": "2",
        "NOK": "3.00",
        "NZD": "0.50",
        "PLN": "2.00",
        "RON": "2.00",
        "SEK": "3.00",
        "SGD": "0.50",
        "THB": "10",
    }.items()
}
"""Stripe's "Minimum and maximum charge amounts" table, in the currency's major unit."""


def stripe_exponent(currency: str) -> int:
    """Digits after the point in Stripe's unit for the currency (JPY 0, KWD 3, others 2)."""
    code = check_currency(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def _shift(currency: str) -> int:
    """Powers of ten between our minor unit and Stripe's (HUF +2, ISK +2, EUR 0)."""
    return stripe_exponent(currency) - exponent(currency)


def to_stripe(money: Money) -> tuple[int, str]:
    """(amount, currency) as the Stripe API takes them; refuses what Stripe cannot charge."""
    currency = check_currency(money.currency)
    minor = to_minor(money.amount, currency)
    shift = _shift(currency)
    if shift < 0:
        if minor % 10**-shift:
            raise MoneyError(f"{money.amount} {currency} has more decimals than Stripe takes")
        amount = minor // 10**-shift
    else:
        amount = minor * 10**shift
    step = STEP.get(currency, 1)
    if amount % step:
        if currency in THREE_DECIMAL:
            raise MoneyError(
                f"card payments in {currency} go to 0.010; {money.amount} cannot be paid"
            )
        raise MoneyError(f"card payments in {currency} are in whole units; {money.amount} is not")
    return amount, currency.lower()


def from_stripe(amount: int, currency: str) -> Money:
    """A Stripe amount (charge, fee, refund, payout, dispute) back to exact money."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError(f"Stripe amounts are integers, not {type(amount).__name__}")
    code = check_currency(currency)
    shift = _shift(code)
    if shift >= 0:
        factor = 10**shift
        if amount % factor:
            raise MoneyError(f"{amount} is not a whole {code} amount in Stripe's unit")
        return Money.from_minor(amount // factor, code)
    return Money.from_minor(amount * 10**-shift, code)


def minor_from_stripe(amount: int, currency: str) -> int:
    """The same, as our integer minor units (what the tables store)."""
    return from_stripe(amount, currency).minor


def minimum_charge(currency: str) -> Money | None:
    """Stripe's minimum for one charge, when its table names the currency."""
    code = check_currency(currency)
    if code not in MINIMUM_CHARGE:
        return None
    return Money(MINIMUM_CHARGE[code], code)


def maximum_charge(currency: str) -> Money:
    """The largest amount Stripe takes in one charge, as money (JPY 99,999,999; EUR
    999,999.99; KWD 99,999.990; ISK 999,999)."""
    code = check_currency(currency)
    step = math.lcm(STEP.get(code, 1), 10 ** max(_shift(code), 0))
    return from_stripe(MAXIMUM_AMOUNT - MAXIMUM_AMOUNT % step, code)


class OutsideLimits(MoneyError):
    """An amount Stripe would refuse to charge, found before asking it (or refused by it)."""

    def __init__(self, amount: Money, limit: Money | None, *, too_small: bool):
        self.amount = amount
        self.limit = limit
        """The minimum or maximum crossed (None: Stripe's own minimum, not in its table)."""
        self.too_small = too_small
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.too_small:
            return f"{self.amount} is under the minimum card payment ({self.limit or 'Stripe'})"
        return f"{self.amount} is over the maximum card payment ({self.limit})"


def check_limits(money: Money) -> int:
    """Stripe's amount for `money`, after its minimum and maximum: raises OutsideLimits (or
    MoneyError for an amount Stripe's unit cannot express)."""
    amount, _ = to_stripe(money)
    minimum = minimum_charge(money.currency)
    if amount <= 0 or (minimum is not None and money.amount < minimum.amount):
        raise OutsideLimits(money, minimum, too_small=True)
    if amount > MAXIMUM_AMOUNT:
        raise OutsideLimits(money, maximum_charge(money.currency), too_small=False)
    return amount
