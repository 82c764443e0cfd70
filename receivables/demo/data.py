"""The demo company's people and ledger, planned as data, then written as of a date.

`make_plan` draws everything from one seeded random generator in a fixed order, so the
same seed gives the same customers, invoice numbers and amounts whatever the date; dates
are offsets from `today`, and no invoice is issued after it. `seed` writes the ledger as
of today at once; the replay (`receivables.demo.replay`) writes it day by day instead.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

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

SEED = 2026
STAFF = [
    ("admin@relance.demo", "Alice Martin", Role.admin, "+33 1 84 88 10 01"),
    ("collector@relance.demo", "Camille Durand", Role.collector, "+33 1 84 88 10 02"),
    ("collector2@relance.demo", "Hugo Bernard", Role.collector, "+33 1 84 88 10 03"),
    ("finance@relance.demo", "Fatima Leroy", Role.finance, "+33 1 84 88 10 04"),
    ("viewer@relance.demo", "Victor Petit", Role.viewer, ""),
]
DEMO_PASSWORD = "relance-demo-2026"  # noqa: S105 - printed by the demo on purpose
COMPANY_TIMEZONE = "Europe/Paris"

# name, country, language, street, postcode, city
_CUSTOMERS = [
    ("Boulangeries Dupont SARL", "FR", "fr", "18 rue Mercière", "69002", "Lyon"),
    ("Hôtel des Arts SA", "FR", "fr", "22 quai Saint-Antoine", "69002", "Lyon"),
    ("Menuiserie Lefèvre", "FR", "fr", "9 chemin des Écoliers", "38500", "Voiron"),
    ("Clinique Saint-Roch", "FR", "fr", "560 avenue du Colonel Roche", "34000", "Montpellier"),
    ("Garage Moreau & Fils", "FR", "fr", "41 route de Genas", "69500", "Bron"),
    ("Librairie Le Chat Noir", "FR", "fr", "3 rue des Tanneurs", "13100", "Aix-en-Provence"),
    ("Brasserie du Port", "FR", "fr", "12 quai de la Fosse", "44000", "Nantes"),
    ("Pharmacie Centrale", "FR", "fr", "1 place du Général de Gaulle", "59000", "Lille"),
    ("Transports Girard", "FR", "fr", "14 rue Denis Papin", "38070", "Saint-Quentin-Fallavier"),
    ("Cabinet Roux Avocats", "FR", "fr", "88 boulevard Haussmann", "75008", "Paris"),
    ("Restaurant La Table d'Émile", "FR", "fr", "6 rue Saint-Jean", "69005", "Lyon"),
    ("Atelier Mécanique Blanc", "FR", "fr", "15 avenue Jean Jaurès", "42000", "Saint-Étienne"),
    ("Camping Les Pins", "FR", "fr", "1250 route des Lacs", "40150", "Soorts-Hossegor"),
    ("Fromagerie Vidal", "FR", "fr", "4 rue de la Halle", "74000", "Annecy"),
    ("École Montessori Lyon", "FR", "fr", "30 rue Vendôme", "69006", "Lyon"),
    ("Galerie Fontaine", "FR", "fr", "19 rue de Seine", "75006", "Paris"),
    ("Thames Office Supplies Ltd", "GB", "en", "12 Wharf Road", "N1 7GR", "London"),
    ("Northwind Logistics Ltd", "GB", "en", "2 Dock Road", "IP11 3SL", "Felixstowe"),
    ("Harper & Cole Architects", "GB", "en", "48 King Street", "M2 4LY", "Manchester"),
    ("Brightside Dental Care", "GB", "en", "17 Clifton Road", "BS8 1AG", "Bristol"),
    ("Oakridge Hotels plc", "GB", "en", "1 Royal Crescent", "BA1 2LR", "Bath"),
    ("Kingsway Print Ltd", "GB", "en", "210 Kingsway", "CF10 3FD", "Cardiff"),
    ("Bluebell Nurseries", "GB", "en", "3 Mill Lane", "LE65 1XA", "Ashby-de-la-Zouch"),
    ("Redbrick Property Services", "GB", "en", "55 Bold Street", "L1 4EU", "Liverpool"),
    ("Müller Haustechnik GmbH", "DE", "en", "Industriestraße 7", "70565", "Stuttgart"),
    ("Schreinerei Weber", "DE", "en", "Am Mühlbach 3", "83022", "Rosenheim"),
    ("Bäckerei Schmidt KG", "DE", "en", "Marktplatz 11", "69117", "Heidelberg"),
    ("Hofmann Elektro GmbH", "DE", "en", "Hansaring 61", "50670", "Köln"),
    ("Van Dijk Interieur BV", "NL", "en", "Keizersgracht 174", "1016 DW", "Amsterdam"),
    ("De Vries Catering", "NL", "en", "Oudegracht 112", "3511 AW", "Utrecht"),
    ("Rossi Costruzioni Srl", "IT", "en", "Via Guglielmo Marconi 28", "40122", "Bologna"),
    ("Trattoria Bellavista", "IT", "en", "Via dei Serragli 64", "50124", "Firenze"),
    ("García Reformas SL", "ES", "en", "Calle de Alcalá 120", "28009", "Madrid"),
    ("Hostal Marina", "ES", "en", "Passeig de Joan de Borbó 37", "08003", "Barcelona"),
    ("Peeters Bouw NV", "BE", "fr", "Meir 78", "2000", "Antwerpen"),
    ("Laiterie Janssens", "BE", "fr", "Rue de Fer 24", "5000", "Namur"),
    ("Lumen Studio Genève", "CH", "fr", "Rue du Stand 40", "1204", "Genève"),
    ("Nordic Design AB", "SE", "en", "Hornsgatan 56", "118 21", "Stockholm"),
    ("Café Central Wien", "AT", "en", "Herrengasse 14", "1010", "Wien"),
    ("Dublin Bay Events Ltd", "IE", "en", "12 Merrion Square", "D02 XE80", "Dublin 2"),
]
COUNTRY_NAMES = {
    "FR": "France",
    "GB": "United Kingdom",
    "DE": "Germany",
    "NL": "Netherlands",
    "IT": "Italy",
    "ES": "Spain",
    "BE": "Belgium",
    "CH": "Switzerland",
    "SE": "Sweden",
    "AT": "Austria",
    "IE": "Ireland",
}
_CITY_FIRST = {"GB", "IE"}
"""Countries whose addresses put the postcode after the town."""
_PHONE_PREFIX = {
    "FR": "+33 6",
    "GB": "+44 7700",
    "DE": "+49 151",
    "NL": "+31 6",
    "IT": "+39 347",
    "ES": "+34 612",
    "BE": "+32 470",
    "CH": "+41 79",
    "SE": "+46 70",
    "AT": "+43 664",
    "IE": "+353 87",
}
_PEOPLE = {
    "fr": (
        ["Julie", "Marc", "Sophie", "Thomas", "Chloé", "Nicolas", "Claire", "Pierre", "Léa"],
        ["Lambert", "Fournier", "Morel", "Mercier", "Bonnet", "Girard", "Rousseau", "Faure"],
    ),
    "GB": (
        ["James", "Olivia", "Oliver", "Emily", "Harry", "Amelia", "Jack", "Sophie"],
        ["Smith", "Jones", "Clarke", "Evans", "Taylor", "Hughes", "Walker", "Wright"],
    ),
    "DE": (
        ["Anna", "Lukas", "Lena", "Felix", "Katrin", "Jonas", "Miriam"],
        ["Becker", "Fischer", "Wagner", "Hoffmann", "Schäfer", "Koch", "Richter"],
    ),
    "NL": (["Sanne", "Daan", "Eva", "Thijs", "Lotte"], ["Janssen", "de Boer", "Visser", "Bakker"]),
    "IT": (["Giulia", "Marco", "Chiara", "Luca", "Sara"], ["Rossi", "Bianchi", "Ricci", "Greco"]),
    "ES": (["Lucía", "Javier", "Carmen", "Pablo"], ["García", "Martínez", "López", "Sánchez"]),
    "SE": (["Elin", "Oskar", "Maja"], ["Lindqvist", "Nilsson", "Berg"]),
}
_PEOPLE["IE"] = _PEOPLE["GB"]
_PEOPLE["AT"] = _PEOPLE["DE"]
_ROLES = ["Accounts payable", "Purchasing", "Finance director"]

HISTORY_DAYS = 45
"""Days before today the demo replays; older debts were mostly settled before that."""
PROFILE_ORDER = list(PayerProfile)
"""Customer n (from 1) has profile PROFILE_ORDER[n % 7] and collector n % 2."""

PORTAL_CUSTOMERS = 3
"""The first customers, whose links the demo prints: the browser tests pay and answer
there, so the replay leaves their invoices' statuses alone."""
EXAMPLE_CUSTOMERS = {"C0008": 1, "C0011": 2, "C0014": 1, "C0029": 1, "C0036": 1, "C0028": 1}
"""Customers whose latest invoices (this many) the sample bank statements in examples/ pay:
the demo leaves them open, unpaid, unpromised and undisputed."""


@dataclass(frozen=True)
class CustomerPlan:
    ref: str
    name: str
    country: str
    language: str
    address: str
    profile: PayerProfile
    collector: int
    """Index among the demo's collectors."""
    credit_limit: Decimal
    contacts: tuple[tuple[str, str, str, str], ...]
    """(name, email, phone, role); the first two receive reminders."""


@dataclass
class PlannedItem:
    number: str
    customer: int
    """Index in Plan.customers."""
    kind: str
    issue: date
    due: date
    currency: str
    total_minor: int
    po: str = ""
    reserved: bool = False
    """Paid by a sample bank statement in examples/: never paid, promised or disputed here."""


@dataclass(frozen=True)
class PlannedPayment:
    customer: int
    on: date
    """When the customer paid (sent the transfer, was debited)."""
    method: str
    currency: str
    minor: int
    pays: tuple[tuple[str, int], ...]
    """(invoice number, minor units) in the customer's mind."""


@dataclass
class Plan:
    today: date
    customers: list[CustomerPlan]
    items: list[PlannedItem]
    payments: list[PlannedPayment]
    by_number: dict[str, PlannedItem] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_number = {i.number: i for i in self.items}

    def customer_index(self, ref: str) -> int:
        return next(n for n, c in enumerate(self.customers) if c.ref == ref)


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _slug(name: str) -> str:
    keep = "".join(c.lower() if c.isalnum() else "-" for c in ascii_fold(name))
    return "-".join(p for p in keep.split("-") if p)[:30]


def postal_address(street: str, postcode: str, city: str, country: str) -> str:
    town = f"{city} {postcode}" if country in _CITY_FIRST else f"{postcode} {city}"
    return f"{street}\n{town}\n{COUNTRY_NAMES[country]}"


# When an invoice is paid, in days after its due date, by profile: (weight, low, high);
# None: not of its own accord (a reminder, a call or a promise may still get it paid).
_DELAYS: dict[PayerProfile, list[tuple[float, int, int] | tuple[float, None, None]]] = {
    PayerProfile.good_payer: [(0.95, -6, 3), (0.05, 8, 15)],
    PayerProfile.automatic: [(1.0, 0, 0)],
    PayerProfile.negligent: [(0.4, 4, 20), (0.3, 20, 45), (0.3, None, None)],
    PayerProfile.administrative: [(0.35, 8, 25), (0.35, 25, 50), (0.3, None, None)],
    PayerProfile.dispute_prone: [(0.45, 0, 25), (0.3, 25, 60), (0.25, None, None)],
    PayerProfile.bad_payer: [(0.3, 25, 60), (0.3, 60, 100), (0.4, None, None)],
    PayerProfile.insolvent: [(0.3, 30, 90), (0.7, None, None)],
}


# Of the invoices a profile would leave unpaid, the share settled anyway (late, after
# reminders, calls or a lawyer's letter) when they fell due well before the replayed weeks:
# escalations then start over those weeks, not all on their first day.
_OLD_DEBTS_SETTLED = {
    PayerProfile.bad_payer: 0.8,
    PayerProfile.insolvent: 0.6,
}


def _delay(profile: PayerProfile, due: date, start: date, rnd: random.Random) -> int | None:
    roll = rnd.random()
    settle = rnd.random()
    delay = None
    for weight, low, high in _DELAYS[profile]:
        if roll < weight:
            delay = None if low is None or high is None else rnd.randint(low, high)
            break
        roll -= weight
    old = (start - due).days
    unpaid_at_start = delay is None or due + timedelta(days=delay) >= start
    if old > 25 and unpaid_at_start and settle < _OLD_DEBTS_SETTLED.get(profile, 0.95):
        delay = 10 + int(settle * 1000) % (old - 10)
    return delay


def make_plan(today: date, seed_value: int = SEED) -> Plan:
    """The demo's customers, invoices and payments; the same seed draws the same ones."""
    rnd = random.Random(seed_value)
    history_start = today - timedelta(days=HISTORY_DAYS)
    customers: list[CustomerPlan] = []
    for n, (name, country, lang, street, postcode, city) in enumerate(_CUSTOMERS, start=1):
        firsts, lasts = _PEOPLE["fr"] if lang == "fr" else _PEOPLE.get(country, _PEOPLE["GB"])
        people = []
        count = rnd.randint(1, 3)
        for k, first in enumerate(rnd.sample(firsts, count)):
            last = rnd.choice(lasts)
            local = ascii_fold(f"{first}.{last}").lower().replace(" ", "")
            phone = f"{_PHONE_PREFIX[country]} {rnd.randint(100, 999)} {rnd.randint(1000, 9999)}"
            people.append((f"{first} {last}", f"{local}@{_slug(name)}.example", phone, _ROLES[k]))
        customers.append(
            CustomerPlan(
                ref=f"C{n:04d}",
                name=name,
                country=country,
                language=lang,
                address=postal_address(street, postcode, city, country),
                profile=PROFILE_ORDER[n % len(PROFILE_ORDER)],
                collector=n % 2,
                credit_limit=Decimal(rnd.choice([5000, 10000, 20000, 50000])),
                contacts=tuple(people),
            )
        )

    items: list[PlannedItem] = []
    payments: list[PlannedPayment] = []
    number = 24000
    for index, customer in enumerate(customers):
        for _ in range(rnd.randint(7, 13)):
            number += 1
            # Issued over the last six months on 30, 45 or 60 days: never after today.
            issue = today - timedelta(days=rnd.randint(0, 180))
            due = issue + timedelta(days=rnd.choice([30, 45, 60]))
            amount = Decimal(rnd.randint(12000, 950000)) / 100
            currency = "USD" if customer.country == "GB" and rnd.random() < 0.08 else "EUR"
            minor = to_minor(amount, currency)
            po = f"PO-{rnd.randint(1000, 9999)}" if rnd.random() < 0.6 else ""
            item = PlannedItem(
                f"F{number}", index, ItemKind.invoice.value, issue, due, currency, minor, po
            )
            items.append(item)
            delay = _delay(customer.profile, due, history_start, rnd)
            split = rnd.random() < 0.1
            if delay is None:
                continue
            method = (
                Payment.Method.direct_debit.value
                if customer.profile == PayerProfile.automatic
                else Payment.Method.transfer.value
            )
            paid_on = due + timedelta(days=delay)
            if split:
                half = minor // 2
                payments.append(
                    PlannedPayment(index, paid_on, method, currency, half, ((item.number, half),))
                )
                rest = minor - half
                later = paid_on + timedelta(days=rnd.randint(10, 25))
                payments.append(
                    PlannedPayment(index, later, method, currency, rest, ((item.number, rest),))
                )
            else:
                payments.append(
                    PlannedPayment(index, paid_on, method, currency, minor, ((item.number, minor),))
                )
        if rnd.random() < 0.3:
            number += 1
            minor = to_minor(Decimal(rnd.randint(5000, 60000)) / 100, "EUR")
            day = today - timedelta(days=rnd.randint(5, 50))
            items.append(
                PlannedItem(f"A{number}", index, ItemKind.credit_note.value, day, day, "EUR", minor)
            )

    plan = Plan(today, customers, items, payments)
    # The sample bank statements pay each example customer's latest invoice in euros.
    for ref, count in EXAMPLE_CUSTOMERS.items():
        index = plan.customer_index(ref)
        euro_invoices = [
            i
            for i in items
            if i.customer == index and i.kind == ItemKind.invoice.value and i.currency == "EUR"
        ]
        for item in sorted(euro_invoices, key=lambda i: (i.issue, i.number))[-count:]:
            item.reserved = True
    reserved = {i.number for i in items if i.reserved}
    plan.payments = [p for p in payments if not any(n in reserved for n, _ in p.pays)]
    return plan


EARLIER_MONTHS = 18
"""How far back the demo's invoices go: the months before the last six (issued, then paid)
give the dashboard's 12-month trends something to show, from a ledger already running."""


def add_earlier_months(plan: Plan, seed_value: int = SEED) -> None:
    """Invoices issued 6 to 18 months before today, all paid before the replayed weeks,
    later the further back (collections improved since): the ledger a team would have.
    Drawn from a generator of their own, so the rest of the plan stays the same."""
    rnd = random.Random(seed_value + 12)
    today = plan.today
    before_replay = today - timedelta(days=HISTORY_DAYS + 1)
    number = 23000
    earliest = (EARLIER_MONTHS - 6) * 30
    for index, customer in enumerate(plan.customers):
        for _ in range(rnd.randint(3, 5) * (EARLIER_MONTHS - 6) // 6):
            number += 1
            age = rnd.randint(181, 180 + earliest)
            issue = today - timedelta(days=age)
            due = issue + timedelta(days=rnd.choice([30, 45, 60]))
            minor = to_minor(Decimal(rnd.randint(12000, 950000)) / 100, "EUR")
            item = PlannedItem(
                f"F{number}", index, ItemKind.invoice.value, issue, due, "EUR", minor
            )
            plan.items.append(item)
            plan.by_number[item.number] = item
            delay = _delay(customer.profile, due, due, rnd)
            if delay is None:
                delay = rnd.randint(45, 120)  # paid in the end: a lawyer's letter, a plan
            # The further back, the later the same customers paid (up to 80%): collections
            # improved since.
            slower = 1 + 0.8 * (age - 180) / max(earliest, 1)
            paid_on = min(due + timedelta(days=round(max(delay, 0) * slower)), before_replay)
            method = (
                Payment.Method.direct_debit.value
                if customer.profile == PayerProfile.automatic
                else Payment.Method.transfer.value
            )
            plan.payments.append(
                PlannedPayment(index, paid_on, method, "EUR", minor, ((item.number, minor),))
            )


# ------------------------------------------------------------------ writing the ledger


@dataclass
class DemoSummary:
    company: Company
    customers: list[Customer]
    contacts: dict[int, list[Contact]]
    staff: list[StaffUser]
    item_ids: dict[str, int] = field(default_factory=dict)
    """Invoice and credit note numbers written so far, with their ids."""
    agenda: dict[str, dict[str, int]] = field(default_factory=dict)
    """After the replay: today's agenda per collector, counted by kind of entry."""
    replay: Any = None
    """After the replay: its ReplayReport."""

    @property
    def collectors(self) -> list[StaffUser]:
        return [u for u in self.staff if u.role == Role.collector.value]


async def create_company(plan: Plan) -> DemoSummary:
    """The company, its staff (one login per role), customers and contacts."""
    staff = [await create_user(e, n, r.value, DEMO_PASSWORD, phone=p) for e, n, r, p in STAFF]
    collectors = [u for u in staff if u.role == Role.collector.value]
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
            timezone=COMPANY_TIMEZONE,
            penalty_policy=Company.PenaltyPolicy.france.value,
            penalty_margin_bp=1000,
            compensation_minor=4000,
        )
        await company.save()
        customers: list[Customer] = []
        contacts: dict[int, list[Contact]] = {}
        for spec in plan.customers:
            customer = Customer(
                company=company.id,
                ref=spec.ref,
                name=spec.name,
                address=spec.address,
                country=spec.country,
                payer_profile=spec.profile.value,
                language=spec.language,
                collector=collectors[spec.collector].id,
                credit_limit_minor=to_minor(spec.credit_limit, "EUR"),
                currency="EUR",
            )
            await customer.save()
            customers.append(customer)
            people = []
            for k, (name, email, phone, role) in enumerate(spec.contacts):
                contact = Contact(
                    customer=customer.id,
                    name=name,
                    email=email,
                    phone=phone,
                    role=role,
                    language=spec.language,
                    receives_reminders=k < 2,
                )
                await contact.save()
                people.append(contact)
            contacts[customer.id] = people
    return DemoSummary(company=company, customers=customers, contacts=contacts, staff=staff)


async def insert_items(summary: DemoSummary, items: list[PlannedItem]) -> None:
    """Invoices and credit notes as the ERP sends them (open for their whole amount)."""
    if not items:
        return
    await Item.insert(
        *[
            Item(
                company=summary.company.id,
                customer=summary.customers[i.customer].id,
                kind=i.kind,
                number=i.number,
                issue_date=i.issue,
                due_date=i.due,
                currency=i.currency,
                total_minor=i.total_minor,
                open_minor=i.total_minor,
                po_number=i.po,
            )
            for i in items
        ]
    )
    numbers = [i.number for i in items]
    for row in await Item.select(Item.id, Item.number).where(
        (Item.company == summary.company.id) & Item.number.is_in(numbers)
    ):
        summary.item_ids[row["number"]] = row["id"]


async def record_payment(
    summary: DemoSummary, payment: PlannedPayment, ref: str, actor: Actor
) -> int:
    """A payment the ERP recorded, allocated to the invoices it pays (what is still open)."""
    customer = summary.customers[payment.customer]
    async with atomic():
        row = Payment(
            company=summary.company.id,
            customer=customer.id,
            ref=ref,
            received_on=payment.on,
            method=payment.method,
            currency=payment.currency,
            amount_minor=payment.minor,
            unapplied_minor=payment.minor,
        )
        await row.save()
        for number, minor in payment.pays:
            item_id = summary.item_ids.get(number)
            if item_id is None:
                continue
            left = await Item.select(Item.open_minor).where(Item.id == item_id).first()
            take = min(minor, int(left["open_minor"])) if left else 0
            if take > 0:
                await allocate(row.id, item_id, Money.from_minor(take, payment.currency), actor)
    return int(row.id)


async def seed(today: date, *, seed_value: int = SEED) -> DemoSummary:
    """The demo ledger as of `today`, written at once: no dunning history (tests, benches)."""
    plan = make_plan(today, seed_value)
    summary = await create_company(plan)
    system = Actor.system("demo")
    await insert_items(summary, plan.items)
    paid = [p for p in plan.payments if p.on < today]
    for n, payment in enumerate(sorted(paid, key=lambda p: (p.on, p.customer)), start=1):
        await record_payment(summary, payment, f"VIR-{n:05d}", system)
    await history.record(
        company_id=summary.company.id,
        actor=system,
        kind="demo.seeded",
        details={
            "customers": len(summary.customers),
            "items": len(plan.items),
            "payments": len(paid),
        },
    )
    return summary
