"""The weeks before today, replayed day by day, so the demo opens on a working morning.

Each past day, at its hours, the ERP sends the day's invoices and direct debits, the
dunning run makes the day's steps (business days), finance imports yesterday's bank
statement and confirms it, the collectors work their inbox and their agenda, and customers
pay by transfer or card, answer on the portal, keep or break their promises. Everything
goes through the domain's services; choices come from one seeded generator, so a seed
replays the same weeks. With time-machine installed (the test extras, which `make demo`
installs) the clock travels to each moment, so the history reads like the real weeks;
without it every stamp is the moment of the seeding, and the dates passed to the
services are the same.

Today the team finds what a team leaves: this week's formal notices (letters go out in a
weekly batch), the last days' calls, yesterday's emails to confirm, one call forgotten
since last week, the newest answers in the inbox; finance finds the last statement's
uncertain lines and a few payment exceptions beside reconciled payouts. Mail stays in the
outbox for the demo's worker to send.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from receivables import clock as company_clock
from receivables import history
from receivables.access.tables import StaffUser
from receivables.db import atomic, current_engine
from receivables.dunning.agenda import (
    AgendaEntry,
    Draft,
    Who,
    action_view,
    agenda,
    confirm_actions,
    get_action,
    log_call,
    postpone_action,
    send_action,
    skip_action,
)
from receivables.dunning.calls import CallInput
from receivables.dunning.letters import mark_letter_sent
from receivables.dunning.run import run_dunning
from receivables.dunning.sending import snapshot_of
from receivables.dunning.tables import ActionStatus, Channel, Level
from receivables.errors import ReceivablesError
from receivables.history import Actor
from receivables.insight.snapshots import rebuild as rebuild_insight
from receivables.ledger.account_changes import staff_actor
from receivables.ledger.tables import Item, ItemKind, ItemStatus, PayerProfile, Payment
from receivables.mail.tables import OutboxMessage
from receivables.payments import checkout
from receivables.payments.bank_reconciliation import (
    confirm_line,
    confirm_proposed,
    ignore_line,
    import_statement,
)
from receivables.payments.flags import resolve
from receivables.payments.payouts import reconcile_payout
from receivables.payments.settlement import sync_intent
from receivables.payments.tables import BankLine, FinanceException, OnlinePayment
from receivables.portal.emails import PortalMail
from receivables.portal.feedback import AnswerForm, reject, submit_answer, validate
from receivables.portal.sessions import contact_actor
from receivables.portal.tables import Feedback, FeedbackKind, FeedbackStatus
from receivables.settings import Settings

from .bank import Credit, statement_csv
from .data import (
    COMPANY_TIMEZONE,
    HISTORY_DAYS,
    PORTAL_CUSTOMERS,
    SEED,
    DemoSummary,
    Plan,
    PlannedPayment,
    add_earlier_months,
    ascii_fold,
    create_company,
    insert_items,
    make_plan,
    record_payment,
)

try:  # the test extras; the demo replays without it, with today's stamps
    import time_machine
except ImportError:  # pragma: no cover - depends on the installation
    time_machine = None  # type: ignore[assignment]

log = logging.getLogger("relance.demo")
LETTER_BATCH_DAYS = 6
"""Formal notices are posted in a weekly batch: those of the last days wait for it."""
CALLS_LEFT = 3
"""Calls and emails written by hand of the last three business days wait for today;
emails to confirm, those of the last one."""
LITIGATION_LEFT_DAYS = 10
KEPT_FOR_TODAY = {"to_confirm": 14, Channel.phone.value: 30, Channel.letter.value: 14}
"""Each collector keeps one action of each kind for today: an email to confirm and a
formal notice postponed to the last business day at the customer's request, a call put
off to a week before today and forgotten since. The first met is kept; one met in the
last days given here takes its place (the one kept is done then, late). The accounts
kept neither pay nor answer meanwhile, so whatever the run's rules make of the others,
each collector has these today."""
CALL_PUT_OFF = 7
POSTPONE_AT_MOST = 14
PROMISE_KEPT = {
    PayerProfile.negligent: 0.8,
    PayerProfile.administrative: 0.75,
    PayerProfile.dispute_prone: 0.6,
    PayerProfile.good_payer: 0.95,
    PayerProfile.automatic: 0.95,
    PayerProfile.bad_payer: 0.3,
    PayerProfile.insolvent: 0.15,
}
Event = Callable[[], Awaitable[Any]]


class WallClock:
    """The replay's 'now': a past day's hours, only ever moving forward."""

    def __init__(self, timezone: str) -> None:
        self.zone = company_clock.zone(timezone)
        self.now: datetime | None = None
        self._travel: Any = None
        self._coordinates: Any = None

    def set(self, moment: datetime) -> None:
        if self.now is not None and moment <= self.now:
            moment = self.now + timedelta(seconds=20)
        self.now = moment
        if time_machine is None:
            return
        if self._coordinates is None:
            self._travel = time_machine.travel(moment, tick=True)
            self._coordinates = self._travel.start()
        else:
            self._coordinates.move_to(moment)

    def at(self, day: date, hour: int, minute: int = 0) -> None:
        self.set(datetime.combine(day, time(hour, minute), self.zone))

    def later(self, minutes: int) -> None:
        assert self.now is not None
        self.set(self.now + timedelta(minutes=minutes))

    def stop(self) -> None:
        if self._travel is not None:
            self._travel.stop()
        self._travel = self._coordinates = None


@dataclass
class Transfer:
    """Money a customer sent (or a credit from someone else), on its way to the statement."""

    customer: int | None
    sent_on: date
    currency: str
    minor: int
    numbers: tuple[str, ...]
    reference: str
    counterparty: str
    booked_on: date | None = None


@dataclass
class ReplayReport:
    """What the replay did, and what it could not (a rule refused a step)."""

    runs: int = 0
    done: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)


class _DemoGateway:
    """Stands in for Stripe where the replay starts a card payment: the SetupIntent the
    customer's browser would have confirmed. The payment's outcome is then applied as the
    webhook applies what Stripe reports (`sync_intent`)."""

    def __init__(self) -> None:
        self.count = 0

    async def create_setup_intent(self, *, metadata: dict[str, str], idempotency_key: str):
        self.count += 1
        return {"id": f"seti_demo_{self.count:04d}", "client_secret": "seti_demo_secret"}


def business_day(day: date) -> bool:
    return day.weekday() < 5


def next_business_day(day: date) -> date:
    day += timedelta(days=1)
    while not business_day(day):
        day += timedelta(days=1)
    return day


def previous_business_day(day: date) -> date:
    day -= timedelta(days=1)
    while not business_day(day):
        day -= timedelta(days=1)
    return day


class Replay:
    def __init__(
        self,
        plan: Plan,
        summary: DemoSummary,
        settings: Settings,
        mail: PortalMail,
        clock: WallClock,
        *,
        seed_value: int,
    ) -> None:
        self.plan = plan
        self.summary = summary
        self.settings = settings
        self.mail = mail
        self.clock = clock
        self.today = plan.today
        self.rnd = random.Random(seed_value + 1)
        self.report = ReplayReport()
        self.company_id = summary.company.id
        self.customer_index = {c.id: n for n, c in enumerate(summary.customers)}
        self.profile = [c.profile for c in plan.customers]
        self.events: dict[date, list[tuple[int, int, Event]]] = defaultdict(list)
        self.transfers: list[Transfer] = []
        self.intended: dict[str, Transfer] = {}
        self.kept: dict[int, dict[str, int]] = defaultdict(dict)
        """Per collector: the action kept for today, by kind (call, letter, to_confirm)."""
        self.kept_customer: dict[int, int] = {}
        self.last_outbox = 0
        self.incidents: set[int] = set()
        self.answered: set[int] = set()
        self.payouts = 0
        self.gateway = _DemoGateway()
        self.charges: list[dict[str, Any]] = []
        """Succeeded card charges not yet paid out."""
        self.answered_on: dict[int, date] = {}
        self.recent = [self.today]
        while len(self.recent) <= CALLS_LEFT:
            self.recent.append(previous_business_day(self.recent[-1]))
        self.style = [self.rnd.random() for _ in plan.customers]
        staff = {u.email: u for u in summary.staff}
        self.finance = staff_actor(staff["finance@relance.demo"])
        self.system = Actor.system("demo")
        self.erp = Actor.system("erp")

    # -------------------------------------------------------------- the days

    def schedule(self, day: date, event: Event) -> None:
        """Something customers (or Stripe) do on `day`, in the afternoon: collectors and
        finance work in the morning."""
        minute = 13 * 60 + self.rnd.randint(0, 420)
        self.events[day].append((minute, len(self.events[day]), event))

    async def opening(self, start: date) -> None:
        """The ledger as it stood the evening before the first replayed day."""
        await insert_items(self.summary, [i for i in self.plan.items if i.issue < start])
        earlier = sorted(
            (p for p in self.plan.payments if p.on < start), key=lambda p: (p.on, p.customer)
        )
        # In batches: on SQLite a commit per payment would cost more than the payments.
        for first in range(0, len(earlier), 100):
            async with atomic():
                for n, payment in enumerate(earlier[first : first + 100], start=first + 1):
                    await record_payment(self.summary, payment, f"VIR-{n:05d}", self.erp)
        for payment in self.plan.payments:
            if start <= payment.on < self.today:
                self.schedule(payment.on, self._planned_payment(payment))
        self._plan_finance_incidents(start)
        self._plan_last_answers()
        await history.record(
            company_id=self.company_id,
            actor=self.system,
            kind="demo.seeded",
            details={
                "customers": len(self.summary.customers),
                "items": len(self.plan.items),
                "payments_before": len(earlier),
                "replayed_from": start,
            },
        )

    async def day(self, day: date) -> None:
        # A few transactions a day: on SQLite a commit per step would cost more than the
        # steps (each one syncs the file).
        async with atomic():
            self.clock.at(day, 6, 30)
            await insert_items(self.summary, [i for i in self.plan.items if i.issue == day])
            if business_day(day):
                self.clock.at(day, 7, 0)
                await run_dunning(day, self.settings, triggered_by="demo replay")
                self.report.runs += 1
        if business_day(day):
            async with atomic():
                self.clock.at(day, 8, 30)
                await self._finance(day)
                self.clock.at(day, 9, 0)
                for user in self.summary.collectors:
                    await self._collector(user, day)
        async with atomic():
            await self._react_to_reminders(day)
            for minute, _, event in sorted(self.events.pop(day, []), key=lambda e: e[:2]):
                self.clock.at(day, minute // 60, minute % 60)
                async with self.attempt("customer"):
                    await event()

    @contextlib.asynccontextmanager
    async def attempt(self, what: str) -> AsyncIterator[None]:
        """One simulated step: when a rule refuses it, its writes are undone and counted
        (the services it calls join the day's transaction, so a savepoint marks the step)."""
        transaction = current_engine().current_transaction.get()
        savepoint = await transaction.savepoint() if transaction is not None else None
        try:
            yield
        except ReceivablesError as exc:
            if savepoint is not None:
                await savepoint.rollback_to()
            self._refused(what, exc)
        else:
            if savepoint is not None:
                await savepoint.release()

    def _refused(self, what: str, exc: Exception) -> None:
        self.report.refused[what] += 1
        log.debug("demo replay: %s refused: %s", what, exc)

    # -------------------------------------------------------------- customers

    def _known(self, numbers: tuple[str, ...] | list[str]) -> list[str]:
        """Those of the numbers the ERP has sent so far."""
        return [n for n in numbers if n in self.summary.item_ids]

    async def _open_amounts(self, numbers: list[str]) -> dict[str, int]:
        """What is still open on these invoices (the settled ones are left out)."""
        ids = [self.summary.item_ids[n] for n in self._known(numbers)]
        if not ids:
            return {}
        rows = await Item.select(Item.number, Item.open_minor).where(Item.id.is_in(ids))
        return {r["number"]: int(r["open_minor"]) for r in rows if r["open_minor"] > 0}

    def _reference(self, customer: int, numbers: tuple[str, ...]) -> str:
        spec = self.plan.customers[customer]
        style = self.style[customer]
        joined = " ".join(numbers)
        if style < 0.15 or not numbers:
            return f"PAIEMENT {ascii_fold(spec.name).upper()}"
        if style < 0.5 and spec.language == "fr":
            return f"VIR SEPA {ascii_fold(spec.name).upper()} FACT {joined}"
        if style < 0.75:
            return f"{spec.ref} {joined}"
        return f"Invoice {joined}" if len(numbers) == 1 else f"Invoices {joined}"

    def _send_transfer(
        self, customer: int, day: date, minor: int, currency: str, numbers: tuple[str, ...]
    ) -> None:
        spec = self.plan.customers[customer]
        self.transfers.append(
            Transfer(
                customer,
                day,
                currency,
                minor,
                numbers,
                self._reference(customer, numbers),
                ascii_fold(spec.name).upper(),
            )
        )
        self.report.done["transfers"] += 1

    def _planned_payment(self, payment: PlannedPayment) -> Event:
        async def pay() -> None:
            if self.frozen(payment.customer):
                return
            open_now = await self._open_amounts([n for n, _ in payment.pays])
            pays = [(n, m) for n, m in payment.pays if n in open_now]
            if not pays:
                return  # settled meanwhile (a reminder got it paid)
            minor = sum(min(m, open_now[n]) for n, m in pays)
            if payment.method == Payment.Method.direct_debit.value:
                planned = PlannedPayment(
                    payment.customer,
                    payment.on,
                    payment.method,
                    payment.currency,
                    minor,
                    tuple(pays),
                )
                self.report.done["direct debits"] += 1
                ref = f"PRLV-{self.report.done['direct debits']:05d}"
                await record_payment(self.summary, planned, ref, self.erp)
            elif self._pays_by_card(payment):
                await self._card_payment(payment.customer, [n for n, _ in pays])
            else:
                numbers = tuple(n for n, _ in pays)
                self._send_transfer(payment.customer, payment.on, minor, payment.currency, numbers)

        return pay

    def _pays_by_card(self, payment: PlannedPayment) -> bool:
        if payment.customer < PORTAL_CUSTOMERS or payment.currency != "EUR":
            return False
        return self.profile[payment.customer] in (
            PayerProfile.negligent,
            PayerProfile.good_payer,
            PayerProfile.administrative,
        ) and (self.style[payment.customer] > 0.8)

    def _contact(self, customer: int):
        people = self.summary.contacts[self.summary.customers[customer].id]
        return people[0]

    async def _answer(self, customer: int, numbers: list[str], form: AnswerForm, day: date) -> None:
        if customer < PORTAL_CUSTOMERS:
            return
        open_now = await self._open_amounts(numbers)
        ids = [str(self.summary.item_ids[n]) for n in numbers if n in open_now]
        if not ids:
            return
        contact = self._contact(customer)
        async with self.attempt("portal answer"):
            submitted = await submit_answer(
                customer_id=self.summary.customers[customer].id,
                contact_id=contact.id,
                actor=contact_actor(contact.id, contact.email),
                ip=f"203.0.113.{10 + customer}",
                item_ids=ids,
                form=form,
                proof=None,
                today=day,
                documents_dir=self.settings.documents_path,
                mail=self.mail,
            )
            for feedback_id in submitted.feedback_ids:
                self.answered_on[feedback_id] = day
            self.report.done[f"portal answers ({form.kind})"] += 1

    async def _overdue_numbers(self, customer: int, day: date) -> list[str]:
        """The customer's invoices to pay now, oldest first (never the examples' ones)."""
        rows = (
            await Item.select(Item.number)
            .where(
                (Item.customer == self.summary.customers[customer].id)
                & (Item.kind == ItemKind.invoice.value)
                & (Item.open_minor > 0)
                & (Item.due_date < day)
                & Item.status.is_in([ItemStatus.open.value, ItemStatus.promised.value])
                & (Item.pending_answer == "")
            )
            .order_by(Item.due_date)
        )
        reserved = {i.number for i in self.plan.items if i.reserved}
        return [r["number"] for r in rows if r["number"] not in reserved]

    async def _react_to_reminders(self, day: date) -> None:
        """Customers who received a reminder today pay, answer, or do nothing."""
        rows = await OutboxMessage.select(OutboxMessage.id, OutboxMessage.customer).where(
            (OutboxMessage.id > self.last_outbox) & (OutboxMessage.kind == "dunning")
        )
        if not rows:
            return
        self.last_outbox = max(r["id"] for r in rows)
        reminded = sorted({self.customer_index[r["customer"]] for r in rows if r["customer"]})
        for customer in reminded:
            if self.frozen(customer):
                continue
            numbers = await self._overdue_numbers(customer, day)
            if numbers:
                self._react(customer, numbers, day)

    def _react(self, customer: int, numbers: list[str], day: date) -> None:
        profile = self.profile[customer]
        roll = self.rnd.random()
        later = day + timedelta(days=self.rnd.randint(1, 4))
        first = numbers[:1]
        if profile in (PayerProfile.good_payer, PayerProfile.automatic):
            return
        if profile == PayerProfile.negligent:
            if roll < 0.3:
                self.schedule(later, self._pay_open(customer, numbers))
            elif roll < 0.4:
                self.schedule(later, self._claim_paid(customer, numbers, later))
        elif profile == PayerProfile.administrative:
            if roll < 0.35:
                form = AnswerForm(
                    kind=FeedbackKind.question.value,
                    text=self.rnd.choice(
                        [
                            "Our approval circuit needs the purchase order number on the "
                            "invoice. Can you send a corrected copy?",
                            "This invoice is waiting for the site manager's approval; we "
                            "will pay it in the next payment run.",
                            "Could you send the delivery note for this invoice?",
                        ]
                    ),
                )
                self.schedule(later, self._answer_event(customer, first, form, later))
            elif roll < 0.65:
                self.schedule(later, self._promise(customer, numbers[:2], later))
        elif profile == PayerProfile.dispute_prone:
            if roll < 0.4:
                reason = self.rnd.choice(["quality", "price", "quantity"])
                texts = {
                    "quality": "Two of the fittings arrived scratched; we are waiting for "
                    "replacements before paying.",
                    "price": "The unit price does not match the quotation we signed.",
                    "quantity": "We received 40 units, not 48.",
                }
                form = AnswerForm(
                    kind=FeedbackKind.dispute.value, dispute_reason=reason, text=texts[reason]
                )
                self.schedule(later, self._answer_event(customer, first, form, later))
            elif roll < 0.55:
                self.schedule(later, self._pay_open(customer, numbers))
        elif profile == PayerProfile.bad_payer:
            if roll < 0.3:
                self.schedule(later, self._promise(customer, numbers[:2], later))
            elif roll < 0.45:
                self.schedule(later, self._claim_paid(customer, numbers[:1], later, honest=False))
            elif roll < 0.6:
                self.schedule(later, self._pay_open(customer, numbers[:1], share=0.5))
        elif profile == PayerProfile.insolvent and roll < 0.3:
            form = AnswerForm(
                kind=FeedbackKind.question.value,
                text="We are going through a difficult period. Could we pay in monthly "
                "instalments?",
            )
            self.schedule(later, self._answer_event(customer, first, form, later))

    def _answer_event(self, customer: int, numbers: list[str], form: AnswerForm, day: date):
        async def answer() -> None:
            await self._answer(customer, numbers, form, day)

        return answer

    def _pay_open(self, customer: int, numbers: list[str], share: float = 1.0) -> Event:
        async def pay() -> None:
            if self.clock.now is None or self.frozen(customer):
                return
            day = self.clock.now.date()
            open_now = await self._open_amounts(numbers)
            if not open_now:
                return
            currencies = {self.plan.by_number[n].currency for n in open_now}
            currency = sorted(currencies)[0]
            chosen = tuple(n for n in open_now if self.plan.by_number[n].currency == currency)
            minor = sum(open_now[n] for n in chosen)
            if share < 1:
                minor = max(100, int(minor * share) // 100 * 100)
            self._send_transfer(customer, day, minor, currency, chosen)

        return pay

    def _claim_paid(self, customer: int, numbers: list[str], day: date, honest: bool = True):
        async def claim() -> None:
            form = AnswerForm(
                kind=FeedbackKind.paid.value,
                paid_on=day.isoformat(),
                method="transfer",
                reference=f"VIR{day:%y%m%d}{customer:03d}",
            )
            await self._answer(customer, numbers, form, day)
            if honest:
                await self._pay_open(customer, numbers)()

        return claim

    def _promise(self, customer: int, numbers: list[str], day: date) -> Event:
        promised = day + timedelta(days=self.rnd.randint(6, 14))

        async def promise() -> None:
            form = AnswerForm(kind=FeedbackKind.promise.value, promise_date=promised.isoformat())
            await self._answer(customer, numbers, form, day)
            self._keep_or_break(customer, numbers, day, promised)

        return promise

    def _keep_or_break(self, customer: int, numbers: list[str], day: date, promised: date):
        if self.rnd.random() < PROMISE_KEPT[self.profile[customer]]:
            pay_on = max(day + timedelta(days=1), promised - timedelta(days=self.rnd.randint(0, 3)))
            if pay_on < self.today:
                self.schedule(pay_on, self._pay_open(customer, numbers))

    # -------------------------------------------------------------- card payments

    async def _card_payment(self, customer: int, numbers: list[str]) -> str | None:
        """The customer pays invoices by card on the portal; Stripe says it succeeded."""
        key = await self._start_card(customer, numbers)
        if key is None:
            return None
        await self._stripe_says(key, "succeeded")
        return key

    async def _start_card(self, customer: int, numbers: list[str]) -> str | None:
        assert self.clock.now is not None
        ids = [self.summary.item_ids[n] for n in self._known(numbers)]
        contact = self._contact(customer)
        key = None
        async with self.attempt("card payment"):
            started = await checkout.start(
                company_id=self.company_id,
                customer_id=self.summary.customers[customer].id,
                item_ids=ids,
                actor=contact_actor(contact.id, contact.email),
                gateway=self.gateway,  # type: ignore[arg-type]
                on=self.clock.now.date(),
            )
            key = started.key
        return key

    async def _stripe_says(self, key: str, status: str, error: str = "") -> int:
        """What the webhook applies when Stripe reports the attempt's PaymentIntent in this
        status (built here as Stripe would return it); returns the online payment's id."""
        op = await OnlinePayment.objects().get(OnlinePayment.key == key)
        assert op is not None and self.clock.now is not None
        created = int(self.clock.now.timestamp())
        intent_id = op.intent_id or f"pi_demo_{op.id:04d}"
        fee = op.amount_minor * 15 // 1000 + 25  # 1.5 % + EUR 0.25, as for European cards
        charge = {
            "id": f"ch_demo_{op.id:04d}",
            "created": created,
            "balance_transaction": {
                "id": f"txn_demo_{op.id:04d}",
                "currency": op.currency.lower(),
                "amount": op.amount_minor,
                "fee": fee,
                "net": op.amount_minor - fee,
            },
        }
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": op.amount_minor,
            "amount_received": op.amount_minor if status == "succeeded" else 0,
            "currency": op.currency.lower(),
            "status": status,
            "created": created,
            "metadata": {"relance_payment": op.key, "relance_company": "ATL"},
            "latest_charge": charge if status == "succeeded" else None,
        }
        if error:
            intent["last_payment_error"] = {"message": error}
        await sync_intent(intent)
        if status == "succeeded":
            self.charges.append(charge)
            self.report.done["card payments"] += 1
        return int(op.id)

    async def _payout(self, day: date) -> None:
        """Stripe pays out the charges of two days before: the payout adds up."""
        due = [c for c in self.charges if c["created"] <= self._stamp(day - timedelta(days=2))]
        if not due:
            return
        self.charges = [c for c in self.charges if c not in due]
        self.payouts += 1
        payout_id = f"po_demo_{self.payouts:03d}"
        net = sum(c["balance_transaction"]["net"] for c in due)
        transactions = [
            {
                "id": c["balance_transaction"]["id"],
                "type": "charge",
                "source": c["id"],
                "currency": "eur",
                "amount": c["balance_transaction"]["amount"],
                "fee": c["balance_transaction"]["fee"],
                "net": c["balance_transaction"]["net"],
            }
            for c in due
        ]
        transactions.append(
            {
                "id": f"txn_{payout_id}",
                "type": "payout",
                "source": payout_id,
                "currency": "eur",
                "amount": -net,
                "fee": 0,
                "net": -net,
            }
        )
        payout = {
            "id": payout_id,
            "amount": net,
            "currency": "eur",
            "status": "paid",
            "arrival_date": self._stamp(day),
        }
        await reconcile_payout(payout, transactions)
        self.report.done["payouts"] += 1

    def _stamp(self, day: date) -> int:
        return int(datetime.combine(day, time(12), self.clock.zone).timestamp())

    def _plan_finance_incidents(self, start: date) -> None:
        """The payments finance must look at: paid twice (card on top of a transfer), a
        debit refused after it was under way, a card payment for nobody we know; the first
        of them long enough ago to have been dealt with."""
        self.schedule(start + timedelta(days=6), self._paid_twice(resolved_after=2))
        self.schedule(self.today - timedelta(days=6), self._paid_twice(resolved_after=None))
        self.schedule(self.today - timedelta(days=8), self._debit_refused())
        self.schedule(self.today - timedelta(days=4), self._stranger_pays())

    def _plan_last_answers(self) -> None:
        """Answers of the last two days, still in each collector's inbox this morning."""
        for back, kinds in ((2, ("question", "dispute")), (1, ("promise", "paid"))):
            day = self.today - timedelta(days=back)
            for collector, kind in enumerate(kinds):
                self.schedule(day, self._late_answer(collector, kind, day))

    def _late_answer(self, collector: int, kind: str, day: date) -> Event:
        async def answer() -> None:
            for n, c in enumerate(self.plan.customers):
                if (
                    n < PORTAL_CUSTOMERS
                    or c.collector != collector
                    or n in self.answered
                    or self.frozen(n)
                ):
                    continue
                numbers = await self._overdue_numbers(n, day)
                if not numbers:
                    continue
                self.answered.add(n)
                if kind == "paid":
                    await self._claim_paid(n, numbers[:1], day)()
                elif kind == "promise":
                    await self._promise(n, numbers[:2], day)()
                elif kind == "dispute":
                    form = AnswerForm(
                        kind=FeedbackKind.dispute.value,
                        dispute_reason="price",
                        text="The unit price is not the one on our purchase order.",
                    )
                    await self._answer(n, numbers[:1], form, day)
                else:
                    form = AnswerForm(
                        kind=FeedbackKind.question.value,
                        text="Could you send the delivery note for this invoice? Our "
                        "warehouse cannot find it.",
                    )
                    await self._answer(n, numbers[:1], form, day)
                return

        return answer

    async def _incident_customer(self, day: date) -> tuple[int, list[str]] | None:
        """The first account (in a fixed order) with overdue invoices, for an incident."""
        for n, c in enumerate(self.plan.customers):
            if (
                n < PORTAL_CUSTOMERS
                or n in self.incidents
                or self.frozen(n)
                or c.profile
                not in (
                    PayerProfile.negligent,
                    PayerProfile.administrative,
                    PayerProfile.dispute_prone,
                )
            ):
                continue
            numbers = [
                x
                for x in await self._overdue_numbers(n, day)
                if self.plan.by_number[x].currency == "EUR"
            ]
            if numbers:
                self.incidents.add(n)
                return n, numbers
        return None

    def _paid_twice(self, resolved_after: int | None) -> Event:
        async def incident() -> None:
            assert self.clock.now is not None
            day = self.clock.now.date()
            found = await self._incident_customer(day)
            if found is None:
                return
            customer, numbers = found[0], found[1][:1]
            key = await self._start_card(customer, numbers)
            if key is None:
                return
            op_id = await self._stripe_says(key, "processing")  # a bank debit takes days
            open_now = await self._open_amounts(numbers)
            # ...and the customer's accountant sends a transfer as well.
            self._send_transfer(customer, day, sum(open_now.values()), "EUR", tuple(numbers))

            async def succeeded() -> None:
                await self._stripe_says(key, "succeeded")

            self.schedule(day + timedelta(days=4), succeeded)
            if resolved_after is not None:
                self.schedule(day + timedelta(days=4 + resolved_after), self._resolve(op_id))

        return incident

    def _resolve(self, online_payment_id: int) -> Event:
        async def settle() -> None:
            rows = await FinanceException.select(FinanceException.id).where(
                (FinanceException.online_payment == online_payment_id)
                & FinanceException.resolved_at.is_null()
            )
            for row in rows:
                await resolve(
                    row["id"],
                    actor=self.finance,
                    note="Customer called: keep the excess as credit for the next invoice.",
                )
                self.report.done["exceptions resolved"] += 1

        return settle

    def _debit_refused(self) -> Event:
        async def incident() -> None:
            assert self.clock.now is not None
            day = self.clock.now.date()
            found = await self._incident_customer(day)
            if found is None:
                return
            customer, numbers = found[0], found[1][:2]
            key = await self._start_card(customer, numbers)
            if key is None:
                return
            await self._stripe_says(key, "processing")

            async def refused() -> None:
                await self._stripe_says(
                    key,
                    "requires_payment_method",
                    "The customer's bank refused the debit (insufficient funds).",
                )

            self.schedule(day + timedelta(days=3), refused)

        return incident

    def _stranger_pays(self) -> Event:
        async def incident() -> None:
            assert self.clock.now is not None
            created = int(self.clock.now.timestamp())
            charge = {
                "id": "ch_demo_link_0001",
                "created": created,
                "balance_transaction": {
                    "id": "txn_demo_link_0001",
                    "currency": "eur",
                    "amount": 48000,
                    "fee": 745,
                    "net": 47255,
                },
            }
            await sync_intent(
                {
                    "id": "pi_demo_link_0001",
                    "object": "payment_intent",
                    "amount": 48000,
                    "amount_received": 48000,
                    "currency": "eur",
                    "status": "succeeded",
                    "created": created,
                    "metadata": {"relance_company": "ATL", "relance_customer": "MAISON-PERRIN"},
                    "latest_charge": charge,
                }
            )
            self.charges.append(charge)

        return incident

    # -------------------------------------------------------------- finance

    async def _finance(self, day: date) -> None:
        """Yesterday's statement imported and confirmed; a card payout reconciled."""
        for transfer in self.transfers:
            if transfer.booked_on is None:
                transfer.booked_on = next_business_day(transfer.sent_on)
        if self.rnd.random() < 0.12:
            other = self.rnd.choice(
                [
                    ("INTERETS CREDITEURS", "BANQUE"),
                    ("REMBOURSEMENT SINISTRE 2291", "AXA FRANCE IARD"),
                    ("AVOIR FOURNISSEUR 8841", "LEGRAND SNC"),
                ]
            )
            booked = previous_business_day(day)
            self.transfers.append(
                Transfer(
                    None,
                    booked,
                    "EUR",
                    self.rnd.randint(1000, 90000),
                    (),
                    other[0],
                    other[1],
                    booked_on=booked,
                )
            )
        ready = [t for t in self.transfers if t.booked_on is not None and t.booked_on < day]
        self.transfers = [t for t in self.transfers if t not in ready]
        await self._payout(day)
        if not ready:
            return
        credits = []
        for n, t in enumerate(ready, start=1):
            assert t.booked_on is not None
            bank_ref = f"RLV-{day:%Y%m%d}-{n:02d}"
            self.intended[bank_ref] = t
            credits.append(
                Credit(t.booked_on, t.minor, t.currency, t.reference, t.counterparty, bank_ref)
            )
        imported = await import_statement(
            company_id=self.company_id,
            filename=f"releve-{day:%Y%m%d}.csv",
            content=statement_csv(credits),
            currency="EUR",
            actor=self.finance,
        )
        self.report.done["statement lines"] += imported.credits
        await confirm_proposed(imported.statement_id, actor=self.finance)
        if day >= self.recent[1]:
            return  # today's finance work: the last statement's uncertain lines
        await self._review(imported.statement_id)

    async def _review(self, statement_id: int) -> None:
        lines = await BankLine.select(BankLine.id, BankLine.dedup_key).where(
            (BankLine.statement == statement_id) & (BankLine.status == BankLine.Status.review.value)
        )
        for line in lines:
            transfer = self.intended.get(line["dedup_key"].removeprefix("ref:"))
            self.clock.later(2)
            async with self.attempt("bank line"):
                if transfer is None or transfer.customer is None:
                    await ignore_line(
                        line["id"], actor=self.finance, note="Not a customer payment."
                    )
                    continue
                open_now = await self._open_amounts(list(transfer.numbers))
                await confirm_line(
                    line["id"],
                    actor=self.finance,
                    item_ids=[self.summary.item_ids[n] for n in open_now],
                    customer_id=self.summary.customers[transfer.customer].id,
                )

    # -------------------------------------------------------------- collectors

    async def _collector(self, user: StaffUser, day: date) -> None:
        actor = staff_actor(user)
        await self._inbox(user, actor, day)
        today_list = await agenda(day, who=Who.mine, user_id=user.id)
        entries = sorted(
            (e for _, _, group in today_list.groups for e in group),
            key=lambda e: (e.due_on, e.id),
        )
        open_ids = {e.id for e in entries}
        kept = self.kept[user.id]
        for kind, action_id in list(kept.items()):
            if action_id not in open_ids and (await get_action(action_id)).status not in (
                ActionStatus.due.value,
                ActionStatus.to_confirm.value,
            ):
                del kept[kind]  # the run cancelled it (paid meanwhile): keep another
        to_confirm: list[int] = []
        for entry in entries:
            if entry.id in kept.values():
                kind = next(k for k, a in kept.items() if a == entry.id)
                async with self.attempt("put off"):
                    await self._put_off(entry, kind, actor, day)
                continue
            self.clock.later(self.rnd.randint(2, 7))
            async with self.attempt(f"{entry.channel} {entry.status}"):
                if await self._keep(entry, user, actor, day):
                    continue
                await self._work(entry, user, actor, day, to_confirm)
        if to_confirm:
            self.clock.later(3)
            done = await confirm_actions(to_confirm, actor, self.settings, day)
            self.report.done["emails confirmed"] += len(done.done)
            for action_id, reason in done.refused.items():
                self._refused("confirm", ValueError(f"{action_id}: {reason}"))

    async def _work(
        self,
        entry: AgendaEntry,
        user: StaffUser,
        actor: Actor,
        day: date,
        to_confirm: list[int],
    ) -> None:
        age = (self.today - day).days
        by_hand_waits = day >= self.recent[CALLS_LEFT]
        customer = self.customer_index[entry.customer_id]
        if entry.level == Level.litigation.value:
            if age > LITIGATION_LEFT_DAYS:
                await self._call(entry.id, actor, day, customer, litigation=True)
        elif entry.channel == Channel.letter.value:
            if age > LETTER_BATCH_DAYS:
                await mark_letter_sent(entry.id, day, actor, self.settings, day)
                self.report.done["letters posted"] += 1
        elif entry.channel == Channel.phone.value:
            if not by_hand_waits:
                await self._call(entry.id, actor, day, customer)
        elif entry.status == ActionStatus.to_confirm.value:
            if day >= self.recent[1]:
                return
            if self.rnd.random() < 0.2:
                await self._send_edited(entry, actor, day)
            else:
                to_confirm.append(entry.id)
        elif not by_hand_waits:
            await self._send_edited(entry, actor, day, edit=False)

    async def _keep(self, entry: AgendaEntry, user: StaffUser, actor: Actor, day: date) -> bool:
        """Whether the collector leaves this action for today (see KEPT_FOR_TODAY)."""
        if entry.level == Level.litigation.value:
            return False
        kind = "to_confirm" if entry.status == ActionStatus.to_confirm.value else entry.channel
        if kind not in KEPT_FOR_TODAY:
            return False
        kept = self.kept[user.id]
        if kind in kept:
            age = (self.today - day).days
            if age > KEPT_FOR_TODAY[kind]:
                return False
            if kind == Channel.phone.value and age < CALL_PUT_OFF:
                return False  # the call kept stays the one put off to last week
            await self._work_late(kept[kind], kind, actor, day)
        kept[kind] = entry.id
        self.kept_customer[entry.id] = self.customer_index[entry.customer_id]
        await self._put_off(entry, kind, actor, day)
        return True

    async def _put_off(self, entry: AgendaEntry, kind: str, actor: Actor, day: date) -> None:
        """Postpone a kept action towards its day (a fortnight at a time, as a collector
        would), so that it reads as late by days, not weeks."""
        if kind == Channel.phone.value:
            target = self.today - timedelta(days=CALL_PUT_OFF)
            reason = "The accountant is away: call back after {:%d/%m}."
        elif kind == Channel.letter.value:
            target = self.recent[1]
            reason = "Waiting for the director's signature before posting (until {:%d/%m})."
        else:
            target = self.recent[1]
            reason = "The customer asked us to wait for their payment run of {:%d/%m}."
        until = min(target, day + timedelta(days=POSTPONE_AT_MOST))
        if until > day and entry.due_on < until:
            await postpone_action(entry.id, until, reason.format(until), actor, day)

    def frozen(self, customer: int) -> bool:
        """An account whose action is kept for today: it neither pays nor answers, so the
        run leaves the action in place."""
        kept = {a for by_kind in self.kept.values() for a in by_kind.values()}
        return customer in {self.kept_customer[a] for a in kept}

    async def _work_late(self, action_id: int, kind: str, actor: Actor, day: date) -> None:
        """A kept action done at last, when a newer one takes its place."""
        action = await get_action(action_id)
        if action.status not in (ActionStatus.due.value, ActionStatus.to_confirm.value):
            return
        if kind == "to_confirm":
            await confirm_actions([action_id], actor, self.settings, day)
        elif kind == Channel.letter.value:
            await mark_letter_sent(action_id, day, actor, self.settings, day)
        else:
            await self._call(action_id, actor, day, self.customer_index[action.customer])

    async def _send_edited(self, entry: AgendaEntry, actor: Actor, day: date, edit: bool = True):
        view = await action_view(entry.id, day)
        texts = view.draft
        contacts = view.facts.reminder_contacts
        if texts is None or not contacts:
            reason = entry.held_reason or "no template or no contact to write to"
            await skip_action(entry.id, f"Not sent: {reason}", actor)
            return
        body = texts.body
        if edit:
            body += (
                "\n\nJe reste à votre disposition pour en parler au téléphone."
                if view.language == "fr"
                else "\n\nI am happy to talk it through on the phone if that helps."
            )
        await send_action(
            entry.id,
            Draft(texts.subject, body, view.language, tuple(c.id for c in contacts[:2])),
            actor,
            self.settings,
            day,
        )
        self.report.done["emails sent by hand"] += 1

    async def _call(
        self, action_id: int, actor: Actor, day: date, customer: int, litigation: bool = False
    ) -> None:
        profile = self.profile[customer]
        action = await get_action(action_id)
        reserved = {i.number for i in self.plan.items if i.reserved}
        items = [s for s in snapshot_of(action) if s.get("number") not in reserved]
        open_now = await self._open_amounts([s["number"] for s in items if s.get("number")])
        numbers = [n for n in (s.get("number") for s in items) if n in open_now]
        if litigation:
            call = CallInput(
                outcome="reached",
                notes="No payment after the formal notice: the file goes to Cabinet Morel "
                "for recovery; told the customer's accounts payable.",
            )
        else:
            call = self._call_outcome(profile, customer, numbers, day)
        await log_call(action_id, call, actor, day)
        self.report.done["calls logged"] += 1
        if call.record == "promise" and call.promise_date:
            self._keep_or_break(customer, numbers[:2], day, call.promise_date)

    def _call_outcome(
        self, profile: PayerProfile, customer: int, numbers: list[str], day: date
    ) -> CallInput:
        roll = self.rnd.random()
        can_record = customer >= PORTAL_CUSTOMERS and bool(numbers)
        ids = tuple(self.summary.item_ids[n] for n in numbers[:2])
        if roll < 0.3:
            return CallInput(
                outcome=self.rnd.choice(["no_answer", "voicemail"]),
                notes="Left a message asking to call back about the overdue invoices.",
            )
        if profile == PayerProfile.dispute_prone and can_record and roll < 0.7:
            return CallInput(
                outcome="reached",
                notes="Says the last delivery was incomplete; asked for the delivery notes.",
                record="dispute",
                item_ids=ids[:1],
                dispute_reason="quantity",
            )
        if can_record and profile != PayerProfile.administrative:
            promised = day + timedelta(days=self.rnd.randint(5, 12))
            return CallInput(
                outcome="reached",
                notes=f"Accounts payable promised a transfer by {promised:%d/%m}.",
                record="promise",
                item_ids=ids,
                promise_date=promised,
            )
        return CallInput(
            outcome="reached",
            notes="Invoices are in the approval circuit; the buyer will chase the signature.",
        )

    async def _inbox(self, user: StaffUser, actor: Actor, day: date) -> None:
        """Answers at least a day old are decided: validated, or a 'paid' with nothing
        received rejected with a word to the customer."""
        mine = [c.id for c in self.summary.customers if c.collector == user.id]
        rows = (
            await Feedback.select(Feedback.id, Feedback.kind, Feedback.item)
            .where(
                (Feedback.status == FeedbackStatus.pending.value) & Feedback.customer.is_in(mine)
            )
            .order_by(Feedback.id)
        )
        for row in rows:
            if self.answered_on.get(row["id"], day) >= day - timedelta(days=1):
                continue
            self.clock.later(self.rnd.randint(1, 4))
            async with self.attempt("answer"):
                if row["kind"] == FeedbackKind.paid.value and not await self._money_seen(
                    row["item"]
                ):
                    await reject(
                        row["id"],
                        actor,
                        "We have not received this payment. Could you send us the bank's "
                        "remittance advice?",
                        notify=True,
                        mail=self.mail,
                    )
                    self.report.done["answers rejected"] += 1
                    continue
                note = "Answered by email." if row["kind"] == FeedbackKind.question.value else ""
                await validate(row["id"], actor, note=note)
                self.report.done["answers validated"] += 1

    async def _money_seen(self, item_id: int) -> bool:
        """Paid, or a transfer for it is on its way to the statement."""
        item = await Item.select(Item.number, Item.open_minor).where(Item.id == item_id).first()
        if item is None or item["open_minor"] == 0:
            return True
        return any(item["number"] in t.numbers for t in self.transfers)


# ------------------------------------------------------------------ the whole demo


async def build(
    settings: Settings,
    mail: PortalMail,
    *,
    today: date | None = None,
    seed_value: int = SEED,
    progress: Callable[[int, int], None] | None = None,
) -> DemoSummary:
    """The demo company with its last HISTORY_DAYS days replayed, then today's run.

    Mail is left in the outbox for the demo's worker: sending it here would render every
    reminder's PDF attachments (0.1 to 0.3 s each), several times the replay's own cost.
    """
    today = today or company_clock.today_in(COMPANY_TIMEZONE)
    plan = make_plan(today, seed_value)
    add_earlier_months(plan, seed_value)
    days = HISTORY_DAYS
    start = today - timedelta(days=days)
    wall = WallClock(COMPANY_TIMEZONE)
    try:
        wall.at(start - timedelta(days=1), 18)
        summary = await create_company(plan)
        replay = Replay(plan, summary, settings, mail, wall, seed_value=seed_value)
        await replay.opening(start)
        for offset in range(days):
            await replay.day(start + timedelta(days=offset))
            if progress:
                progress(offset + 1, days + 1)
    finally:
        wall.stop()
    # Today, on the real clock: the ERP's morning invoices and, on a business day, the run
    # (the worker would make it at the company's hour; the demo wants the agenda now).
    await insert_items(summary, [i for i in plan.items if i.issue == today])
    if business_day(today):
        await run_dunning(today, settings, triggered_by="demo")
        replay.report.runs += 1
    if progress:
        progress(days + 1, days + 1)
    summary.agenda = await agenda_counts(summary, today)
    summary.replay = replay.report
    # The dashboard's trends and past forecasts, as `relance insight rebuild` makes them.
    await rebuild_insight(today)
    return summary


async def agenda_counts(summary: DemoSummary, today: date) -> dict[str, dict[str, int]]:
    """Today's agenda of each collector, counted: emails to confirm, other emails, calls,
    letters, litigation, and entries due before today."""
    counts: dict[str, dict[str, int]] = {}
    for user in summary.collectors:
        found = await agenda(today, who=Who.mine, user_id=user.id)
        tally: Counter[str] = Counter()
        for _, _, group in found.groups:
            for e in group:
                if e.level == Level.litigation.value:
                    tally["litigation"] += 1
                elif e.status == ActionStatus.to_confirm.value:
                    tally["to_confirm"] += 1
                else:
                    tally[e.channel] += 1
                tally["overdue"] += e.due_on < today
                tally["total"] += 1
        counts[user.name] = dict(tally)
    return counts
