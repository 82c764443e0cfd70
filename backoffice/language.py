"""The language of the signed-in user's back office: English or Français, from the header's
switch (every page) and, for admins, per user on the users page."""

from __future__ import annotations

from litestar import Request, post
from litestar.response import Redirect

from backoffice.forms import form_values, text
from backoffice.pages import done, staff, tr
from backoffice.security import ALL_STAFF, roles, safe_next
from receivables.access import staff_accounts
from receivables.errors import InvalidInput
from receivables.i18n import N_


@post("/language", name="bo:language", opt=roles(ALL_STAFF))
async def language(request: Request) -> Redirect:
    values = await form_values(request)
    back = safe_next(text(values, "next"))
    user = staff(request)
    try:
        await staff_accounts.set_language(user.id, text(values, "language"))
    except InvalidInput:
        return done(request, back, tr(request)(N_("That language is not available.")), "error")
    user.language = text(values, "language")
    _ = tr(request)  # the new language's words
    return done(request, back, _("Your pages are now in English."))


ROUTES = [language]
