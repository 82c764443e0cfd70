"""Money: Decimal amounts with an ISO 4217 currency; the one place amounts are converted.

Amounts are stored as integer minor units (BigInt) beside their currency, because
floats drift and SQLite returns Numeric as float. Every conversion (database,
Stripe, user input, display) goes through here, using the currency's own exponent
(EUR 2, JPY 0, KWD 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    NumberFormatError,
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    list_currencies,
    parse_decimal,
)


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


# --------------------------------------------------------------------------------------
# Reading amounts people and files write


MAX_MINOR = 10**18
"""Amounts read from outside stay under this many minor units: stored as BigInt (< 9.2e18),
summed without overflow."""
_SPACES = " \u00a0\u202f\u2009\u2007"
"""Spaces that group thousands: plain, no-break, narrow no-break (French), thin, figure."""
_APOSTROPHES = "'\u2019\u02bc"
"""Apostrophes that group thousands in Switzerland: ', its typographic form, the letter one."""
_SIGNS = "+-\u2212"
_BODY = re.compile(r"[0-9.,' ]+")
_PLAIN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_LETTERS = re.compile(r"[A-Za-z]{3}")


class AmbiguousAmount(MoneyError):
    """An amount whose separator could be the decimal point or a thousands separator."""

    def __init__(self, text: str, readings: tuple[str, str], detail: str = ""):
        self.text = text
        self.readings = readings
        super().__init__(
            f"'{text}' could be {readings[0]} or {readings[1]}: set the file's locale or "
            f"decimal separator{detail}"
        )


@dataclass(frozen=True, slots=True)
class AmountFormat:
    """How a source writes its amounts.

    `locale` (en_GB, fr_FR, de_CH...): that locale's decimal sign decides, its group sign
    (and spaces, and the other of '.' and ',' once the decimal sign is there) groups.
    `decimal_separator` ('.' or ','): said outright. Neither: only spellings with a single
    reading are taken ("1 234,56", "1,234.56", "1234.5"); "1,000" is refused.
    `plain`: a machine's format (ISO 20022 XML, the JSON API): digits, '-', '.' decimals.
    """

    locale: str | None = None
    decimal_separator: str | None = None
    plain: bool = False

    def __post_init__(self) -> None:
        if self.decimal_separator not in (None, ".", ","):
            raise MoneyError(f"the decimal separator is '.' or ',', not '{self.decimal_separator}'")
        if self.locale is not None and self.decimal_separator is not None:
            raise MoneyError("give the locale or the decimal separator of amounts, not both")
        if self.locale is not None:
            _symbols(self.locale)  # refuses an unknown locale

    def parse(self, text: str | int | Decimal, currency: str | None) -> Decimal:
        if self.plain:
            return parse_plain_amount(text, currency)
        return parse_amount(
            text, currency, locale=self.locale, decimal_separator=self.decimal_separator
        )

    def __str__(self) -> str:
        if self.plain:
            return "plain (1234.56)"
        if self.locale:
            return f"the {self.locale} way"
        if self.decimal_separator:
            return f"with '{self.decimal_separator}' as decimal separator"
        return "no locale"


PLAIN = AmountFormat(plain=True)
"""Machine-written amounts: "1234.56", "-12"."""


@dataclass(frozen=True, slots=True)
class _Symbols:
    locale: Locale
    decimal: str
    currency_decimal: str | None
    group: str
    """The group sign as `_canonical` spells it."""
    babel_group: str
    """The group sign as the locale writes it (U+202F in French)."""
    thousands: bool
    """Groups of three digits throughout (not en_IN's lakhs, which Babel checks)."""
    example: str


@cache
def _symbols(locale: str) -> _Symbols:
    try:
        parsed = Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise MoneyError(f"'{locale}' is not a locale like en_GB or fr_FR") from None
    symbols = parsed.number_symbols.get("latn", {})
    decimal = symbols.get("decimal", ".")
    group = _canonical(symbols.get("group", ","))
    alt = symbols.get("currencyDecimal")
    alt = alt if alt and alt not in (decimal, group) else None
    example = str(format_decimal(Decimal("1234.56"), locale=parsed)).replace("\u202f", " ")
    pattern = parsed.decimal_formats.get(None)
    thousands = pattern is None or tuple(pattern.grouping) == (3, 3)
    babel_group = symbols.get("group", ",")
    return _Symbols(parsed, decimal, alt, group, babel_group, thousands, example)


_CANONICAL = str.maketrans({**dict.fromkeys(_SPACES, " "), **dict.fromkeys(_APOSTROPHES, "'")})


def _canonical(char: str) -> str:
    """One spelling per kind of group sign: every space is ' ', every apostrophe is "'"."""
    if char in _SPACES:
        return " "
    if char in _APOSTROPHES:
        return "'"
    return char


@cache
def _currency_marks(currency: str | None, locale: str | None) -> tuple[str, ...]:
    """What may stand before or after an amount for its currency: code and symbols."""
    if currency is None:
        return ()
    marks = {currency}
    for where in {"en", locale or "en"}:
        try:
            marks.add(str(get_currency_symbol(currency, locale=where)))
        except (UnknownLocaleError, ValueError):
            pass
    return tuple(sorted((m.upper() for m in marks if m), key=len, reverse=True))


def _unwrap(text: str, currency: str | None, locale: str | None) -> tuple[bool, str]:
    """(negative, the digits and separators): parentheses, one sign at either end and one
    currency code or symbol at either end are taken off."""
    s = text.strip()
    if s[:1].isdigit() and s[-1:].isdigit():  # most amounts: nothing around the digits
        return False, s.translate(_CANONICAL)
    negative = False
    signed = marked = False
    if len(s) > 2 and s[0] == "(" and s[-1] == ")":
        negative = signed = True
        s = s[1:-1].strip()
    marks = _currency_marks(currency, locale)
    while s:
        upper = s.upper()
        mark = next((m for m in marks if upper.startswith(m) or upper.endswith(m)), None)
        if mark is not None and not marked:
            s = (s[len(mark) :] if upper.startswith(mark) else s[: -len(mark)]).strip()
            marked = True
        elif not signed and (s[0] in _SIGNS or s[-1] in _SIGNS):
            sign = s[0] if s[0] in _SIGNS else s[-1]
            negative = sign != "+"
            s = (s[1:] if s[0] in _SIGNS else s[:-1]).strip()
            signed = True
        else:
            break
    return negative, s.translate(_CANONICAL)


@dataclass(frozen=True, slots=True)
class _Reading:
    whole: str
    """The integer digits, group signs taken out."""
    fraction: str
    group: str
    """The sign that grouped thousands ('' when none did)."""
    written: str
    """The integer part as written."""

    @property
    def value(self) -> Decimal:
        return Decimal(f"{self.whole}.{self.fraction}" if self.fraction else self.whole)

    def could_be_thousands(self) -> bool:
        """'1,000' or '12.500': three decimals after 1-3 digits, which a thousands
        separator would also give."""
        short = len(self.whole) <= 3 and self.whole[0] != "0" and not self.group
        return short and len(self.fraction) == 3


def _split(body: str, decimal: str | None, groups: str, *, sized: bool = True) -> _Reading | None:
    """`body` read with `decimal` as decimal sign (None: a whole number) and any one of
    `groups` grouping thousands (1-3 digits, then groups of 3; `sized` False leaves the
    sizes to Babel, which knows en_IN's lakhs); None when it does not fit."""
    whole, fraction = body, ""
    if decimal is not None:
        if body.count(decimal) != 1:
            return None
        whole, fraction = body.split(decimal)
        if not fraction.isdigit():
            return None
    used = {c for c in whole if not c.isdigit()}
    if not whole or len(used) > 1 or (used and not used <= set(groups)):
        return None
    if used:
        group = used.pop()
        parts = whole.split(group)
        if sized and not (1 <= len(parts[0]) <= 3 and all(len(p) == 3 for p in parts[1:])):
            return None
        if not all(p.isdigit() for p in parts) or parts[0][0] == "0":
            return None
        return _Reading("".join(parts), fraction, group, whole)
    return _Reading(whole, fraction, "", whole) if whole.isdigit() else None


def _other(decimal: str) -> str:
    return "," if decimal == "." else "."


def _readings(body: str, locale: str | None, separator: str | None) -> list[_Reading]:
    if separator is not None:
        groups = " '" + _other(separator)
        found = _split(body, separator if separator in body else None, groups)
        return [found] if found else []
    if locale is not None:
        sym = _symbols(locale)
        sized = sym.thousands
        readings = []
        for decimal in (sym.decimal, sym.currency_decimal):
            if decimal and decimal in body:
                groups = " " + sym.group + (_other(decimal) if decimal in ".," else "")
                if found := _split(body, decimal, groups, sized=sized):
                    readings.append(found)
        unmarked = sym.decimal not in body and not (
            sym.currency_decimal and sym.currency_decimal in body
        )
        if not readings and unmarked:
            readings = [r for r in [_split(body, None, " " + sym.group, sized=sized)] if r]
            if not readings and sym.group != "." and _PLAIN.fullmatch(body):
                readings = [r for r in [_split(body, ".", "")] if r]  # "1234.56": machines
        return readings
    readings = []
    for decimal in (".", ","):
        if found := _split(body, decimal, " '" + _other(decimal)):
            readings.append(found)
    if found := _split(body, None, " '.,"):
        readings.append(found)
    return readings


def _shown(value: Decimal, currency: str | None) -> str:
    if currency is not None:
        try:
            to_minor(value, currency)
            return f"{value.quantize(_quantum(currency)):f}"
        except MoneyError:
            pass
    return f"{value:f}"


@cache
def _finest() -> str:
    return max(sorted(_known_currencies()), key=exponent)


def _exact(value: Decimal, text: object, currency: str | None) -> Decimal:
    if not value.is_finite():
        raise MoneyError(f"'{text}' is not an amount")
    code = currency or _finest()
    if abs(to_minor(value, code)) >= MAX_MINOR:  # to_minor refuses sub-unit precision
        raise MoneyError(f"'{text}' is too large an amount")
    return value.quantize(_quantum(code))


def parse_amount(
    text: str | int | Decimal,
    currency: str | None,
    *,
    locale: str | None = None,
    decimal_separator: str | None = None,
) -> Decimal:
    """An amount as people and files write it -> Decimal, exact to the currency's exponent.

    With `locale`, read that locale's way (en "1,234.56", fr "1 234,56", de "1.234,56",
    de_CH "1'234.56"), checked by Babel's strict parser; with `decimal_separator` ('.' or
    ','), that sign is the decimal one; with neither, a spelling with two readings is
    refused: "1,000" could be 1000.00 or 1.00 (AmbiguousAmount names both). Either way a
    separator followed by exactly three digits after one to three digits ("1.000") is
    never taken as three decimals of a currency that has fewer, and an amount finer than
    the currency is refused (JPY "1.5"). Spaces of every kind and apostrophes group
    thousands; "-1234", "1234-", "(1234.56)" are negative; the currency's code or symbol may
    stand before or after. `currency` None checks only what no currency allows. Floats are
    refused: they are where the drift starts.
    """
    if isinstance(text, bool) or isinstance(text, float):
        raise MoneyError("amounts must not be floats; send them as strings")
    if isinstance(text, (Decimal, int)):
        return _exact(Decimal(text), text, currency)
    if not isinstance(text, str):
        raise MoneyError(f"a {type(text).__name__} is not an amount")
    if locale is not None and decimal_separator is not None:
        AmountFormat(locale, decimal_separator)  # says why not
    negative, body = _unwrap(text, currency, locale)
    if not _BODY.fullmatch(body):
        other = _LETTERS.search(body)
        if currency and other and other[0].upper() in _known_currencies():
            raise MoneyError(f"'{text}' is in {other[0].upper()}, not {currency}")
        raise MoneyError(f"'{text}' is not an amount")
    found = {r.value: r for r in _readings(body, locale, decimal_separator)}
    if not found:
        if locale is not None:
            example = _symbols(locale).example
            raise MoneyError(
                f"'{text}' is not an amount written the {locale} way (like {example}); "
                "set the file's locale or decimal separator"
            )
        if decimal_separator is not None:
            example = "1,234.56" if decimal_separator == "." else "1 234,56"
            raise MoneyError(
                f"'{text}' is not an amount with '{decimal_separator}' as decimal separator "
                f"(like {example})"
            )
        raise MoneyError(f"'{text}' is not an amount")
    readings = sorted(found.values(), key=lambda r: r.value, reverse=True)
    if len(readings) > 1:
        raise AmbiguousAmount(
            text, (_shown(readings[0].value, currency), _shown(readings[1].value, currency))
        )
    reading = readings[0]
    if reading.could_be_thousands() and (currency is None or exponent(currency) < 3):
        thousands = Decimal(reading.whole + reading.fraction)
        how = AmountFormat(locale, decimal_separator)
        detail = f" (read {how} it has 3 decimals, {currency or 'the currency'} has fewer)"
        raise AmbiguousAmount(
            text, (_shown(thousands, currency), _shown(reading.value, currency)), detail
        )
    value = reading.value
    if locale is not None and reading.group and not _symbols(locale).thousands:
        value = _babel_checked(reading, locale, text)
    return _exact(-value if negative else value, text, currency)


def _babel_checked(reading: _Reading, locale: str, text: str) -> Decimal:
    """The reading, confirmed by Babel's strict parser in the locale's own signs (a grouping
    other than by thousands; by thousands `_split` has checked it, 20 times faster)."""
    sym = _symbols(locale)
    whole = reading.written.replace(reading.group, sym.babel_group)
    canonical = whole + (sym.decimal + reading.fraction if reading.fraction else "")
    try:
        value = parse_decimal(canonical, locale=sym.locale, strict=True)
    except NumberFormatError:
        value = None
    if value != reading.value:
        example = _symbols(locale).example
        raise MoneyError(f"'{text}' is not an amount written the {locale} way (like {example})")
    return reading.value


def parse_plain_amount(text: str | int | Decimal, currency: str | None) -> Decimal:
    """A machine-written amount -> Decimal: "1234.56", "-12" (ISO 20022 XML, the JSON API).

    No thousands separator, '.' for decimals; an amount finer than the currency is refused.
    """
    if isinstance(text, bool) or isinstance(text, float):
        raise MoneyError("amounts must not be floats; send them as strings")
    if isinstance(text, (Decimal, int)):
        return _exact(Decimal(text), text, currency)
    if not isinstance(text, str) or not _PLAIN.fullmatch(text.strip()):
        raise MoneyError(
            f"'{text}' is not an amount written like 1234.56 (digits, '.' for decimals, "
            "no thousands separator)"
        )
    return _exact(Decimal(text.strip()), text, currency)


_TYPED = re.compile(r"\d{1,12}(?:\.\d+)?")


class NotTypedAmount(MoneyError):
    """Not digits with at most one '.': the caller says what it expects, with its example."""


def parse_typed_minor(text: str, currency: str) -> int | None:
    """A non-negative amount a person typed in a form, in minor units; empty is None.

    Digits and at most one '.' with at most the currency's decimals: "1,000" is ambiguous and
    refused rather than guessed (NotTypedAmount); too many decimals is a MoneyError saying how
    many the currency has. The one reader of the back office's amount fields."""
    raw = text.strip()
    if not raw:
        return None
    if not _TYPED.fullmatch(raw):
        raise NotTypedAmount(f"'{raw}' is not an amount like 120 or 120.50")
    places = exponent(currency)
    if len(raw.partition(".")[2]) > places:
        raise MoneyError(f"{currency} has {places} decimal places")
    return Money(Decimal(raw), currency).minor


def round_to_currency(amount: Decimal, currency: str) -> Decimal:
    """Round a computed amount (interest, pro rata) half-up to the currency's minor unit."""
    return amount.quantize(_quantum(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str, locale: str | Locale = "en_GB") -> str:
    """Amount for people, in their locale: 1 234,50 € or €1,234.50."""
    fast = _money_format(currency, str(locale))
    if fast is not None:
        return fast(amount)
    return str(format_currency(amount, currency, locale=locale))


_PROBES = ("0", "5", "-1", "999.5", "1000", "-1234.5", "12345.67", "-1234567.89", "100000000")


@cache
def _money_format(currency: str, locale: str):
    """Babel's standard currency format of (currency, locale) as a few string operations:
    Babel re-reads the locale's pattern and symbols on every call (80 us; a statement page
    formats some 230 amounts). Kept only when it writes the probes exactly as Babel does
    (else None: Babel itself is used, e.g. for Indian grouping or a minimum grouping)."""
    try:
        loc = Locale.parse(locale)
        pattern = loc.currency_formats["standard"]
        digits = get_currency_precision(currency)
        symbol = get_currency_symbol(currency, loc)
        decimal = loc.number_symbols["latn"]["decimal"]
        group = loc.number_symbols["latn"]["group"]
    except (KeyError, ValueError, UnknownLocaleError):
        return None
    if pattern.grouping != (3, 3):
        return None
    prefixes = [p.replace("¤", symbol) for p in pattern.prefix]
    suffixes = [p.replace("¤", symbol) for p in pattern.suffix]
    table = str.maketrans({",": group, ".": decimal})

    def fast(amount: Decimal) -> str:
        sign = 1 if amount < 0 else 0
        number = f"{abs(amount):,.{digits}f}".translate(table)
        return f"{prefixes[sign]}{number}{suffixes[sign]}"

    for probe in _PROBES:
        value = Decimal(probe)
        if fast(value) != str(format_currency(value, currency, locale=loc)):
            return None
    return fast


def format_minor(minor: int, currency: str, locale: str = "en_GB") -> str:
    return format_money(from_minor(minor, currency), currency, locale)
