"""A realistic demo company: customers across the seven payer profiles, ~400 items, payments."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from receivables import history
from receivables.access.staff import create_user
from receivables.access.tables import Role, StaffUser
from receivables.db import atomic
from receivables.history import Actor
from receivables.ledger.allocations import allocate
from receivables.ledger.tables import (
    Company,
    Contact,
    Customer,
    Item,
    ItemKind,
    PayerProfile,
    Payment,
)
from receivables.money import Money, to_minor

STAFF = [
    ("admin@relance.demo", "Alice Martin", Role.admin, "+33 1 84 88 10 01"),
    ("collector@relance.demo", "Camille Durand", Role.collector, "+33 1 84 88 10 02"),
    ("collector2@relance.demo", "Hugo Bernard", Role.collector, "+33 1 84 88 10 03"),
    ("finance@relance.demo", "Fatima Leroy", Role.finance, "+33 1 84 88 10 04"),
    ("viewer@relance.demo", "Victor Petit", Role.viewer, ""),
]
DEMO_PASSWORD = "relance-demo-2026"  # noqa: S105 - printed by the demo on purpose

_NAMES = [
    ("Boulangeries Dupont SARL", "FR", "fr"),
    ("Hôtel des Arts SA", "FR", "fr"),
    ("Menuiserie Lefèvre", "FR", "fr"),
    ("Clinique Saint-Roch", "FR", "fr"),
    ("Garage Moreau & Fils", "FR", "fr"),
    ("Librairie Le Chat Noir", "FR", "fr"),
    ("Brasserie du Port", "FR", "fr"),
    ("Pharmacie Centrale", "FR", "fr"),
    ("Transports Girard", "FR", "fr"),
    ("Cabinet Roux Avocats", "FR", "fr"),
    ("Restaurant La Table d'Émile", "FR", "fr"),
    ("Atelier Mécanique Blanc", "FR", "fr"),
    ("Camping Les Pins", "FR", "fr"),
    ("Fromagerie Vidal", "FR", "fr"),
    ("École Montessori Lyon", "FR", "fr"),
    ("Galerie Fontaine", "FR", "fr"),
    ("Thames Office Supplies Ltd", "GB", "en"),
    ("Northwind Logistics Ltd", "GB", "en"),
    ("Harper & Cole Architects", "GB", "en"),
    ("Brightside Dental Care", "GB", "en"),
    ("Oakridge Hotels plc", "GB", "en"),
    ("Kingsway Print Ltd", "GB", "en"),
    ("Bluebell Nurseries", "GB", "en"),
    ("Redbrick Property Services", "GB", "en"),
    ("Müller Haustechnik GmbH", "DE", "en"),
    ("Schreinerei Weber", "DE", "en"),
    ("Bäckerei Schmidt KG", "DE", "en"),
    ("Hofmann Elektro GmbH", "DE", "en"),
    ("Van Dijk Interieur BV", "NL", "en"),
    ("De Vries Catering", "NL", "en"),
    ("Rossi Costruzioni Srl", "IT", "en"),
    ("Trattoria Bellavista", "IT", "en"),
    ("García Reformas SL", "ES", "en"),
    ("Hostal Marina", "ES", "en"),
    ("Peeters Bouw NV", "BE", "fr"),
    ("Laiterie Janssens", "BE", "fr"),
    ("Lumen Studio Genève", "CH", "fr"),
    ("Nordic Design AB", "SE", "en"),
    ("Café Central Wien", "AT", "en"),
    ("Dublin Bay Events Ltd", "IE", "en"),
]
_FIRST = [
    "Julie",
    "Marc",
    "Sophie",
    "Thomas",
    "Emma",
    "Lucas",
    "Sarah",
    "James",
    "Anna",
    "Pierre",
    "Laura",
    "David",
    "Chloé",
    "Oliver",
    "Nina",
    "Paul",
]
_LAST = [
    "Lambert",
    "Fournier",
    "Morel",
    "Smith",
    "Jones",
    "Becker",
    "Rossi",
    "Janssen",
    "Garcia",
    "Mercier",
    "Clarke",
    "Fischer",
    "Bonnet",
    "Evans",
]

# Share of an invoice already settled, by profile: good payers pay, bad payers do not.
_PAID_SHARE = {
    PayerProfile.good_payer: 0.85,
    PayerProfile.automatic: 0.95,
    PayerProfile.negligent: 0.45,
    PayerProfile.administrative: 0.5,
    PayerProfile.dispute_prone: 0.35,
    PayerProfile.bad_payer: 0.15,
    PayerProfile.insolvent: 0.05,
}


@dataclass
class DemoSummary:
    company: Company
    customers: list[Customer]
    contacts: dict[int, list[Contact]]
    staff: list[StaffUser]


def _slug(name: str) -> str:
    keep = "".join(c.lower() if c.isalnum() else "-" for c in name)
    return "-".join(p for p in keep.split("-") if p)[:30]


async def seed(today: date, *, seed_value: int = 2026) -> DemoSummary:
    """Build the demo company's ledger as of `today` in one transaction."""
    rnd = random.Random(seed_value)
    staff = [await create_user(e, n, r.value, DEMO_PASSWORD, phone=p) for e, n, r, p in STAFF]
    collectors = [u for u in staff if u.role == Role.collector.value]
    system = Actor.system("demo")
    async with atomic():
        company = Company(
            code="ATL",
            name="Atelier Lumière SAS",
            legal_id="FR 62 842 196 357",
            address="12 rue des Ateliers\n69002 Lyon\nFrance",
            email="comptabilite@atelier-lumiere.example",
            phone="+33 4 72 00 12 34",
            logo_path="img/demo-company-logo.svg",
            iban="FR7630006000011234567890189",
            bic="AGRIFRPP",
            currency="EUR",
            locale="fr_FR",
            penalty_policy=Company.PenaltyPolicy.france.value,
            penalty_margin_bp=1000,
            compensation_minor=4000,
        )
        await company.save()
        profiles = list(PayerProfile)
        customers: list[Customer] = []
        contacts: dict[int, list[Contact]] = {}
        for n, (name, country, lang) in enumerate(_NAMES, start=1):
            profile = profiles[n % len(profiles)]
            customer = Customer(
                company=company.id,
                ref=f"C{n:04d}",
                name=name,
                address=f"{rnd.randint(1, 120)} {rnd.choice(['rue', 'avenue', 'Street', 'Road'])} "
                f"{rnd.choice(_LAST)}\n{country}",
                country=country,
                payer_profile=profile.value,
                language=lang,
                collector=collectors[n % len(collectors)].id,
                credit_limit_minor=to_minor(
                    Decimal(rnd.choice([5000, 10000, 20000, 50000])), "EUR"
                ),
                currency="EUR",
            )
            await customer.save()
            customers.append(customer)
            people = []
            for k in range(rnd.randint(1, 3)):
                first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
                contact = Contact(
                    customer=customer.id,
                    name=f"{first} {last}",
                    email=f"{first.lower()}.{last.lower()}.{k}@{_slug(name)}.example".replace(
                        "é", "e"
                    )
                    .replace("ü", "u")
                    .replace("ä", "a"),
                    phone=f"+33 6 {rnd.randint(10, 99)} {rnd.randint(10, 99)} "
                    f"{rnd.randint(10, 99)} {rnd.randint(10, 99)}",
                    role=["Accounts payable", "Purchasing", "Finance director"][k],
                    language=lang,
                    receives_reminders=k < 2,
                )
                await contact.save()
                people.append(contact)
            contacts[customer.id] = people

        number = 24000
        items: list[Item] = []
        owners: list[Customer] = []
        for customer in customers:
            for _ in range(rnd.randint(7, 13)):
                number += 1
                due = today + timedelta(days=rnd.randint(-120, 60))
                issue = due - timedelta(days=rnd.choice([30, 45, 60]))
                amount = Decimal(rnd.randint(12000, 950000)) / 100
                currency = "USD" if customer.country == "GB" and rnd.random() < 0.08 else "EUR"
                minor = to_minor(amount, currency)
                items.append(
                    Item(
                        company=company.id,
                        customer=customer.id,
                        kind=ItemKind.invoice.value,
                        number=f"F{number}",
                        issue_date=issue,
                        due_date=due,
                        currency=currency,
                        total_minor=minor,
                        open_minor=minor,
                        po_number=f"PO-{rnd.randint(1000, 9999)}" if rnd.random() < 0.6 else "",
                    )
                )
                owners.append(customer)
            if rnd.random() < 0.3:
                number += 1
                minor = to_minor(Decimal(rnd.randint(5000, 60000)) / 100, "EUR")
                day = today - timedelta(days=rnd.randint(5, 50))
                items.append(
                    Item(
                        company=company.id,
                        customer=customer.id,
                        kind=ItemKind.credit_note.value,
                        number=f"A{number}",
                        issue_date=day,
                        due_date=day,
                        currency="EUR",
                        total_minor=minor,
                        open_minor=minor,
                    )
                )
                owners.append(customer)
        await Item.insert(*items)
        saved = {
            r["number"]: r["id"]
            for r in await Item.select(Item.id, Item.number).where(Item.company == company.id)
        }

        pay_no = 0
        for item, customer in zip(items, owners, strict=True):
            if item.kind != ItemKind.invoice.value or item.due_date > today + timedelta(days=10):
                continue
            share = _PAID_SHARE[PayerProfile(customer.payer_profile)]
            roll = rnd.random()
            if roll < share:
                amount_minor = item.total_minor
            elif roll < share + 0.12:
                amount_minor = item.total_minor // rnd.choice([2, 3, 4])
            else:
                continue
            pay_no += 1
            received = min(today, item.due_date + timedelta(days=rnd.randint(-5, 25)))
            payment = Payment(
                company=company.id,
                customer=customer.id,
                ref=f"VIR-{pay_no:05d}",
                received_on=received,
                method=Payment.Method.transfer.value,
                currency=item.currency,
                amount_minor=amount_minor,
                unapplied_minor=amount_minor,
            )
            await payment.save()
            await allocate(
                payment.id,
                saved[item.number],
                Money.from_minor(amount_minor, item.currency),
                system,
            )
        # Two payments received but not yet matched to invoices.
        for customer in customers[3:5]:
            pay_no += 1
            minor = to_minor(Decimal("350.00"), "EUR")
            await Payment(
                company=company.id,
                customer=customer.id,
                ref=f"VIR-{pay_no:05d}",
                received_on=today - timedelta(days=3),
                currency="EUR",
                amount_minor=minor,
                unapplied_minor=minor,
            ).save()
        await history.record(
            company_id=company.id,
            actor=system,
            kind="demo.seeded",
            details={"customers": len(customers), "items": len(items), "payments": pay_no},
        )
    return DemoSummary(company=company, customers=customers, contacts=contacts, staff=staff)
