"""Payments received, for finance (the reconciliation pages build on this)."""

from __future__ import annotations

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Template

from backoffice.pages import render
from backoffice.security import FINANCE, roles
from receivables.i18n import N_
from receivables.ledger.payment_list import list_payments


@get("/payments", name="bo:payments", opt=roles(FINANCE))
async def payments(
    request: Request, unapplied: FromQuery[str] = "", before: FromQuery[int | None] = None
) -> Template:
    rows, older = await list_payments(unapplied_only=unapplied == "1", before=before)
    return await render(
        request,
        "backoffice/payments/list.html",
        page_title=N_("Payments"),
        payments=rows,
        unapplied=unapplied == "1",
        older=older,
        first_page=before is None,
    )


ROUTES = [payments]
