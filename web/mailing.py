"""Emails composed from templates/emails/, for every face and the CLI.

The HTML part is autoescaped, the text part plain.

Templates only place variables; they never receive user text as template code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from receivables.i18n import locale_for
from receivables.portal.emails import ComposedEmail
from receivables.portal.tables import ANSWER_KINDS, DISPUTE_REASONS, PAID_METHODS
from web.filters import register_filters
from web.i18n import install_gettext


@lru_cache(maxsize=4)
def _environment(templates_dir: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    register_filters(env)
    return install_gettext(env)


class TemplateComposer:
    """Implements receivables.portal.emails.Composer over templates/emails/<name>.*."""

    def __init__(self, templates_dir: Path):
        self.env = _environment(str(templates_dir))

    def __call__(self, template: str, context: dict[str, Any], language: str) -> ComposedEmail:
        values = {
            **context,
            "lang": language,
            "locale": context.get("locale") or locale_for(language),
            "kinds": ANSWER_KINDS,
            "methods": PAID_METHODS,
            "reasons": DISPUTE_REASONS,
        }
        if values["locale"] and not str(values["locale"]).startswith(language):
            values["locale"] = locale_for(language, str(values["locale"]))
        subject = self.env.get_template(f"emails/{template}.subject.txt").render(values)
        text = self.env.get_template(f"emails/{template}.txt").render(values)
        html = self.env.get_template(f"emails/{template}.html").render(values)
        return ComposedEmail(subject=" ".join(subject.split()), text=text, html=html)
