"""Words in the reader's language: gettext catalogs read at run time, and the language rules.

The catalogs are receivables/locale/<language>/LC_MESSAGES/messages.po (`make messages`
extracts and updates them, see the README). They are read from the .po at first use and
compiled in memory (Babel's read_po, write_mo into a buffer, `Translations`), once per
process and language: there is no compile step and no binary file in the repository.

Messages are the English text with %-style names (`"In %(n)s days"`), as gettext and
Jinja's i18n extension (newstyle) want them. Python code takes a translator per language:

    _ = translator(language)
    _("Overdue")                                                 # 'En retard'
    _("In %(n)s days", n=3)
    _.ngettext("%(num)d invoice", "%(num)d invoices", count)     # num = count

Strings that are defined before the language is known are marked with `N_` (extraction
finds them) and translated where they are shown. This module imports no web framework: the
domain composes emails and letters with it, and web/i18n.py installs it into Jinja.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("en", "fr")
DEFAULT_LOCALES = {"en": "en_GB", "fr": "fr_FR"}
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"


def normalise(code: str | None) -> str:
    """'fr_BE', 'FR', 'fr-CA' -> 'fr'; unknown or empty -> ''."""
    base = (code or "").strip().lower().replace("-", "_").split("_")[0]
    return base if base in LANGUAGES else ""


def choose_language(*candidates: str | None) -> str:
    """The first supported language among the candidates, in order; English otherwise.

    Customers: the contact's, then the customer's, then the company's (its locale).
    Staff: their own setting (StaffUser.language)."""
    for candidate in candidates:
        if language := normalise(candidate):
            return language
    return "en"


def locale_for(language: str, company_locale: str = "") -> str:
    """The Babel locale for dates and amounts: the company's own when it speaks `language`."""
    if normalise(company_locale) == language and "_" in company_locale.replace("-", "_"):
        return company_locale.replace("-", "_")
    return DEFAULT_LOCALES.get(language, "en_GB")


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> Translations:
    """The language's catalog, compiled in memory from its .po on first use."""
    language = language if language in LANGUAGES else "en"
    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated where it is shown."""
    return message


def _fill(text: str, values: dict[str, Any]) -> str:
    if not values:
        return text
    if "%(" in text:
        return text % values
    # Messages written before the catalogs used str.format names: still filled, so callers
    # that have not moved yet keep working (the catalog test lists them as missing).
    return text.format(**values)


class Translator:
    """gettext and ngettext in one language: `t("Overdue")` -> "En retard" in French.

    Messages not in the catalog come back in English, filled with their values."""

    def __init__(self, language: str):
        self.language = language if language in LANGUAGES else "en"
        self._translations = translations(self.language)

    def __call__(self, message: str, **values: Any) -> str:
        return _fill(self._translations.gettext(message), values)

    gettext = __call__

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        values.setdefault("num", n)
        return _fill(self._translations.ngettext(singular, plural, n), values)


@cache
def translator(language: str) -> Translator:
    return Translator(language)
