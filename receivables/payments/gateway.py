"""The Stripe API through the official SDK's async methods, answering plain dicts.

A gateway is made from the settings when first needed (never at import); STRIPE_API_BASE
points it at localstripe in tests and the demo, with real keys nothing else changes.
Every create carries an Idempotency-Key, so a retried request never charges twice.
"""

from __future__ import annotations

from typing import Any, cast

import stripe

from receivables.errors import ReceivablesError
from receivables.money import Money
from receivables.payments.amounts import OutsideLimits, check_limits
from receivables.settings import Settings


class PaymentDeclined(ReceivablesError):
    """The card was refused; the message is Stripe's, fit to show the customer."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code


class PaymentServiceUnavailable(ReceivablesError):
    """Stripe could not be reached or answered with an error that is not the customer's."""


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def object_id(value: Any) -> str:
    """An expandable field (`"ch_..."` or the expanded object) as its id."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


class StripeGateway:
    """The calls Relance makes to Stripe."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client: stripe.StripeClient | None = None

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            if not self.settings.stripe_secret_key:
                raise PaymentServiceUnavailable("online payment is not configured")
            base = {"api": self.settings.stripe_api_base} if self.settings.stripe_api_base else {}
            self._client = stripe.StripeClient(
                self.settings.stripe_secret_key,
                base_addresses=cast(Any, base),
                max_network_retries=2,
            )
        return self._client

    def _cards_only(self) -> dict[str, Any]:
        """Card is the only method: Stripe's current API (the SDK's pinned version) calls this
        `allowed_payment_method_types` and refuses the older `payment_method_types` (400
        payment_method_types_no_longer_supported); localstripe, the emulator STRIPE_API_BASE
        points at, knows only the older name."""
        name = (
            "payment_method_types"
            if self.settings.stripe_api_base
            else "allowed_payment_method_types"
        )
        return {name: ["card"]}

    async def create_setup_intent(self, *, metadata: dict[str, str], idempotency_key: str):
        """A SetupIntent the browser confirms with the card Element (confirmCardSetup)."""
        try:
            params = {"usage": "on_session", "metadata": metadata, **self._cards_only()}
            intent = await self.client.v1.setup_intents.create_async(
                cast(Any, params), {"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            raise PaymentServiceUnavailable(str(exc.user_message or exc)) from exc
        return _plain(intent)

    async def create_payment_intent(
        self,
        *,
        amount: Money,
        payment_method: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Create and confirm at once; a decline raises PaymentDeclined, an amount outside
        Stripe's limits OutsideLimits (checked here first, then as Stripe answers)."""
        minor, currency = check_limits(amount), amount.currency.lower()
        try:
            params = {
                "amount": minor,
                "currency": currency,
                "payment_method": payment_method,
                "confirm": True,
                "metadata": metadata,
                **self._cards_only(),
            }
            intent = await self.client.v1.payment_intents.create_async(
                cast(Any, params), {"idempotency_key": idempotency_key}
            )
        except stripe.CardError as exc:
            raise PaymentDeclined(
                str(exc.user_message or "Your card was declined."), str(exc.code or "")
            ) from exc
        except stripe.StripeError as exc:
            if exc.code in ("amount_too_small", "amount_too_large"):
                # A currency Stripe's table has no minimum for (USD 0.50 in the settlement
                # currency): its refusal is the customer's limit, not an outage.
                raise OutsideLimits(amount, None, too_small=exc.code == "amount_too_small") from exc
            raise PaymentServiceUnavailable(str(exc.user_message or exc)) from exc
        return _plain(intent)

    async def payment_intent(self, intent_id: str) -> dict[str, Any]:
        intent = await self.client.v1.payment_intents.retrieve_async(
            intent_id, {"expand": ["latest_charge.balance_transaction"]}
        )
        return _plain(intent)

    async def cancel_payment_intent(self, intent_id: str) -> bool:
        """Cancel at Stripe; False when Stripe refuses because the intent can no longer be
        canceled (it succeeded, or is processing): read it again then."""
        try:
            await self.client.v1.payment_intents.cancel_async(intent_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "payment_intent_unexpected_state" or exc.http_status == 400:
                return False
            raise
        return True

    async def dispute(self, dispute_id: str) -> dict[str, Any]:
        """A dispute as Stripe has it now (its state, not an event's)."""
        return _plain(await self.client.v1.disputes.retrieve_async(dispute_id))

    async def charge(self, charge_id: str) -> dict[str, Any]:
        return _plain(await self.client.v1.charges.retrieve_async(charge_id))

    async def refund(self, refund_id: str) -> dict[str, Any]:
        return _plain(await self.client.v1.refunds.retrieve_async(refund_id))

    async def refunds_of(self, intent_id: str) -> list[dict[str, Any]]:
        page = await self.client.v1.refunds.list_async({"payment_intent": intent_id, "limit": 100})
        return [_plain(r) async for r in page.auto_paging_iter()]

    async def payout(self, payout_id: str) -> dict[str, Any]:
        return _plain(await self.client.v1.payouts.retrieve_async(payout_id))

    async def payout_transactions(self, payout_id: str) -> list[dict[str, Any]]:
        """Every balance transaction the payout carries (its own included)."""
        page = await self.client.v1.balance_transactions.list_async(
            {"payout": payout_id, "limit": 100}
        )
        return [_plain(t) async for t in page.auto_paging_iter()]


def make_gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(settings)
