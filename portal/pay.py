"""Paying invoices by card from the portal: the page, the two steps the browser calls, the result.

The browser runs the card path of receivables.payments.checkout with Stripe.js (or its
localstripe stand-in): POST /p/pay/start (a SetupIntent for the selection), then
`confirmCardSetup`, then POST /p/pay/confirm (the PaymentIntent), then, when the bank asks
for it, `confirmCardPayment`. The result page only says the payment is being confirmed
until Stripe's webhook has applied it. These pages load a script from Stripe, so they send
their own Content-Security-Policy allowing exactly that origin.

An amount Stripe would refuse is answered with what to do (pay by transfer, more or fewer
invoices), before anything is sent to Stripe. Opening the page first asks Stripe about the
customer's attempts that went quiet (`checkout.settle_stale`); an attempt waiting for the
bank's confirmation is shown with Finish (3-D Secure again) and Cancel (canceled at Stripe).
"""

# ruff: noqa: E501  (the catalogue's lines are whole sentences)

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.access import require_csrf
from portal.display import group_iban
from portal.pages import visit_context
from receivables.clock import customer_today
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.i18n import N_, translator
from receivables.ledger.tables import Company, Customer
from receivables.money import Money, exponent
from receivables.payments import checkout
from receivables.payments.amounts import OutsideLimits
from receivables.payments.gateway import PaymentServiceUnavailable, StripeGateway
from receivables.portal.sessions import Visit
from receivables.settings import Settings
from web.deps import GatewayDep, SettingsDep

STRIPE_JS = "https://js.stripe.com/v3/"
log = logging.getLogger("relance.portal.pay")

STRIPE_MESSAGES = (N_("The provided PaymentMethod has failed authentication."),)
"""Stripe's own words a customer may read, translated when the catalog has them."""


def stripe_js_url(settings: Settings) -> str:
    """Stripe.js, or localstripe's stand-in when the SDK points at the emulator."""
    if settings.stripe_api_base:
        return f"{settings.stripe_api_base}/js.stripe.com/v3/"
    return STRIPE_JS


def pay_csp(settings: Settings) -> str:
    """The default policy plus Stripe: its script, its frames (3-D Secure) and its API."""
    if settings.stripe_api_base:
        parts = urlsplit(settings.stripe_api_base)
        origin = f"{parts.scheme}://{parts.netloc}"
        script, frame, connect, img = origin, origin, origin, ""
    else:
        script = "https://js.stripe.com"
        frame = "https://js.stripe.com https://hooks.stripe.com"
        connect = "https://api.stripe.com"
        img = " https://*.stripe.com"
    return (
        f"default-src 'self'; script-src 'self' {script}; frame-src {frame}; "
        f"connect-src 'self' {connect}; img-src 'self' data:{img}; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


def _item_ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.strip().isdigit()][:500]


async def _account(visit: Visit) -> tuple[Company, Customer]:
    company = await Company.objects().get(Company.id == visit.company_id)
    customer = await Customer.objects().get(Customer.id == visit.customer_id)
    assert company is not None and customer is not None
    return company, customer


@get("/pay", name="portal:pay", include_in_schema=False)
async def pay_page(
    request: HTMXRequest,
    visit: NamedDependency[Visit],
    settings: SettingsDep,
    gateway: GatewayDep,
    item: FromQuery[list[str] | None] = None,
    currency: FromQuery[str | None] = None,
    done: FromQuery[str | None] = None,
) -> Response:
    if request.htmx:
        # Stripe.js loads only on a full page load (and under this page's own policy), so an
        # htmx click (boosted link, or hx-get with the ticked items) becomes a navigation.
        query = urlencode([("item", i) for i in item or []])
        return Response(
            content="", headers={"HX-Redirect": "/p/pay" + (f"?{query}" if query else "")}
        )
    company, customer = await _account(visit)
    if settings.stripe_enabled:
        await _settle(visit, gateway)
    items = await checkout.payable_items(visit.customer_id, await customer_today(visit.customer_id))
    currencies = sorted({i.currency for i in items})
    wanted = set(_item_ids(item or []))
    chosen_currency = currency if currency in currencies else ""
    if not chosen_currency and wanted:
        chosen_currency = next((i.currency for i in items if i.id in wanted), "")
    if not chosen_currency and currencies:
        overdue = [i.currency for i in items if i.overdue]
        chosen_currency = (
            max(set(overdue), key=overdue.count)
            if overdue
            else (company.currency if company.currency in currencies else currencies[0])
        )
    shown = [i for i in items if i.currency == chosen_currency]
    selected = wanted or {i.id for i in shown if i.overdue}
    ctx = visit_context(
        visit,
        None,
        company=company,
        customer=customer,
        invoices=[i for i in shown if not i.is_credit_note],
        credit_notes=[i for i in shown if i.is_credit_note],
        selected=selected,
        currencies=currencies,
        currency=chosen_currency,
        total=Money.from_minor(
            sum(
                -i.open_minor if i.is_credit_note else i.open_minor
                for i in shown
                if i.id in selected
            ),
            chosen_currency or company.currency,
        ),
        exponent=exponent(chosen_currency or company.currency),
        stripe_enabled=settings.stripe_enabled,
        publishable_key=settings.stripe_publishable_key,
        stripe_js_url=stripe_js_url(settings),
        iban=group_iban(company.iban),
        today=await customer_today(visit.customer_id),
        next_path="/p/pay",
        waiting=await checkout.waiting(visit.customer_id) if settings.stripe_enabled else [],
        notice=_NOTICES.get(done or ""),
    )
    return Template(
        template_name="portal/pay.html",
        context=ctx,
        headers={"content-security-policy": pay_csp(settings)},
    )


_NOTICES = {
    "canceled": N_("The payment was canceled: its invoices can be paid again."),
    "succeeded": N_(
        "This payment went through before it could be canceled: its invoices are paid."
    ),
    "pending": N_(
        "This payment is being sent to our payment provider: wait a minute and try again."
    ),
}


async def _settle(visit: Visit, gateway: StripeGateway) -> None:
    """Ask Stripe about this customer's attempts that went quiet (no webhook came); a Stripe
    that cannot be reached leaves them as they are (they stay unpayable, never released)."""
    try:
        await checkout.settle_stale(visit.customer_id, gateway)
    except Exception:  # Stripe down: the page still opens, the attempts stay as they are
        log.warning("could not read quiet payment attempts from Stripe", exc_info=True)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(content=body, status_code=status, media_type=MediaType.JSON)


def limits_message(exc: OutsideLimits, _: Any, locale: str) -> str:
    """What the customer can do about an amount Stripe would refuse, in their language."""
    amount = exc.amount.format(locale)
    if not exc.too_small:
        assert exc.limit is not None
        return _("A card payment can be at most %(maximum)s; this selection comes to %(amount)s. Pay fewer invoices at a time, or pay by bank transfer.", maximum=exc.limit.format(locale), amount=amount)  # fmt: skip
    if exc.limit is None:
        return _("%(amount)s is under the smallest card payment our payment provider accepts in this currency. Add more invoices to this payment, or pay by bank transfer.", amount=amount)  # fmt: skip
    return _("Card payments start at %(minimum)s: %(amount)s is less. Add more invoices to this payment, or pay by bank transfer.", minimum=exc.limit.format(locale), amount=amount)  # fmt: skip


def _refusal(exc: Exception, visit: Visit | None = None) -> Response:
    if isinstance(exc, OutsideLimits) and visit is not None:
        _ = translator(visit.language)
        locale = visit_context(visit, None)["locale"]
        return _json({"error": limits_message(exc, _, locale)}, 400)
    if isinstance(exc, InvalidInput):
        return _json({"error": "; ".join(p.message for p in exc.problems)}, 400)
    if isinstance(exc, Conflict):
        return _json({"error": str(exc)}, 409)
    return _json({"error": "unavailable"}, 503)


@post("/pay/start", name="portal:pay-start", include_in_schema=False, status_code=200)
async def pay_start(
    request: Request, visit: NamedDependency[Visit], settings: SettingsDep, gateway: GatewayDep
) -> Response:
    form = await request.form()
    require_csrf(request, visit, form)
    if not settings.stripe_enabled:
        return _json({"error": "online payment is not available"}, 404)
    try:
        started = await checkout.start(
            company_id=visit.company_id,
            customer_id=visit.customer_id,
            item_ids=_item_ids(form.getall("item", [])),
            actor=visit.actor,
            gateway=gateway,
            on=await customer_today(visit.customer_id),
        )
    except (InvalidInput, Conflict, PaymentServiceUnavailable, OutsideLimits) as exc:
        return _refusal(exc, visit)
    return _json(
        {
            "key": started.key,
            "client_secret": started.setup_client_secret,
            "amount": str(started.amount.amount),
            "currency": started.amount.currency,
        }
    )


@post("/pay/confirm", name="portal:pay-confirm", include_in_schema=False, status_code=200)
async def pay_confirm(
    request: Request, visit: NamedDependency[Visit], gateway: GatewayDep
) -> Response:
    form = await request.form()
    require_csrf(request, visit, form)
    key = str(form.get("key") or "")[:40]
    try:
        result = await checkout.confirm(
            customer_id=visit.customer_id,
            key=key,
            payment_method=str(form.get("payment_method") or "")[:255],
            actor=visit.actor,
            gateway=gateway,
            on=await customer_today(visit.customer_id),
        )
    except (InvalidInput, Conflict, PaymentServiceUnavailable, OutsideLimits) as exc:
        return _refusal(exc, visit)
    return _json(_answer(visit, key, result))


@post(
    "/pay/authentication",
    name="portal:pay-authentication",
    include_in_schema=False,
    status_code=200,
)
async def pay_authentication(
    request: Request, visit: NamedDependency[Visit], gateway: GatewayDep
) -> Response:
    """The browser reports that 3-D Secure did not complete; Stripe is asked what happened."""
    form = await request.form()
    require_csrf(request, visit, form)
    key = str(form.get("key") or "")[:40]
    try:
        result = await checkout.authentication_ended(
            customer_id=visit.customer_id, key=key, gateway=gateway
        )
    except PaymentServiceUnavailable as exc:
        return _refusal(exc)
    return _json(_answer(visit, key, result))


@post("/pay/finish", name="portal:pay-finish", include_in_schema=False, status_code=200)
async def pay_finish(
    request: Request, visit: NamedDependency[Visit], gateway: GatewayDep
) -> Response:
    """A waiting attempt's 3-D Secure, again: Stripe's client secret for confirmCardPayment
    while Stripe still requires action, else where the attempt stands."""
    form = await request.form()
    require_csrf(request, visit, form)
    key = str(form.get("key") or "")[:40]
    try:
        result = await checkout.finish_secret(visit.customer_id, key, gateway)
    except (PaymentServiceUnavailable, NotFound) as exc:
        return _refusal(exc)
    return _json(_answer(visit, key, result))


@post("/pay/cancel", name="portal:pay-cancel", include_in_schema=False, status_code=303)
async def pay_cancel(
    request: Request, visit: NamedDependency[Visit], gateway: GatewayDep
) -> Redirect:
    """Cancel a waiting attempt: at Stripe first, then its invoices are released."""
    form = await request.form()
    require_csrf(request, visit, form)
    try:
        result = await checkout.cancel(
            customer_id=visit.customer_id,
            key=str(form.get("key") or "")[:40],
            gateway=gateway,
            actor=visit.actor,
        )
    except Conflict:
        return Redirect("/p/pay?done=pending", status_code=303)
    done = "succeeded" if result.status in ("succeeded", "processing") else "canceled"
    return Redirect(f"/p/pay?done={done}", status_code=303)


def _answer(visit: Visit, key: str, result: checkout.Confirmation) -> dict[str, Any]:
    _ = translator(visit.language)
    body: dict[str, Any] = {"status": result.status, "next": f"/p/pay/done/{key}"}
    if result.client_secret:
        body["client_secret"] = result.client_secret
    if result.status == "declined":
        # Stripe's own words, in the visitor's language when the catalogue has them.
        body["message"] = _(result.message) if result.message else _("Your card was declined.")
    return body


@get("/pay/done/{key:str}", name="portal:pay-done", include_in_schema=False)
async def pay_done(
    request: HTMXRequest, visit: NamedDependency[Visit], key: FromPath[str]
) -> Template:
    attempt = await checkout.attempt_view(visit.customer_id, key[:40])
    company, customer = await _account(visit)
    ctx = visit_context(
        visit,
        None,
        attempt=attempt,
        company=company,
        customer=customer,
        iban=group_iban(company.iban),
        next_path="/p/statement",
    )
    if request.htmx and not request.htmx.boosted:
        return Template(template_name="portal/_pay_status.html", context=ctx)
    return Template(template_name="portal/pay_done.html", context=ctx)


ROUTES = [pay_page, pay_start, pay_confirm, pay_authentication, pay_finish, pay_cancel, pay_done]
