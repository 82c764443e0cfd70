"""English and French: every message the portal, its documents and emails use has a French
translation with the same placeholders; the language comes from contact > customer > company."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

from portal.display import KINDS, METHODS, REASONS, TYPES
from receivables.documents.xlsx import COLUMNS
from receivables.portal.i18n import FR, choose_language, locale_for, missing, translator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_CALL = re.compile(r"""_\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
CODE_CALL = re.compile(r"""\bt\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


def _messages() -> set[str]:
    found: set[str] = set()
    for folder in ("portal", "documents", "emails"):
        for path in (ROOT / "templates" / folder).glob("*"):
            found |= {ast.literal_eval(m) for m in TEMPLATE_CALL.findall(path.read_text())}
    for path in [*(ROOT / "portal").glob("*.py"), *(ROOT / "receivables/documents").glob("*.py")]:
        found |= {ast.literal_eval(m) for m in CODE_CALL.findall(path.read_text())}
    # Field messages of the answer form are shown through the catalogue too.
    feedback = (ROOT / "receivables/portal/feedback.py").read_text()
    tree = ast.parse(feedback)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("FieldProblem", "one", "_date"):
                found |= {
                    a.value
                    for a in node.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str) and " " in a.value
                }
    found |= {*KINDS.values(), *METHODS.values(), *REASONS.values(), *TYPES.values()}
    found |= {name for name, _ in COLUMNS}
    return found


def test_every_message_has_a_french_translation():
    messages = _messages()
    assert len(messages) > 150
    assert missing(messages) == []


def test_placeholders_match():
    fields = string.Formatter()
    for english, french in FR.items():
        names_en = {f for _, f, _, _ in fields.parse(english) if f}
        names_fr = {f for _, f, _, _ in fields.parse(french) if f}
        assert names_en == names_fr, english


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
    assert t("In {n} days", n=3) == "Dans 3 jours"
    assert translator("en")("In {n} days", n=3) == "In 3 days"
    assert translator("xx")("Overdue") == "Overdue"
