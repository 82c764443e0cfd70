"""Compatibility names: the language rules and the translator now live in receivables.i18n
(gettext catalogs under receivables/locale/)."""

from __future__ import annotations

from receivables.i18n import (
    DEFAULT_LOCALES,
    LANGUAGES,
    Translator,
    choose_language,
    locale_for,
    normalise,
    translator,
)

__all__ = [
    "DEFAULT_LOCALES",
    "LANGUAGES",
    "Translator",
    "choose_language",
    "locale_for",
    "normalise",
    "translator",
]
