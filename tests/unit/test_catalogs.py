"""The catalogs are complete: Babel's own extraction, run in-process over babel.cfg, finds no
string under the covered paths that the French catalog lacks, leaves untranslated or fuzzy, or
translates with other placeholders; and French spacing is kept (a no-break space before
`:`, `;`, `!`, `?`, `%` and inside « »)."""

from __future__ import annotations

import re
from configparser import ConfigParser
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po
from babel.util import pathmatch

from receivables.i18n import catalog_path

ROOT = Path(__file__).resolve().parents[2]
COVERED = [
    "templates/base.html",
    "templates/portal/",
    "templates/emails/",
    "templates/documents/",
    "templates/errors/",
    "portal/",
    "receivables/portal/",
    "receivables/documents/",
    "receivables/dunning/messages.py",
    "receivables/dunning/letters.py",
    "receivables/dunning/notices.py",
    "web/",
    "templates/backoffice/",
    "backoffice/",
    "receivables/labels.py",
    "receivables/dunning/scenarios.py",
    "receivables/dunning/agenda.py",
    "receivables/ledger/timeline.py",
    "receivables/dunning/reference_rates.py",
]
"""What a customer (or a collector's notice) reads: every word here must be in French. The
back office adds its templates and modules to this list as it is translated."""


def _mapping() -> list[tuple[str, str, dict[str, str]]]:
    """babel.cfg's (pattern, method, options), in its order (the first match wins)."""
    cfg = ConfigParser()
    cfg.read(ROOT / "babel.cfg")
    found = []
    for section in cfg.sections():
        method, pattern = (part.strip() for part in section.split(":", 1))
        found.append((pattern, method, dict(cfg.items(section))))
    return found


def _files() -> list[Path]:
    files: list[Path] = []
    for covered in COVERED:
        path = ROOT / covered
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def extracted() -> dict[tuple[str | None, str | tuple[str, ...]], str]:
    """Every message under COVERED as Babel extracts it: (context, msgid) -> where."""
    mapping = _mapping()
    messages: dict[tuple[str | None, str | tuple[str, ...]], str] = {}
    for path in _files():
        relative = path.relative_to(ROOT).as_posix()
        method = next(((m, o) for p, m, o in mapping if pathmatch(p, relative)), None)
        if method is None:
            continue
        found = extract_from_file(
            method[0], str(path), keywords=DEFAULT_KEYWORDS, options=method[1]
        )
        for lineno, message, _comments, context in found:
            messages.setdefault((context, message), f"{relative}:{lineno}")
    return messages


def test_every_customer_facing_string_is_in_french():
    messages = extracted()
    assert len(messages) > 250  # the extraction did run over the templates and modules
    catalog = read_po(catalog_path("fr").open("rb"), locale="fr")
    english = read_po(catalog_path("en").open("rb"), locale="en")
    problems = []
    for (context, msgid), where in sorted(messages.items(), key=lambda kv: kv[1]):
        key = msgid if isinstance(msgid, str) else msgid[0]
        entry = catalog.get(key, context=context)
        if english.get(key, context=context) is None:
            problems.append(f"{where}: {key!r} is not in the English catalog (make messages)")
        if entry is None:
            problems.append(f"{where}: {key!r} is not in the French catalog (make messages)")
            continue
        strings = [entry.string] if isinstance(entry.string, str) else list(entry.string)
        if entry.fuzzy or not all(strings):
            problems.append(f"{where}: {key!r} is fuzzy or untranslated in French")
        for error in entry.check(catalog):
            problems.append(f"{where}: {key!r}: {error}")
        for text in strings:
            # French spacing: never a plain space (or none) before : ; ! ? %, nor inside « ».
            if re.search(
                r"(?<![\u00a0\u202f])[;!?](\s|$)|(?<![\u00a0\u202f%(\w])(?<!\))%(?!\()", text
            ):
                problems.append(f"{where}: {text!r}: a no-break space before ; ! ? %")
            if re.search(r"[^\s\u00a0\u202f] ?:(\s|$)|« |[^\u00a0]»", text.replace("\u00a0:", "")):
                problems.append(f"{where}: {text!r}: a no-break space before : and inside « »")
    assert problems == [], "\n".join(problems)


def test_plurals_read_right_in_both_languages():
    from receivables.i18n import translator

    one, many = "%(num)d invoice past its due date", "%(num)d invoices past their due date"
    assert translator("en").ngettext(one, many, 1) == "1 invoice past its due date"
    assert translator("en").ngettext(one, many, 2) == "2 invoices past their due date"
    assert translator("fr").ngettext(one, many, 1) == "1 facture échue"
    assert translator("fr").ngettext(one, many, 2) == "2 factures échues"


def test_no_template_hides_the_gettext_function():
    """`{% set _ = list.append(...) %}` makes `_` None for the rest of its scope (and for the
    templates it includes): a page then fails on its next `_("...")`."""
    shadowing = re.compile(r"\{%-?\s*(set\s+_\s*=|for\s+[^%]*\b_\b[^%]*\bin\b)")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "templates").rglob("*.*"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if shadowing.search(line)
    ]
    assert found == []
