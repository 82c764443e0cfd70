"""Changes collectors make to a customer account, each with its history event in one transaction.

Contacts, item statuses (promise, dispute, comment), blocking, the assigned collector and
payer profile, portal links issued and revoked: every function validates the whole input
first (InvalidInput names each bad field, nothing is written), then writes the change and
`history.record` inside the same `atomic()` block, so a failed history write leaves the
account exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from email_validator import EmailNotValidError, validate_email

from receivables import history
from receivables.access.portal_links import IssuedLink, issue_link, revoke
from receivables.access.tables import PortalLink, Role, StaffUser
from receivables.clock import company_today
from receivables.db import atomic
from receivables.errors import Conflict, FieldProblem, InvalidInput, NotFound
from receivables.history import Actor
from receivables.ledger.promises import open_promise
from receivables.ledger.tables import Contact, Customer, Item, ItemStatus, PayerProfile
from receivables.portal.tables import DisputeReason  # the list the portal offers customers

MAX_COMMENT = 2000
MAX_REASON = 500


SETTABLE_STATUSES = (
    ItemStatus.open,
    ItemStatus.promised,
    ItemStatus.disputed,
    ItemStatus.paid_pending,
)
"""What a collector may set by hand; payments and the ERP set the others."""


def staff_actor(user: StaffUser) -> Actor:
    return Actor(history.ActorKind.staff, user.email, user.id)


async def _customer(customer_id: int) -> Customer:
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id}")
    return customer


# ------------------------------------------------------------------ contacts


@dataclass(frozen=True)
class ContactInput:
    name: str = ""
    email: str = ""
    phone: str = ""
    role: str = ""
    language: str = ""
    receives_reminders: bool = True


def _clean_contact(data: ContactInput) -> tuple[dict[str, Any], list[FieldProblem]]:
    problems: list[FieldProblem] = []
    email = data.email.strip()
    if not email:
        problems.append(FieldProblem("email", "required"))
    else:
        try:
            email = validate_email(email, check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            problems.append(FieldProblem("email", str(exc)))
    name = " ".join(data.name.split())
    if len(name) > 200:
        problems.append(FieldProblem("name", "200 characters at most"))
    phone = data.phone.strip()
    if len(phone) > 40:
        problems.append(FieldProblem("phone", "40 characters at most"))
    role = data.role.strip()
    if len(role) > 80:
        problems.append(FieldProblem("role", "80 characters at most"))
    language = data.language.strip().lower()
    if language not in ("", "en", "fr"):
        problems.append(FieldProblem("language", "en, fr or empty (the customer's)"))
    values = {
        "name": name,
        "email": email,
        "phone": phone,
        "role": role,
        "language": language,
        "receives_reminders": bool(data.receives_reminders),
    }
    return values, problems


async def add_contact(customer_id: int, data: ContactInput, actor: Actor) -> Contact:
    customer = await _customer(customer_id)
    values, problems = _clean_contact(data)
    async with atomic():
        await history.lock_accounts([customer_id], company_id=customer.company)
        if not problems and await Contact.exists().where(
            (Contact.customer == customer_id) & (Contact.email == values["email"])
        ):
            problems.append(FieldProblem("email", f"{values['email']} is already a contact here"))
        if problems:
            raise InvalidInput(problems)
        contact = Contact(customer=customer_id, **values)
        await contact.save()
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="contact.added",
            customer_id=customer_id,
            details={"contact": contact.id, **values},
        )
    return contact


async def update_contact(
    customer_id: int, contact_id: int, data: ContactInput, actor: Actor
) -> Contact:
    customer = await _customer(customer_id)
    values, problems = _clean_contact(data)
    async with atomic():
        await history.lock_accounts([customer_id], company_id=customer.company)
        contact = await Contact.objects().get(
            (Contact.id == contact_id) & (Contact.customer == customer_id)
        )
        if contact is None:
            raise NotFound(f"contact {contact_id}")
        if (
            not problems
            and values["email"] != contact.email
            and await Contact.exists().where(
                (Contact.customer == customer_id)
                & (Contact.email == values["email"])
                & (Contact.id != contact_id)
            )
        ):
            problems.append(FieldProblem("email", f"{values['email']} is already a contact here"))
        if problems:
            raise InvalidInput(problems)
        changed = {k: v for k, v in values.items() if getattr(contact, k) != v}
        if not changed:
            return contact
        before = {k: getattr(contact, k) for k in changed}
        await Contact.update({getattr(Contact, k): v for k, v in changed.items()}).where(
            Contact.id == contact_id
        )
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="contact.updated",
            customer_id=customer_id,
            details={"contact": contact_id, "email": values["email"], "before": before, **changed},
        )
        for key, value in changed.items():
            setattr(contact, key, value)
    return contact


# ------------------------------------------------------------------ item status


@dataclass(frozen=True)
class StatusInput:
    status: str
    promise_date: date | None = None
    dispute_reason: str = ""
    comment: str = ""


def check_status(data: StatusInput, today: date) -> list[FieldProblem]:
    """The problems of a status a collector sets (also used when validating feedback)."""
    problems: list[FieldProblem] = []
    allowed = {s.value for s in SETTABLE_STATUSES}
    if data.status not in allowed:
        problems.append(FieldProblem("status", f"one of {', '.join(sorted(allowed))}"))
    if data.status == ItemStatus.promised.value:
        if data.promise_date is None:
            problems.append(FieldProblem("promise_date", "a promise to pay needs its date"))
        elif data.promise_date < today:
            problems.append(FieldProblem("promise_date", "must be today or later"))
    if data.status == ItemStatus.disputed.value and data.dispute_reason not in {
        r.value for r in DisputeReason
    }:
        problems.append(
            FieldProblem(
                "dispute_reason",
                "a dispute needs its reason: " + ", ".join(r.value for r in DisputeReason),
            )
        )
    if len(data.comment) > MAX_COMMENT:
        problems.append(FieldProblem("comment", f"{MAX_COMMENT} characters at most"))
    return problems


async def apply_item_status(
    item: Item, data: StatusInput, actor: Actor, *, kind: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write the status fields and the history event; the caller holds the transaction."""
    values = {
        "status": data.status,
        "promise_date": data.promise_date if data.status == ItemStatus.promised.value else None,
        "dispute_reason": data.dispute_reason if data.status == ItemStatus.disputed.value else "",
        "comment": data.comment.strip(),
    }
    await Item.update({getattr(Item, k): v for k, v in values.items()}).where(Item.id == item.id)
    if data.status == ItemStatus.promised.value and data.promise_date is not None:
        await open_promise(
            company_id=item.company,
            customer_id=item.customer,
            item_id=item.id,
            promised_for=data.promise_date,
            made_on=await company_today(item.company),
            source=str((extra or {}).get("via", "back office")),
        )
    details = {
        "item": item.number,
        "from": item.status,
        "to": values["status"],
        "promise_date": values["promise_date"],
        "dispute_reason": values["dispute_reason"],
        "comment": values["comment"],
        **(extra or {}),
    }
    await history.record(
        company_id=item.company,
        actor=actor,
        kind=kind,
        customer_id=item.customer,
        item_id=item.id,
        details=details,
    )
    return values


async def set_item_status(
    customer_id: int, item_id: int, data: StatusInput, actor: Actor, today: date
) -> None:
    problems = check_status(data, today)
    if problems:
        raise InvalidInput(problems)
    async with atomic():
        await history.lock_accounts([customer_id])
        item = await Item.objects().get((Item.id == item_id) & (Item.customer == customer_id))
        if item is None:
            raise NotFound(f"item {item_id}")
        if item.status in (ItemStatus.paid.value, ItemStatus.cancelled.value):
            raise InvalidInput.one("status", f"{item.number} is {item.status}; it stays so")
        await apply_item_status(item, data, actor, kind="item.status_changed")


# ------------------------------------------------------------------ the account


async def block_account(customer_id: int, reason: str, actor: Actor) -> None:
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "say why the account is blocked")
    if len(reason) > MAX_REASON:
        raise InvalidInput.one("reason", f"{MAX_REASON} characters at most")
    customer = await _customer(customer_id)
    async with atomic():
        await history.lock_accounts([customer_id], company_id=customer.company)
        done = (
            await Customer.update({Customer.blocked: True, Customer.blocked_reason: reason})
            .where((Customer.id == customer_id) & (Customer.blocked == False))  # noqa: E712
            .returning(Customer.id)
        )
        if not done:
            raise Conflict(f"{customer.name} is already blocked")
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="account.blocked",
            customer_id=customer_id,
            details={"reason": reason},
        )


async def unblock_account(customer_id: int, reason: str, actor: Actor) -> None:
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "say why the account is unblocked")
    if len(reason) > MAX_REASON:
        raise InvalidInput.one("reason", f"{MAX_REASON} characters at most")
    customer = await _customer(customer_id)
    async with atomic():
        await history.lock_accounts([customer_id], company_id=customer.company)
        done = (
            await Customer.update({Customer.blocked: False, Customer.blocked_reason: ""})
            .where((Customer.id == customer_id) & (Customer.blocked == True))  # noqa: E712
            .returning(Customer.id)
        )
        if not done:
            raise Conflict(f"{customer.name} is not blocked")
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="account.unblocked",
            customer_id=customer_id,
            details={"reason": reason, "was_blocked_for": customer.blocked_reason},
        )


async def assign_account(
    customer_id: int, *, collector_id: int | None, payer_profile: str, actor: Actor
) -> None:
    """Set the collector and the payer profile (which picks the default scenario)."""
    problems: list[FieldProblem] = []
    if payer_profile not in {p.value for p in PayerProfile}:
        problems.append(FieldProblem("payer_profile", "choose one of the seven profiles"))
    collector_name = ""
    if collector_id is not None:
        collector = await StaffUser.objects().get(
            (StaffUser.id == collector_id) & (StaffUser.active == True)  # noqa: E712
        )
        if collector is None or collector.role not in (Role.collector.value, Role.admin.value):
            problems.append(FieldProblem("collector", "choose an active collector"))
        else:
            collector_name = collector.name
    if problems:
        raise InvalidInput(problems)
    customer = await _customer(customer_id)
    changed: dict[str, Any] = {}
    if customer.collector != collector_id:
        changed["collector"] = collector_id
    if customer.payer_profile != payer_profile:
        changed["payer_profile"] = payer_profile
    if not changed:
        return
    async with atomic():
        await history.lock_accounts([customer_id])
        await Customer.update({getattr(Customer, k): v for k, v in changed.items()}).where(
            Customer.id == customer_id
        )
        details: dict[str, Any] = {}
        if "collector" in changed:
            details["collector"] = {"from": customer.collector, "to": collector_id}
            details["collector_name"] = collector_name
        if "payer_profile" in changed:
            details["payer_profile"] = {"from": customer.payer_profile, "to": payer_profile}
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="account.assigned",
            customer_id=customer_id,
            details=details,
        )


# ------------------------------------------------------------------ portal links


async def issue_portal_link(
    customer_id: int,
    contact_id: int | None,
    actor: Actor,
    *,
    secret_key: str,
    base_url: str,
    days: int,
) -> IssuedLink:
    """A fresh link for one contact of the account; the token is returned once, never kept."""
    customer = await _customer(customer_id)
    contact = None
    if contact_id is not None:
        contact = await Contact.objects().get(
            (Contact.id == contact_id) & (Contact.customer == customer_id)
        )
        if contact is None:
            raise InvalidInput.one("contact", "choose a contact of this account")
    async with atomic():
        await history.lock_accounts([customer_id], company_id=customer.company)
        issued = await issue_link(
            customer=customer,
            contact=contact,
            secret_key=secret_key,
            base_url=base_url,
            days=days,
            issued_by=actor.label,
        )
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="portal_link.issued",
            customer_id=customer_id,
            details={
                "link": issued.link.id,
                "contact": contact.email if contact else "",
                "expires_at": issued.link.expires_at,
            },
        )
    return issued


async def revoke_portal_link(customer_id: int, link_id: int, actor: Actor) -> None:
    customer = await _customer(customer_id)
    async with atomic():
        await history.lock_accounts([customer_id], company_id=customer.company)
        if not await PortalLink.exists().where(
            (PortalLink.id == link_id) & (PortalLink.customer == customer_id)
        ):
            raise NotFound(f"portal link {link_id}")
        if not await revoke(link_id):
            raise Conflict("that link is already revoked")
        await history.record(
            company_id=customer.company,
            actor=actor,
            kind="portal_link.revoked",
            customer_id=customer_id,
            details={"link": link_id},
        )
