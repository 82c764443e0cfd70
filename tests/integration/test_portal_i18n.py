"""The language comes from contact > customer > company; the translator reads the catalogs
(their completeness is tests/unit/test_catalogs.py's)."""

from __future__ import annotations

from receivables.i18n import choose_language, locale_for, translator


def test_language_order_and_locales():
    assert choose_language("", "fr", "en_GB") == "fr"
    assert choose_language("en", "fr", "fr_FR") == "en"
    assert choose_language(None, "", "fr_BE") == "fr"
    assert choose_language("de", "", "") == "en"
    assert locale_for("fr", "fr_BE") == "fr_BE"
    assert locale_for("fr", "en_GB") == "fr_FR"
    assert locale_for("en", "fr_FR") == "en_GB"
    t = translator("fr")
    assert t("Overdue") == "En retard"
    assert t("In %(n)s days", n=3) == "Dans 3 jours"
    assert translator("en")("In %(n)s days", n=3) == "In 3 days"
    one, many = "%(num)d invoice past its due date", "%(num)d invoices past their due date"
    assert t.ngettext(one, many, 1) == "1 facture échue"
    assert t.ngettext(one, many, 2) == "2 factures échues"
    assert translator("xx")("Overdue") == "Overdue"
