"""#Hashtags: the only thing, besides plain text, that a user-editable template may contain.

A template is never handed to a template engine. It is cut into text and `#Name` tokens
by one regular expression; text is copied (escaped for HTML), each hashtag is replaced
by its value, in one pass, so a value that itself contains `#PortalLink` or `{{ ... }}`
stays as it is. `##` writes a literal `#`. A hashtag that is not in HASHTAGS is refused
when the template is saved and, should one reach rendering anyway, the message is not
built (it is never sent with the hashtag as-is).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from difflib import get_close_matches

from receivables.errors import FieldProblem

TOKEN = re.compile(r"##|#([A-Za-z][A-Za-z0-9]*)")
EMAIL_AND_LETTER = frozenset({"email", "letter"})


@dataclass(frozen=True)
class Hashtag:
    name: str
    description: str
    channels: frozenset[str] = EMAIL_AND_LETTER


_DEFINITIONS = [
    Hashtag("CustomerName", "The customer's name."),
    Hashtag("CustomerRef", "The customer's reference in your ERP."),
    Hashtag("ContactName", "The recipient's name (“Sir or Madam” when unknown)."),
    Hashtag("CompanyName", "Your company's name."),
    Hashtag("CompanyLogo", "Your company's logo (nothing in the plain-text part)."),
    Hashtag("OverdueAmount", "What is overdue and to pay now (disputes and promises left out)."),
    Hashtag("NotDueAmount", "What is coming due."),
    Hashtag("TotalOpen", "The whole open balance, credits deducted."),
    Hashtag("Penalties", "Late-payment interest and compensation under your penalty policy."),
    Hashtag("OpenItemsTable", "Every open item: to pay now, coming due, on hold, credits."),
    Hashtag("OverdueItemsTable", "The overdue items to pay now."),
    Hashtag(
        "PortalLink",
        "A fresh signed link to the customer's portal, one per recipient and message.",
        frozenset({"email"}),
    ),
    Hashtag("OldestDueDate", "Due date of the oldest item to pay."),
    Hashtag("DaysLate", "Days since that date."),
    Hashtag("CollectorName", "The customer's collector (your company when none)."),
    Hashtag("CollectorEmail", "The collector's email."),
    Hashtag("CollectorPhone", "The collector's phone."),
    Hashtag("Today", "Today's date."),
]
HASHTAGS: dict[str, Hashtag] = {h.name: h for h in _DEFINITIONS}


class UnknownHashtag(ValueError):
    """A template reached rendering with a hashtag nobody can fill."""

    def __init__(self, names: list[str]):
        self.names = names
        super().__init__("unknown hashtag " + ", ".join(f"#{n}" for n in names))


@dataclass(frozen=True)
class Value:
    """What a hashtag becomes: plain text, and optionally a trusted HTML fragment.

    `html` is built by Relance itself with every datum escaped; when None the text is
    escaped. A `block` value (a table) stands as its own paragraph in HTML.
    """

    text: str
    html: str | None = None
    block: bool = False

    def as_html(self) -> str:
        return self.html if self.html is not None else html.escape(self.text)


def tokens(template: str) -> Iterator[tuple[str, str]]:
    """("text", chunk) and ("tag", name) in order; `##` comes out as the text "#"."""
    position = 0
    for match in TOKEN.finditer(template):
        if match.start() > position:
            yield "text", template[position : match.start()]
        if match.group(0) == "##":
            yield "text", "#"
        else:
            yield "tag", match.group(1)
        position = match.end()
    if position < len(template):
        yield "text", template[position:]


def hashtags_in(template: str) -> list[str]:
    seen: dict[str, None] = {}
    for kind, value in tokens(template):
        if kind == "tag":
            seen.setdefault(value)
    return list(seen)


def _suggestion(name: str) -> str:
    by_lower = {n.lower(): n for n in HASHTAGS}
    if name.lower() in by_lower:
        return f" (did you mean #{by_lower[name.lower()]}?)"
    close = get_close_matches(name, list(HASHTAGS), n=1, cutoff=0.75)
    return f" (did you mean #{close[0]}?)" if close else ""


def check(text: str, field: str, channel: str) -> list[FieldProblem]:
    """Problems of one template field: unknown hashtags, or ones the channel cannot carry."""
    problems = []
    for name in hashtags_in(text):
        tag = HASHTAGS.get(name)
        if tag is None:
            problems.append(
                FieldProblem(
                    field,
                    f"#{name} is not a hashtag Relance knows{_suggestion(name)}; "
                    "write ## for a plain #",
                )
            )
        elif channel not in tag.channels:
            problems.append(FieldProblem(field, f"#{name} cannot be used in a {channel}"))
    return problems


def _values_for(template: str, values: Mapping[str, Value]) -> None:
    missing = [n for n in hashtags_in(template) if n not in values]
    if missing:
        raise UnknownHashtag(missing)


def render_text(template: str, values: Mapping[str, Value]) -> str:
    """The plain-text rendering (also subjects)."""
    _values_for(template, values)
    return "".join(v if k == "text" else values[v].text for k, v in tokens(template))


def render_line(template: str, values: Mapping[str, Value]) -> str:
    """A one-line rendering for subjects: line breaks become spaces."""
    return " ".join(render_text(template, values).split())


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_EDGE_BREAKS = re.compile(r"^(?:\s*<br>\s*)+|(?:\s*<br>\s*)+$")


def render_html(template: str, values: Mapping[str, Value], paragraph_style: str = "") -> str:
    """HTML paragraphs: text escaped, line breaks kept, block values between paragraphs."""
    _values_for(template, values)
    style = f' style="{html.escape(paragraph_style)}"' if paragraph_style else ""
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        content = _EDGE_BREAKS.sub("", "".join(paragraph).strip())
        if content:
            out.append(f"<p{style}>{content}</p>")
        paragraph.clear()

    for kind, value in tokens(template.replace("\r\n", "\n").replace("\r", "\n")):
        if kind == "text":
            for i, part in enumerate(_PARAGRAPH_BREAK.split(value)):
                if i:
                    flush()
                paragraph.append(html.escape(part).replace("\n", "<br>\n"))
            continue
        filled = values[value]
        if filled.block:
            flush()
            out.append(filled.as_html())
        else:
            paragraph.append(filled.as_html())
    flush()
    return "\n".join(out)
