"""Money: Decimal amounts with an ISO 4217 currency; the one place amounts are converted.

Amounts are stored as integer minor units (BigInt) beside their currency, because
floats drift and SQLite returns Numeric as float. Every conversion (database,
Stripe, user input, display) goes through here, using the currency's own exponent
(EUR 2, JPY 0, KWD 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from babel.numbers import format_currency, get_currency_precision, list_currencies


class MoneyError(ValueError):
    """A currency or amount that cannot be money."""


@cache
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def check_currency(code: str) -> str:
    """Return the upper-cased ISO 4217 code or raise MoneyError."""
    code = (code or "").strip().upper()
    if len(code) != 3 or code not in _known_currencies():
        raise MoneyError(f"'{code}' is not an ISO 4217 currency code")
    return code


@cache
def exponent(currency: str) -> int:
    """Number of minor-unit digits of the currency (EUR 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(check_currency(currency)))


@cache
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise MoneyError(f"money amounts are Decimal, not {type(self.amount).__name__}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0).quantize(_quantum(currency)), currency)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        if isinstance(minor, bool) or not isinstance(minor, int):
            raise MoneyError(f"minor units are integers, not {type(minor).__name__}")
        return cls(Decimal(minor).scaleb(-exponent(currency)), currency)

    @property
    def minor(self) -> int:
        """The amount as an integer number of minor units (refuses sub-unit amounts)."""
        return to_minor(self.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def is_zero(self) -> bool:
        return self.amount == 0

    def format(self, locale: str = "en_GB") -> str:
        return format_money(self.amount, self.currency, locale)

    def __str__(self) -> str:
        return f"{self.amount:f} {self.currency}"


def to_minor(amount: Decimal, currency: str) -> int:
    """Exact Decimal -> minor units; an amount finer than the currency allows is refused."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(
            f"{amount} has more decimals than {currency} allows ({exponent(currency)})"
        )
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    """Minor units -> Decimal with the currency's number of decimals."""
    return Money.from_minor(minor, currency).amount


def parse_amount(text: str | int | Decimal, currency: str) -> Decimal:
    """User or file input -> Decimal, exact to the currency's exponent.

    Accepts "1234.50", "1 234,50", "1,234.50", "-12". Floats are refused: they are
    where the drift starts.
    """
    if isinstance(text, float):
        raise MoneyError("amounts must not be floats; send them as strings")
    if isinstance(text, Decimal):
        value = text
    elif isinstance(text, int):
        value = Decimal(text)
    else:
        raw = text.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
        if "," in raw and "." in raw:
            # The last separator is the decimal one: 1,234.50 or 1.234,50.
            if raw.rfind(",") > raw.rfind("."):
                raw = raw.replace(".", "").replace(",", ".")
            else:
                raw = raw.replace(",", "")
        elif "," in raw:
            raw = raw.replace(",", ".")
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise MoneyError(f"'{text}' is not an amount") from None
    if not value.is_finite():
        raise MoneyError(f"'{text}' is not an amount")
    to_minor(value, currency)  # refuses sub-unit precision
    return value.quantize(_quantum(currency))


def round_to_currency(amount: Decimal, currency: str) -> Decimal:
    """Round a computed amount (interest, pro rata) half-up to the currency's minor unit."""
    return amount.quantize(_quantum(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str, locale: str = "en_GB") -> str:
    """Amount for people, in their locale: 1 234,50 € or €1,234.50."""
    return str(format_currency(amount, currency, locale=locale))


def format_minor(minor: int, currency: str, locale: str = "en_GB") -> str:
    return format_money(from_minor(minor, currency), currency, locale)
