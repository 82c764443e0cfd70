"""gettext in Jinja: `{{ _("...") }}`, `{% trans %}` and `ngettext` read the catalog of the
context's `lang` (English when a page sets none), for every Environment the project makes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from receivables.i18n import choose_language, normalise, translations


def _language(context: Context) -> str:
    return str(context.get("lang") or "en")


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translations(_language(context)).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return translations(_language(context)).ngettext(singular, plural, n)


@pass_context
def _pgettext(context: Context, ctx: str, message: str) -> str:
    return translations(_language(context)).pgettext(ctx, message)


@pass_context
def _npgettext(context: Context, ctx: str, singular: str, plural: str, n: int) -> str:
    return translations(_language(context)).npgettext(ctx, singular, plural, n)


def install_gettext(env: Environment) -> Environment:
    """Adds jinja2.ext.i18n (newstyle: values are %-filled and autoescaped) to `env`."""
    env.add_extension("jinja2.ext.i18n")
    installer: Any = env
    installer.install_gettext_callables(
        gettext=_gettext,
        ngettext=_ngettext,
        newstyle=True,
        pgettext=_pgettext,
        npgettext=_npgettext,
    )
    return env


LANGUAGE_COOKIE = "relance_lang"
"""The language a visitor chose in the portal, kept for pages without a visit (dead links,
errors); it says nothing else about them."""


def request_language(headers: Mapping[str, str], cookies: Mapping[str, str]) -> str:
    """Pages without an account or a user: the chosen language, else the browser's."""
    if chosen := normalise(cookies.get(LANGUAGE_COOKIE)):
        return chosen
    header = headers.get("accept-language", "")
    tags = [part.split(";")[0].strip() for part in header.split(",") if part.strip()]
    return choose_language(*tags)
