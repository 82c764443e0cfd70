"""Deep links: a signed portal link that opens one page of the portal after the exchange.

A reminder links to `{link}?next=/invoices/42/pdf`. GET /p/{token} exchanges the token for
a visit exactly as it does without `next`, then redirects to `/p/invoices/42/pdf`, token-free.
Only the pages matched below are destinations; anything else lands on the statement, so
a forged `next` can never send the customer elsewhere (no open redirect).
"""

from __future__ import annotations

import re

STATEMENT = "/statement"
STATEMENT_XLSX = "/statement.xlsx"
_DESTINATION = re.compile(r"/statement(?:\.pdf|\.xlsx)?|/invoices/[1-9][0-9]{0,17}/pdf")
"""Portal pages a link may open, relative to /p (ASCII digits only: fullmatch, no \\d)."""


def invoice_pdf(item_id: int) -> str:
    return f"/invoices/{int(item_id)}/pdf"


def deep_link(link_url: str, destination: str) -> str:
    """The signed link `link_url` (as issued) made to open `destination` (see `_DESTINATION`)."""
    if not _DESTINATION.fullmatch(destination):
        raise ValueError(f"not a portal destination: {destination!r}")
    return f"{link_url}?next={destination}"


def landing(requested: str | None) -> str:
    """The token-free path a link opens: the destination if allowed, else the statement."""
    if requested and _DESTINATION.fullmatch(requested):
        return "/p" + requested
    return "/p" + STATEMENT
