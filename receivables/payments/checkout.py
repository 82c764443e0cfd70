"""Paying items by card from the portal: what can be paid, the SetupIntent, the PaymentIntent.

The path works the same against Stripe and localstripe:

1. `start`: the customer's selection is checked (one currency, invoices less credit notes,
   more than zero) and an attempt is stored beside a SetupIntent;
2. the browser turns the card Element into a PaymentMethod with `confirmCardSetup`;
3. `confirm`: the PaymentIntent is created and confirmed with it, under the Idempotency-Key
   of the attempt (a retried request never charges twice); on `requires_action` the browser
   completes 3-D Secure with `confirmCardPayment`.

Nothing here marks an item paid on the browser's word: Stripe's webhook does
(receivables.payments.events), or Stripe's own answer read again (`settle_stale`). A declined
card ends the attempt; the customer retries with a new one.

An amount Stripe would refuse (under its minimum, over its maximum: `amounts.check_limits`)
is refused by `select`, before anything is stored or sent to Stripe.

An attempt is never released by a clock. One sent to Stripe keeps its items until Stripe says
it ended: `settle_stale` re-reads the PaymentIntent of attempts quiet for STALE_AFTER and
applies what it says (succeeded and processing are applied, never released; canceled and
failed release the items). One waiting for the bank's confirmation (3-D Secure abandoned) is
shown to the customer, who finishes it or cancels it (`cancel`: canceled at Stripe first,
then released); finance sees such attempts (`stuck`) and can cancel them too.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from receivables import clock, history
from receivables.db import atomic
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.history import Actor
from receivables.ledger.tables import Company, Customer, Item, ItemKind, ItemStatus
from receivables.money import Money, MoneyError, format_minor
from receivables.payments import settlement
from receivables.payments.amounts import OutsideLimits, check_limits
from receivables.payments.gateway import PaymentDeclined, StripeGateway
from receivables.payments.tables import OnlinePayment, OnlinePaymentItem

Status = OnlinePayment.Status
STALE_AFTER = timedelta(hours=1)
"""An attempt quiet this long is asked about at Stripe (`settle_stale`): Stripe's answer, not
the clock, decides whether its items are released."""
CLAIM_LOST_AFTER = timedelta(hours=1)
"""An attempt claimed for Stripe whose create call never answered (the process died between
the claim and Stripe's answer: no intent id is known) releases its items then."""
_NOT_PAYABLE = (
    ItemStatus.paid.value,
    ItemStatus.cancelled.value,
    ItemStatus.payment_in_progress.value,
)


@dataclass(frozen=True)
class PayableItem:
    id: int
    number: str
    kind: str
    issue_date: date
    due_date: date
    currency: str
    open_minor: int
    total_minor: int
    status: str
    overdue: bool

    @property
    def open(self) -> Money:
        return Money.from_minor(self.open_minor, self.currency)

    @property
    def total(self) -> Money:
        return Money.from_minor(self.total_minor, self.currency)

    @property
    def is_credit_note(self) -> bool:
        return self.kind == ItemKind.credit_note.value


@dataclass
class Selection:
    currency: str
    invoices: list[PayableItem]
    credit_notes: list[PayableItem]

    @property
    def items(self) -> list[PayableItem]:
        return [*self.invoices, *self.credit_notes]

    @property
    def total(self) -> Money:
        minor = sum(i.open_minor for i in self.invoices) - sum(
            c.open_minor for c in self.credit_notes
        )
        return Money.from_minor(minor, self.currency)


async def _busy_item_ids(customer_id: int, exclude: int | None = None) -> set[int]:
    """Items an attempt already sent to Stripe is paying, until Stripe says it ended (the
    webhook, or `settle_stale`): never released by age alone."""
    lost = clock.now() - CLAIM_LOST_AFTER
    busy = await OnlinePayment.select(OnlinePayment.id).where(
        (OnlinePayment.customer == customer_id)
        & (OnlinePayment.id != (exclude or 0))
        & OnlinePayment.intent_id.is_not_null()
        & OnlinePayment.status.is_in(list(settlement.ACTIVE))
        & (OnlinePayment.intent_id.not_like("pending:%") | (OnlinePayment.updated_at > lost))
    )
    if not busy:
        return set()
    rows = await OnlinePaymentItem.select(OnlinePaymentItem.item).where(
        OnlinePaymentItem.online_payment.is_in([b["id"] for b in busy])
    )
    return {r["item"] for r in rows}


async def payable_items(customer_id: int, on: date) -> list[PayableItem]:
    """Open invoices and credit notes that can go into a card payment, oldest first."""
    rows = (
        await Item.select(
            Item.id,
            Item.number,
            Item.kind,
            Item.issue_date,
            Item.due_date,
            Item.currency,
            Item.open_minor,
            Item.total_minor,
            Item.status,
        )
        .where(
            (Item.customer == customer_id)
            & (Item.open_minor > 0)
            & Item.status.not_in(list(_NOT_PAYABLE))
        )
        .order_by(Item.due_date)
        .order_by(Item.id)
    )
    busy = await _busy_item_ids(customer_id)
    return [
        PayableItem(
            id=r["id"],
            number=r["number"],
            kind=r["kind"],
            issue_date=r["issue_date"],
            due_date=r["due_date"],
            currency=r["currency"],
            open_minor=int(r["open_minor"]),
            total_minor=int(r["total_minor"]),
            status=r["status"],
            overdue=r["kind"] != ItemKind.credit_note.value and r["due_date"] < on,
        )
        for r in rows
        if r["id"] not in busy
    ]


async def select(customer_id: int, item_ids: list[int], on: date) -> Selection:
    """The customer's choice, checked: all payable, one currency, more than zero to pay."""
    wanted = list(dict.fromkeys(item_ids))
    if not wanted:
        raise InvalidInput.one("items", "select at least one invoice to pay")
    payable = {i.id: i for i in await payable_items(customer_id, on)}
    missing = [i for i in wanted if i not in payable]
    if missing:
        numbers = await Item.select(Item.number).where(
            (Item.id.is_in(missing)) & (Item.customer == customer_id)
        )
        named = ", ".join(r["number"] for r in numbers) or "an item"
        raise InvalidInput.one(
            "items", f"{named} can no longer be paid online (paid, or a payment is under way)"
        )
    chosen = [payable[i] for i in wanted]
    currencies = sorted({i.currency for i in chosen})
    if len(currencies) > 1:
        raise InvalidInput.one(
            "items", f"pay one currency at a time (selected: {', '.join(currencies)})"
        )
    chosen.sort(key=lambda i: (i.due_date, i.id))
    sel = Selection(
        currency=currencies[0],
        invoices=[i for i in chosen if not i.is_credit_note],
        credit_notes=[i for i in chosen if i.is_credit_note],
    )
    if not sel.invoices:
        raise InvalidInput.one("items", "select at least one invoice; credit notes are deducted")
    if sel.total.minor <= 0:
        raise InvalidInput.one(
            "items", "the credit notes selected cover these invoices: there is nothing to pay"
        )
    try:
        check_limits(sel.total)  # Stripe's minimum and maximum, before anything is sent to it
    except OutsideLimits:
        raise
    except MoneyError as exc:
        raise InvalidInput.one("items", str(exc)) from None
    return sel


@dataclass(frozen=True)
class Started:
    key: str
    setup_client_secret: str
    amount: Money


async def start(
    *,
    company_id: int,
    customer_id: int,
    item_ids: list[int],
    actor: Actor,
    gateway: StripeGateway,
    on: date,
) -> Started:
    """A new attempt for the selection, with the SetupIntent the browser confirms."""
    sel = await select(customer_id, item_ids, on)
    key = secrets.token_urlsafe(18)
    setup = await gateway.create_setup_intent(
        metadata={"relance_payment": key}, idempotency_key=f"relance-seti-{key}"
    )
    async with atomic():
        rows = await OnlinePayment.insert(
            OnlinePayment(
                key=key,
                company=company_id,
                customer=customer_id,
                contact_label=actor.label[:254],
                setup_intent_id=str(setup["id"]),
                currency=sel.currency,
                amount_minor=sel.total.minor,
            )
        ).returning(OnlinePayment.id)
        op_id = int(rows[0]["id"])
        await OnlinePaymentItem.insert(
            *[
                OnlinePaymentItem(
                    online_payment=op_id, item=i.id, kind=i.kind, amount_minor=i.open_minor
                )
                for i in sel.items
            ]
        )
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="payment.card_started",
            customer_id=customer_id,
            details={
                "online_payment": key,
                "amount": format_minor(sel.total.minor, sel.currency),
                "invoices": [i.number for i in sel.invoices],
                "credit_notes": [c.number for c in sel.credit_notes],
            },
        )
    return Started(key, str(setup["client_secret"]), sel.total)


@dataclass(frozen=True)
class Confirmation:
    status: str
    """succeeded, processing, requires_action, declined, failed or canceled."""
    client_secret: str = ""
    message: str = ""


async def _attempt(customer_id: int, key: str) -> OnlinePayment:
    op = await OnlinePayment.objects().get(
        (OnlinePayment.key == key) & (OnlinePayment.customer == customer_id)
    )
    if op is None:
        raise NotFound("payment attempt")
    return op


async def _claim(op: OnlinePayment) -> None:
    """Reserve the attempt's items: no two attempts may send the same invoice to Stripe.
    The account's lock is taken the documented way (`history.lock_accounts`: chain before
    rows), so a claim waits for a webhook or an allocation on the same account."""
    async with atomic():
        await history.lock_accounts([op.customer], company_id=op.company)
        mine = {
            r["item"]
            for r in await OnlinePaymentItem.select(OnlinePaymentItem.item).where(
                OnlinePaymentItem.online_payment == op.id
            )
        }
        overlap = mine & await _busy_item_ids(op.customer, exclude=op.id)
        if overlap:
            numbers = await Item.select(Item.number).where(Item.id.is_in(sorted(overlap)))
            raise Conflict(
                f"a payment for {', '.join(sorted(r['number'] for r in numbers))} "
                "is already under way"
            )
        claimed = (
            await OnlinePayment.update({OnlinePayment.intent_id: f"pending:{op.key}"})
            .where(
                (OnlinePayment.id == op.id)
                & (
                    OnlinePayment.intent_id.is_null()
                    | (OnlinePayment.intent_id == f"pending:{op.key}")
                )
                & (OnlinePayment.status == Status.started.value)
            )
            .returning(OnlinePayment.id)
        )
        if not claimed:
            raise Conflict("this payment was already submitted")


async def _unchanged(op: OnlinePayment, on: date) -> None:
    """The amounts selected are still what is open; otherwise the attempt ends here."""
    lines = await OnlinePaymentItem.select(
        OnlinePaymentItem.item, OnlinePaymentItem.amount_minor
    ).where(OnlinePaymentItem.online_payment == op.id)
    payable = {i.id: i for i in await payable_items(op.customer, on)}
    for line in lines:
        current = payable.get(line["item"])
        if current is None or current.open_minor != line["amount_minor"]:
            await OnlinePayment.update(
                {
                    OnlinePayment.status: Status.canceled.value,
                    OnlinePayment.failure_message: "the account changed before payment",
                }
            ).where((OnlinePayment.id == op.id) & OnlinePayment.intent_id.is_null())
            raise InvalidInput.one(
                "items", "your account changed since you chose what to pay: choose again"
            )


def _metadata(op: OnlinePayment, company: Company, customer: Customer, numbers: list[str]):
    return {
        "relance_payment": op.key,
        "relance_company": company.code,
        "relance_customer": customer.ref,
        "relance_items": ",".join(numbers)[:500],
    }


async def confirm(
    *,
    customer_id: int,
    key: str,
    payment_method: str,
    actor: Actor,
    gateway: StripeGateway,
    on: date,
) -> Confirmation:
    """Create and confirm the PaymentIntent for an attempt (safe to call twice)."""
    op = await _attempt(customer_id, key)
    if op.status != Status.started.value:
        return await _current(op, gateway)
    if op.intent_id and not op.intent_id.startswith("pending:"):
        return await _current(op, gateway)
    if not payment_method.startswith(("pm_", "card_", "src_")):
        raise InvalidInput.one("payment_method", "the card was not accepted by the payment form")
    if op.intent_id is None:
        await _unchanged(op, on)
    await _claim(op)
    company = await Company.objects().get(Company.id == op.company)
    customer = await Customer.objects().get(Customer.id == op.customer)
    assert company is not None and customer is not None
    numbers = [
        r["number"]
        for r in await OnlinePaymentItem.select(
            OnlinePaymentItem.item.number.as_alias("number")
        ).where(OnlinePaymentItem.online_payment == op.id)
    ]
    try:
        intent = await gateway.create_payment_intent(
            amount=Money.from_minor(op.amount_minor, op.currency),
            payment_method=payment_method,
            metadata=_metadata(op, company, customer, numbers),
            idempotency_key=f"relance-pi-{op.key}",
        )
    except PaymentDeclined as declined:
        await _declined(op, declined, actor)
        return Confirmation("declined", message=declined.message)
    except OutsideLimits as refused:  # Stripe's minimum for a currency its table lacks
        await _declined(op, PaymentDeclined(str(refused), "amount_outside_limits"), actor)
        raise
    await OnlinePayment.update({OnlinePayment.intent_id: intent["id"]}).where(
        (OnlinePayment.id == op.id) & (OnlinePayment.intent_id == f"pending:{op.key}")
    )
    if intent.get("status") == "requires_action":
        await OnlinePayment.update({OnlinePayment.status: Status.requires_action.value}).where(
            (OnlinePayment.id == op.id) & (OnlinePayment.status == Status.started.value)
        )
        return Confirmation("requires_action", client_secret=str(intent["client_secret"]))
    return Confirmation(str(intent.get("status") or "processing"))


async def _declined(op: OnlinePayment, declined: PaymentDeclined, actor: Actor) -> None:
    async with atomic():
        done = (
            await OnlinePayment.update(
                {
                    OnlinePayment.status: Status.failed.value,
                    OnlinePayment.failure_message: declined.message[:1000],
                    OnlinePayment.intent_id: None,
                }
            )
            .where(
                (OnlinePayment.id == op.id)
                & (OnlinePayment.status == Status.started.value)
                & (OnlinePayment.intent_id == f"pending:{op.key}")
            )
            .returning(OnlinePayment.id)
        )
        if done:
            await history.record(
                company_id=op.company,
                actor=actor,
                kind="payment.card_declined",
                customer_id=op.customer,
                details={"online_payment": op.key, "message": declined.message},
            )


async def _current(op: OnlinePayment, gateway: StripeGateway) -> Confirmation:
    if op.status == Status.failed.value:
        return Confirmation("declined", message=op.failure_message)
    if op.status == Status.requires_action.value and op.intent_id:
        intent = await gateway.payment_intent(op.intent_id)
        if intent.get("status") == "requires_action":
            return Confirmation("requires_action", client_secret=str(intent["client_secret"]))
        return Confirmation(str(intent.get("status")))
    return Confirmation(op.status)


async def authentication_ended(
    *, customer_id: int, key: str, gateway: StripeGateway
) -> Confirmation:
    """The browser's 3-D Secure step failed or was abandoned: read Stripe and end the attempt.

    Re-reading Stripe (not believing the browser) is what makes this safe to expose.
    """
    op = await _attempt(customer_id, key)
    if not op.intent_id or op.intent_id.startswith("pending:"):
        return await _current(op, gateway)
    intent = await gateway.payment_intent(op.intent_id)
    await settlement.sync_intent(intent)
    op = await _attempt(customer_id, key)
    if op.status == Status.failed.value:
        return Confirmation("declined", message=op.failure_message)
    return Confirmation(str(intent.get("status")))


@dataclass
class AttemptLine:
    number: str
    kind: str
    selected: Money
    open_now: Money


@dataclass
class AttemptView:
    key: str
    status: str
    amount: Money
    failure_message: str
    created_at: datetime
    lines: list[AttemptLine] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.status in settlement.FINAL

    @property
    def waiting(self) -> bool:
        return not self.final


async def attempt_view(customer_id: int, key: str) -> AttemptView:
    op = await _attempt(customer_id, key)
    rows: list[dict[str, Any]] = await OnlinePaymentItem.select(
        OnlinePaymentItem.kind,
        OnlinePaymentItem.amount_minor,
        OnlinePaymentItem.item.number.as_alias("number"),
        OnlinePaymentItem.item.open_minor.as_alias("open_minor"),
        OnlinePaymentItem.item.due_date.as_alias("due_date"),
        OnlinePaymentItem.item.currency.as_alias("currency"),
    ).where(OnlinePaymentItem.online_payment == op.id)
    rows.sort(key=lambda r: (r["kind"] != ItemKind.invoice.value, r["due_date"], r["number"]))
    return AttemptView(
        key=op.key,
        status=op.status,
        amount=Money.from_minor(op.amount_minor, op.currency),
        failure_message=op.failure_message,
        created_at=op.created_at,
        lines=[
            AttemptLine(
                number=r["number"],
                kind=r["kind"],
                selected=Money.from_minor(int(r["amount_minor"]), r["currency"]),
                open_now=Money.from_minor(int(r["open_minor"]), r["currency"]),
            )
            for r in rows
        ],
    )


# ------------------------------------------------------------------ attempts Stripe settles


_NEVER_CONFIRMED = ("requires_payment_method", "requires_confirmation")


async def _reread(op: OnlinePayment, gateway: StripeGateway) -> dict[str, Any]:
    """The attempt's PaymentIntent as Stripe has it now, applied (succeeded and processing
    are applied like their webhook; canceled and failed release the items)."""
    assert op.intent_id
    intent = await gateway.payment_intent(op.intent_id)
    if intent.get("status") in _NEVER_CONFIRMED and not intent.get("last_payment_error"):
        # Made but never confirmed (no card reached it): nothing can happen to it unless it
        # is confirmed, so it is canceled at Stripe before its items go back.
        if await gateway.cancel_payment_intent(op.intent_id):
            intent = await gateway.payment_intent(op.intent_id)
    await settlement.sync_intent(intent)
    await OnlinePayment.update({OnlinePayment.updated_at: clock.now()}).where(
        (OnlinePayment.id == op.id) & OnlinePayment.status.is_in(list(settlement.ACTIVE))
    )
    return intent


async def settle_stale(customer_id: int | None, gateway: StripeGateway) -> int:
    """Attempts sent to Stripe and quiet for STALE_AFTER (no webhook came: it may be down)
    are read again from Stripe and what it says is applied; a customer's, or every one
    (None, the worker). How many were read."""
    quiet = clock.now() - STALE_AFTER
    where: Any = (
        OnlinePayment.status.is_in(list(settlement.ACTIVE))
        & OnlinePayment.intent_id.is_not_null()
        & OnlinePayment.intent_id.not_like("pending:%")
        & (OnlinePayment.updated_at <= quiet)
    )
    if customer_id is not None:
        where &= OnlinePayment.customer == customer_id
    stale = await OnlinePayment.objects().where(where).order_by(OnlinePayment.id).limit(50)
    for op in stale:
        await _reread(op, gateway)
    return len(stale)


async def waiting(customer_id: int) -> list[AttemptView]:
    """The customer's attempts waiting for the bank's confirmation (3-D Secure not finished):
    the pay page shows them with a way to finish or cancel each."""
    rows = await OnlinePayment.select(OnlinePayment.key).where(
        (OnlinePayment.customer == customer_id)
        & (OnlinePayment.status == Status.requires_action.value)
        & OnlinePayment.intent_id.is_not_null()
        & OnlinePayment.intent_id.not_like("pending:%")
    )
    return [await attempt_view(customer_id, r["key"]) for r in rows]


async def finish_secret(customer_id: int, key: str, gateway: StripeGateway) -> Confirmation:
    """What the browser needs to finish a waiting attempt's 3-D Secure (confirmCardPayment):
    Stripe's client secret while it still requires action, else the state Stripe reports."""
    op = await _attempt(customer_id, key)
    if not op.intent_id or op.intent_id.startswith("pending:") or op.status in settlement.FINAL:
        return await _current(op, gateway)
    intent = await _reread(op, gateway)
    if intent.get("status") == "requires_action":
        return Confirmation("requires_action", client_secret=str(intent["client_secret"]))
    return Confirmation(str(intent.get("status")))


async def _cancel(op: OnlinePayment, gateway: StripeGateway, actor: Actor) -> str:
    """Cancel at Stripe first, then read it again and apply what it says: items are released
    only when Stripe confirms the cancel (a payment that succeeded meanwhile is applied)."""
    if op.status in settlement.FINAL:
        return op.status
    if op.intent_id is None:  # never sent to Stripe: nothing to cancel there
        await OnlinePayment.update(
            {
                OnlinePayment.status: Status.canceled.value,
                OnlinePayment.failure_message: "The payment was canceled.",
            }
        ).where((OnlinePayment.id == op.id) & OnlinePayment.intent_id.is_null())
        return Status.canceled.value
    if op.intent_id.startswith("pending:"):
        raise Conflict("this payment is being sent to Stripe: wait a minute and try again")
    canceled = await gateway.cancel_payment_intent(op.intent_id)
    intent = await _reread(op, gateway)
    if canceled:
        await history.record(
            company_id=op.company,
            actor=actor,
            kind="payment.card_canceled",
            customer_id=op.customer,
            details={"online_payment": op.key, "intent": op.intent_id},
        )
    return str(intent.get("status"))


async def cancel(
    *, customer_id: int, key: str, gateway: StripeGateway, actor: Actor
) -> Confirmation:
    """The customer cancels an attempt waiting for the bank (or not yet sent)."""
    op = await _attempt(customer_id, key)
    status = await _cancel(op, gateway, actor)
    return Confirmation(status)


@dataclass(frozen=True)
class StuckAttempt:
    id: int
    key: str
    customer_id: int | None
    customer: str
    status: str
    amount: Money
    intent_id: str
    created_at: datetime
    updated_at: datetime

    def age(self, now: datetime) -> timedelta:
        return now - self.created_at


async def stuck(company_ids: list[int] | None = None, *, limit: int = 200) -> list[StuckAttempt]:
    """Attempts still open with Stripe after STALE_AFTER (waiting for the bank, processing,
    or sent and unanswered), oldest first: what finance looks at and can cancel."""
    since = clock.now() - STALE_AFTER
    where: Any = OnlinePayment.status.is_in(list(settlement.ACTIVE)) & (
        OnlinePayment.intent_id.is_not_null()
    )
    where &= (OnlinePayment.created_at <= since) | (
        OnlinePayment.status == Status.requires_action.value
    )
    if company_ids is not None:
        where &= OnlinePayment.company.is_in(company_ids or [0])
    rows = (
        await OnlinePayment.select(
            OnlinePayment.id,
            OnlinePayment.key,
            OnlinePayment.customer,
            OnlinePayment.customer.name.as_alias("customer_name"),
            OnlinePayment.status,
            OnlinePayment.currency,
            OnlinePayment.amount_minor,
            OnlinePayment.intent_id,
            OnlinePayment.created_at,
            OnlinePayment.updated_at,
        )
        .where(where)
        .order_by(OnlinePayment.created_at)
        .limit(limit)
    )
    return [
        StuckAttempt(
            id=r["id"],
            key=r["key"],
            customer_id=r["customer"],
            customer=r["customer_name"] or "",
            status=r["status"],
            amount=Money.from_minor(int(r["amount_minor"]), r["currency"]),
            intent_id=r["intent_id"] or "",
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
        for r in rows
    ]


async def cancel_stuck(attempt_id: int, *, gateway: StripeGateway, actor: Actor) -> str:
    """Finance cancels a stuck attempt: canceled at Stripe, then released (or applied, when
    Stripe says it succeeded meanwhile). Stripe's status afterwards."""
    op = await OnlinePayment.objects().get(OnlinePayment.id == attempt_id)
    if op is None:
        raise NotFound("payment attempt")
    return await _cancel(op, gateway, actor)
