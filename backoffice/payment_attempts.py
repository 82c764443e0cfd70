"""Card payment attempts still open with Stripe after their window (the bank's confirmation
never finished, or no answer came): finance sees their age and state, and cancels them
(canceled at Stripe, then their invoices are released; a payment that succeeded meanwhile is
applied instead). Under the finance pages, as their "Stuck attempts" tab."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from backoffice.finance import TABS
from backoffice.pages import done, render, staff
from backoffice.security import FINANCE, roles
from receivables import clock
from receivables.errors import Conflict, NotFound
from receivables.i18n import N_
from receivables.ledger.account_changes import staff_actor
from receivables.payments import checkout
from receivables.payments.gateway import PaymentServiceUnavailable
from receivables.payments.reports import open_exception_count
from web.deps import GatewayDep

BASE = "/backoffice/finance/attempts"

STATES = {
    "requires_action": "Waiting for the bank's confirmation (3-D Secure not finished)",
    "processing": "Processing at the bank",
    "started": "Sent to Stripe, no answer applied yet",
}


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} days"


@get("/finance/attempts", name="bo:finance-attempts", opt=roles(FINANCE))
async def attempt_list(request: Request) -> Template:
    now = clock.now()
    rows = [
        {
            "attempt": a,
            "age": _age(a.age(now).total_seconds()),
            "state": STATES.get(a.status, a.status),
        }
        for a in await checkout.stuck()
    ]
    return await render(
        request,
        "backoffice/finance/attempts.html",
        tabs=TABS,
        tab="attempts",
        open_exceptions=await open_exception_count(),
        page_title=N_("Stuck card payments"),
        rows=rows,
        window=int(checkout.STALE_AFTER.total_seconds() // 60),
    )


@post(
    "/finance/attempts/{attempt_id:int}/cancel",
    name="bo:finance-attempt-cancel",
    opt=roles(FINANCE),
)
async def attempt_cancel(
    request: Request, attempt_id: FromPath[int], gateway: GatewayDep
) -> Redirect:
    try:
        status = await checkout.cancel_stuck(
            attempt_id, gateway=gateway, actor=staff_actor(staff(request))
        )
    except NotFound:
        return done(request, BASE, N_("That attempt no longer exists."), "error")
    except Conflict as exc:
        return done(request, BASE, str(exc), "info")
    except PaymentServiceUnavailable:
        return done(
            request, BASE, N_("Stripe could not be reached: nothing changed. Try again."), "error"
        )
    if status in ("succeeded", "processing"):
        return done(
            request,
            BASE,
            N_("Stripe says this payment went through: it was applied, not canceled."),
            "info",
        )
    return done(request, BASE, N_("Canceled at Stripe; its invoices can be paid again."))


ROUTES = [attempt_list, attempt_cancel]
