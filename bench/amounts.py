"""How amounts are read: a table of real-world spellings per locale, and the parser's speed.

    .venv/bin/python bench/amounts.py

Each cell is what `receivables.money.parse_amount` makes of the spelling, read with no
locale, or a locale's way: the amount, "two readings" (refused, naming both) or "refused"
(not an amount written that way, or finer than the currency). "1,000" is refused with no
locale, 1000 read the English way, and 1.00 nowhere.
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from receivables.money import AmbiguousAmount, MoneyError, parse_amount  # noqa: E402

READERS: list[tuple[str, dict[str, str]]] = [
    ("no locale", {}),
    ("en_GB", {"locale": "en_GB"}),
    ("fr_FR", {"locale": "fr_FR"}),
    ("de_DE", {"locale": "de_DE"}),
    ("de_CH", {"locale": "de_CH"}),
    ("sep ,", {"decimal_separator": ","}),
]
SPELLINGS: list[tuple[str, str]] = [
    ("1,000", "EUR"),
    ("1.000", "EUR"),
    ("12,500", "USD"),
    ("1,000", "JPY"),
    ("1.000", "KWD"),
    ("1 234,56", "EUR"),
    ("1\u202f234,56", "EUR"),
    ("1,234.56", "EUR"),
    ("1.234,56", "EUR"),
    ("1'234.56", "CHF"),
    ("1234.56", "EUR"),
    ("1234,56", "EUR"),
    ("-1234", "EUR"),
    ("(1234.56)", "EUR"),
    ("1.5", "JPY"),
    ("€1,234.56", "EUR"),
]


def cell(text: str, currency: str, how: dict[str, str]) -> str:
    try:
        return f"{parse_amount(text, currency, **how)}"  # type: ignore[arg-type]
    except AmbiguousAmount as exc:
        return f"two: {exc.readings[0]}|{exc.readings[1]}"
    except MoneyError:
        return "refused"


def main() -> None:
    width = 24
    head = f"{'spelling':<12}{'cur':<5}" + "".join(f"{name:<{width}}" for name, _ in READERS)
    print(head)
    print("-" * len(head))
    for text, currency in SPELLINGS:
        shown = text.replace("\u202f", "\u2423")  # make the narrow no-break space visible
        row = "".join(f"{cell(text, currency, how):<{width}}" for _, how in READERS)
        print(f"{shown:<12}{currency:<5}{row}")
    # Never 1.00 for "1,000" in any reader: the point of the whole table.
    for _, how in READERS:
        try:
            assert parse_amount("1,000", "EUR", **how) != Decimal("1.00")  # type: ignore[arg-type]
        except MoneyError:
            pass

    n = 20_000
    texts = ["1 234,56", "1.234,56", "-12,5", "987 654 321,00"] * (n // 4)
    for name, how in (("no locale", {}), ("fr_FR", {"locale": "fr_FR"})):
        start = time.perf_counter()
        for text in texts:
            parse_amount(text, "EUR", **how)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start
        print(f"\n{name}: {n} amounts in {elapsed:.3f} s ({n / elapsed:,.0f} per second)", end="")
    print()


if __name__ == "__main__":
    main()
