"""What each Stripe event type does: a registry of (final, fetch, apply).

`final` answers what `fetch` would, from the signed event alone, when the object it carries
is in a state that cannot change any more and has everything `apply` needs; otherwise
`fetch` re-reads the objects from Stripe (network, before any transaction is open). `apply`
writes what they say, inside the event's savepoint. Either way the state applied is one
Stripe cannot take back (final) or the one just read, so events arriving late, twice or out
of order do no harm.

Final from the signed object: a PaymentIntent `canceled`, or `succeeded` with its latest
charge and that charge's balance transaction expanded (the fee and net; Stripe's own events
carry the charge's id only, so theirs are re-read). Everything else is re-read: processing,
requires_action and failed intents can still move; refunds are summed from Stripe's list;
payouts change until paid.

Disputes are re-read like the rest (`Dispute.retrieve`, with their PaymentIntent): two events
about one dispute, whatever order they arrive in, both apply the state Stripe has now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from receivables.payments import settlement
from receivables.payments.gateway import StripeGateway, object_id
from receivables.payments.payouts import reconcile_payout

Event = dict[str, Any]


def _never_final(event: Event) -> None:
    return None


@dataclass(frozen=True)
class Handler:
    fetch: Callable[[StripeGateway, Event], Awaitable[Any]]
    apply: Callable[[Event, Any], Awaitable[None]]
    final: Callable[[Event], Any] = _never_final
    """What `fetch` would answer, taken from the signed event; None: re-read from Stripe."""

    async def read(self, gateway: StripeGateway, event: Event) -> Any:
        """The objects to apply: the signed ones when final, else Stripe's answer now."""
        signed = self.final(event)
        return signed if signed is not None else await self.fetch(gateway, event)


HANDLERS: dict[str, Handler] = {}


def register(types: tuple[str, ...], fetch: Any, apply: Any, final: Any = _never_final) -> None:
    for kind in types:
        HANDLERS[kind] = Handler(fetch, apply, final)


def _object(event: Event) -> dict[str, Any]:
    return event["data"]["object"]


def intent_of(fetched: Any) -> dict[str, Any] | None:
    """The PaymentIntent a handler's objects are about (its account), if any."""
    if isinstance(fetched, tuple):
        fetched = fetched[0]
    if isinstance(fetched, dict) and fetched.get("object") == "payment_intent":
        return fetched
    return None


# ------------------------------------------------------------------ payment intents


def _final_intent(event: Event) -> dict[str, Any] | None:
    intent = _object(event)
    if not intent.get("id") or not intent.get("currency"):
        return None
    if intent.get("status") == "canceled":
        return intent
    charge = intent.get("latest_charge")
    if (
        intent.get("status") == "succeeded"
        and isinstance(charge, dict)
        and isinstance(charge.get("balance_transaction"), dict)
    ):
        return intent
    return None


async def _fetch_intent(gateway: StripeGateway, event: Event) -> dict[str, Any]:
    return await gateway.payment_intent(_object(event)["id"])


async def _apply_intent(event: Event, intent: dict[str, Any]) -> None:
    await settlement.sync_intent(intent)


register(
    (
        "payment_intent.succeeded",
        "payment_intent.processing",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
    ),
    _fetch_intent,
    _apply_intent,
    _final_intent,
)


# ------------------------------------------------------------------ refunds


async def _intent_of_charge(gateway: StripeGateway, charge_id: str) -> str:
    return object_id((await gateway.charge(charge_id)).get("payment_intent"))


async def _fetch_refunds(gateway: StripeGateway, event: Event) -> Any:
    obj = _object(event)
    if obj.get("object") == "charge":  # charge.refunded
        intent_id = object_id(obj.get("payment_intent"))
    else:
        refund = await gateway.refund(obj["id"])
        intent_id = object_id(refund.get("payment_intent"))
        if not intent_id:
            intent_id = await _intent_of_charge(gateway, object_id(refund.get("charge")))
    if not intent_id:
        return None
    return await gateway.payment_intent(intent_id), await gateway.refunds_of(intent_id)


async def _apply_refunds(event: Event, fetched: Any) -> None:
    if fetched is None:
        return
    intent, refunds = fetched
    op = await settlement.sync_intent(intent)  # a refund may overtake the success event
    if op is not None:
        await settlement.sync_refunds(op, refunds)


register(
    ("refund.created", "refund.updated", "refund.failed", "charge.refunded"),
    _fetch_refunds,
    _apply_refunds,
)


# ------------------------------------------------------------------ disputes


async def _fetch_dispute(gateway: StripeGateway, event: Event) -> Any:
    dispute = await gateway.dispute(_object(event)["id"])
    intent_id = object_id(dispute.get("payment_intent"))
    if not intent_id and dispute.get("charge"):
        intent_id = await _intent_of_charge(gateway, object_id(dispute["charge"]))
    if not intent_id:
        return None
    return await gateway.payment_intent(intent_id), dispute


async def _apply_dispute(event: Event, fetched: Any) -> None:
    if fetched is None:
        return
    intent, dispute = fetched
    op = await settlement.sync_intent(intent)
    if op is not None:
        await settlement.sync_dispute(op, dispute)


register(
    (
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    ),
    _fetch_dispute,
    _apply_dispute,
)


# ------------------------------------------------------------------ payouts


async def _fetch_payout(gateway: StripeGateway, event: Event) -> Any:
    payout = await gateway.payout(_object(event)["id"])
    transactions = []
    if payout.get("status") == "paid":
        transactions = await gateway.payout_transactions(payout["id"])
    return payout, transactions


async def _apply_payout(event: Event, fetched: Any) -> None:
    payout, transactions = fetched
    await reconcile_payout(payout, transactions)


register(
    (
        "payout.created",
        "payout.updated",
        "payout.paid",
        "payout.failed",
        "payout.canceled",
        "payout.reconciliation_completed",
    ),
    _fetch_payout,
    _apply_payout,
)
