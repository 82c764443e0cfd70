"""A population of customers with scripted behaviours, and a collector who does everything
the agenda asks: the parts of the dunning simulation shared by its test and its bench
(`tests/integration/test_dunning_simulation.py`, `bench/dunning_sim.py`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from receivables.dunning import agenda as desk
from receivables.dunning.letters import mark_letter_sent
from receivables.dunning.sending import template_texts
from receivables.dunning.tables import DunningAction, DunningActionMessage, Level
from receivables.history import Actor, ActorKind
from receivables.ledger.allocations import allocate
from receivables.ledger.tables import Customer, Item, PayerProfile
from receivables.mail.tables import OutboxMessage
from receivables.money import Money
from receivables.portal.emails import PortalMail
from receivables.portal.feedback import AnswerForm, pending_feedback, submit_answer, validate
from receivables.portal.sessions import contact_actor
from tests.factories import make_contact, make_customer, make_item, make_payment
from web.mailing import TemplateComposer

START = date(2026, 1, 5)  # a Monday
DAYS = 60
INTERVAL = 7
ROOT = Path(__file__).resolve().parents[1]
BEHAVIOURS = (
    "pays_oldest",
    "pays_all",
    "promise_keep",
    "promise_break",
    "dispute_ignored",
    "paid_claim_ignored",
    "ignores",
    "weekly_invoices",
)
PROFILES = (
    PayerProfile.negligent,
    PayerProfile.bad_payer,
    PayerProfile.insolvent,
    PayerProfile.administrative,
    PayerProfile.dispute_prone,
)
COLLECTOR = Actor(ActorKind.staff, "colette@seller.example", None)


@dataclass
class Buyer:
    customer: Customer
    behaviour: str
    contact_id: int
    email: str
    received: list[date] = field(default_factory=list)
    promised: bool = False
    answered: bool = False


async def population(company, repeat: int = 2) -> list[Buyer]:
    buyers = []
    for n, behaviour in enumerate(BEHAVIOURS * repeat):
        profile = PROFILES[n % len(PROFILES)]
        customer = await make_customer(
            company, name=f"Buyer {n:02d} {behaviour}", payer_profile=profile.value
        )
        email = f"ap{n:02d}@buyer{n:02d}.example"
        contact = await make_contact(customer, name=f"Clerk {n}", email=email)
        # Something long overdue, something just overdue, something coming due.
        for k, (days, amount) in enumerate(((-25, "300.00"), (-4, "450.00"), (12, "800.00"))):
            await make_item(
                customer,
                amount,
                due=START + timedelta(days=days + n % 3),
                number=f"S{n:02d}-{k}",
            )
        buyers.append(Buyer(customer, behaviour, contact.id, email))
    return buyers


async def open_invoices(customer_id: int) -> list[Item]:
    return list(
        await Item.objects()
        .where(
            (Item.customer == customer_id)
            & (Item.open_minor > 0)
            & (Item.kind == "invoice")
            & (Item.status != "cancelled")
        )
        .order_by(Item.due_date)
        .order_by(Item.id)
    )


async def pay(buyer: Buyer, items: list[Item], on: date) -> None:
    for item in items:
        amount = Money.from_minor(item.open_minor, item.currency)
        payment = await make_payment(buyer.customer, str(amount.amount), received_on=on)
        await allocate(payment.id, item.id, amount, Actor.system("bank"))


async def answer(buyer: Buyer, items: list[Item], on: date, settings, **form) -> None:
    await submit_answer(
        customer_id=buyer.customer.id,
        contact_id=buyer.contact_id,
        actor=contact_actor(buyer.contact_id, buyer.email),
        ip="198.51.100.4",
        item_ids=[str(i.id) for i in items],
        form=AnswerForm(**form),
        proof=None,
        today=on,
        documents_dir=settings.documents_path,
        mail=PortalMail(
            compose=TemplateComposer(ROOT / "templates"),
            mail_from=settings.smtp_from,
            base_url=settings.base_url,
        ),
    )


async def act(buyer: Buyer, on: date, settings) -> None:
    """What the customer does today, given the reminders it received."""
    last = buyer.received[-1] if buyer.received else None
    overdue = [i for i in await open_invoices(buyer.customer.id) if i.due_date < on]
    if buyer.behaviour == "weekly_invoices" and (on - START).days % 7 == 0:
        n = (on - START).days
        await make_item(
            buyer.customer,
            "120.00",
            due=on + timedelta(days=30),
            issue_date=on,
            number=f"W{buyer.customer.id}-{n}",
        )
    if last is None or not overdue:
        return
    if buyer.behaviour == "pays_oldest" and on == last + timedelta(days=2):
        await pay(buyer, overdue[:1], on)
    elif buyer.behaviour == "pays_all" and on == last + timedelta(days=3):
        await pay(buyer, overdue, on)
    elif buyer.behaviour in ("promise_keep", "promise_break") and not buyer.promised:
        free = [i for i in overdue if i.status == "open" and not i.pending_answer]
        if free and on == last + timedelta(days=1):
            buyer.promised = True
            when = on + timedelta(days=10)
            await answer(buyer, free, on, settings, kind="promise", promise_date=when.isoformat())
    elif buyer.behaviour == "dispute_ignored" and not buyer.answered:
        buyer.answered = True
        await answer(buyer, overdue[:1], on, settings, kind="dispute", dispute_reason="price")
    elif buyer.behaviour == "paid_claim_ignored" and not buyer.answered:
        buyer.answered = True
        everything = await open_invoices(buyer.customer.id)
        await answer(
            buyer, everything, on, settings, kind="paid", paid_on=on.isoformat(), method="transfer"
        )
    if buyer.behaviour == "promise_keep" and buyer.promised:
        due = [i for i in overdue if i.status == "promised" and i.promise_date == on]
        await pay(buyer, due, on)


async def work_the_agenda(on: date, settings) -> None:
    """A collector who does everything the agenda asks, and decides every answer."""
    for entry in await pending_feedback(limit=1000):
        if entry["kind"] != "question":
            await validate(entry["id"], COLLECTOR)
    today = await desk.agenda(on, who=desk.Who.everyone)
    for _, _, entries in today.groups:
        for e in entries:
            if e.status == "to_confirm":
                await desk.confirm_actions([e.id], COLLECTOR, settings, on)
            elif e.level == Level.litigation.value:
                await desk.confirm_litigation(e.id, "to the lawyer", COLLECTOR, on)
            elif e.channel == "phone":
                await desk.log_call(e.id, desk.CallInput(outcome="no_answer"), COLLECTOR, on)
            elif e.channel == "letter":
                await mark_letter_sent(e.id, on, COLLECTOR, settings, on)
            elif e.channel == "email" and not e.held_reason:
                action = await desk.get_action(e.id)
                texts = await template_texts(action.company, action.template_code)
                contacts = (await desk.load_facts(action.customer, on)).reminder_contacts
                draft = desk.Draft(
                    texts["en"].subject, texts["en"].body, "en", tuple(c.id for c in contacts)
                )
                try:
                    await desk.send_action(e.id, draft, COLLECTOR, settings, on)
                except desk.InvalidInput:
                    pass  # spaced: the collector does it another day


@dataclass
class Received:
    on: date
    customer: int
    action: DunningAction
    asked: list[dict]


async def deliveries(rec, seen: int, on: date, by_email: dict[str, Buyer]) -> list[Received]:
    """The dunning emails the customers received today, with the action behind each."""
    out = []
    for message in rec.messages[seen:]:
        to = message["To"].addresses[0].addr_spec
        buyer = by_email.get(to)
        if buyer is None:
            continue  # a note to the collector, not to a customer
        row = await OutboxMessage.objects().get(
            OutboxMessage.message_id == str(message["Message-ID"]).strip()
        )
        link = await DunningActionMessage.objects().get(DunningActionMessage.message == row.id)
        action = await DunningAction.objects().get(DunningAction.id == link.action)
        buyer.received.append(on)
        out.append(Received(on, buyer.customer.id, action, json.loads(action.items)))
    return out
