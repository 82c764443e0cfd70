"""Ledger tables. Money is BigInt minor units beside a currency (see receivables.money)."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import (
    BigInt,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    OnDelete,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.reference import LazyTableReference
from piccolo.table import Table


class Company(Table, tablename="company"):
    """A legal entity that sells on credit and collects through Relance."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    class PenaltyPolicy(str, Enum):
        none = "none"
        eu = "eu"
        france = "france"
        uk = "uk"
        fixed = "fixed"

    code = Varchar(length=32, unique=True, help_text="Short code used by imports and the API.")
    name = Varchar(length=200)
    legal_id = Varchar(length=64, default="", help_text="Registration or VAT number.")
    address = Text(default="")
    email = Varchar(length=254, default="", help_text="Default address for notifications.")
    phone = Varchar(length=40, default="")
    logo_path = Varchar(length=200, default="", help_text="Relative to static/.")
    iban = Varchar(length=34, default="")
    bic = Varchar(length=11, default="")
    currency = Varchar(length=3, default="EUR")
    locale = Varchar(length=10, default="en_GB")
    penalty_policy = Varchar(length=10, choices=PenaltyPolicy, default=PenaltyPolicy.none)
    penalty_margin_bp = Integer(
        default=0, help_text="Points over the reference rate, in basis points."
    )
    penalty_fixed_rate_bp = Integer(default=0, help_text="Annual rate for the 'fixed' policy, bp.")
    compensation_minor = BigInt(default=0, help_text="Fixed compensation per late invoice.")
    penalties_invoiced = Boolean(
        default=False,
        help_text="Collectors may invoice penalties (an item of kind 'penalty'); otherwise "
        "they are only shown.",
    )
    timezone = Varchar(
        length=64, default="UTC", help_text="IANA time zone: the company's 'today' and run hour."
    )
    dunning_min_minor = BigInt(
        default=1000,
        help_text="No reminder asks for payment when the overdue amount net of holds, in the "
        "company currency, is under this (minor units).",
    )
    dunning_hour = Integer(default=7, help_text="Local hour from which the daily run starts.")
    dunning_business_days = Boolean(
        default=True, help_text="The scheduled run sends on Monday to Friday only."
    )
    formal_notice_days = Integer(
        default=8, help_text="Days to pay given by a formal notice, counted from its posting."
    )
    writeoff_tolerance_minor = BigInt(
        default=0,
        help_text="A remainder of at most this much left on a partly paid invoice, in the "
        "company currency, is not chased and finance may write it off (minor units; 0: off).",
    )
    created_at = Timestamptz(default=TimestamptzNow())


class PayerProfile(str, Enum):
    negligent = "negligent"
    bad_payer = "bad_payer"
    insolvent = "insolvent"
    administrative = "administrative"
    dispute_prone = "dispute_prone"
    automatic = "automatic"
    good_payer = "good_payer"


class Customer(Table, tablename="customer"):
    """A buyer account at one company, known by its ERP reference."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    # The column shadows Piccolo's Table.ref() helper, which this code never calls.
    ref = Varchar(length=64, help_text="ERP reference, unique per company.")  # type: ignore[assignment]
    name = Varchar(length=200, index=True)
    address = Text(default="")
    country = Varchar(length=2, default="")
    payer_profile = Varchar(length=20, choices=PayerProfile, default=PayerProfile.good_payer)
    language = Varchar(length=5, default="", help_text="en, fr; empty: the company's.")
    collector: ForeignKey = ForeignKey(
        LazyTableReference("StaffUser", module_path="receivables.access.tables"),
        null=True,
        on_delete=OnDelete.set_null,
        index=True,
        help_text="Assigned collector.",
    )
    blocked = Boolean(default=False)
    blocked_reason = Text(default="")
    scenario: ForeignKey = ForeignKey(
        LazyTableReference("Scenario", module_path="receivables.dunning.tables"),
        null=True,
        on_delete=OnDelete.set_null,
        help_text="Dunning scenario; empty: the default scenario of the payer profile.",
    )
    credit_limit_minor = BigInt(null=True, default=None)
    currency = Varchar(length=3, default="EUR", help_text="Currency of the credit limit.")
    escalation = Integer(
        default=1,
        help_text="Number of the account's current escalation; the next one starts only once "
        "nothing is overdue net of holds.",
    )
    escalation_step = Integer(
        null=True, default=None, help_text="Step a collector set the account at, by hand."
    )
    escalation_step_on = Date(null=True, default=None)
    escalation_started_on = Date(
        null=True, default=None, help_text="When the running escalation made its first step."
    )
    last_reminder_on = Date(
        null=True, default=None, help_text="Company date of the last dunning email queued."
    )
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=TimestamptzNow().python)


class Contact(Table, tablename="contact"):
    """A person at the customer: who receives reminders, who answers in the portal."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    customer = ForeignKey(Customer, on_delete=OnDelete.cascade, index=True)
    ext_ref = Varchar(length=64, null=True, default=None, help_text="ERP reference, if any.")
    name = Varchar(length=200, default="")
    email = Varchar(length=254, index=True)
    phone = Varchar(length=40, default="")
    role = Varchar(length=80, default="", help_text="Accounts payable, buyer, CFO...")
    language = Varchar(length=5, default="")
    receives_reminders = Boolean(default=True)


class ItemKind(str, Enum):
    invoice = "invoice"
    credit_note = "credit_note"
    penalty = "penalty"
    """Late-payment penalties invoiced on request (see receivables.ledger.penalties)."""


class ItemStatus(str, Enum):
    """Where the item stands in collection (settlement itself is `open_minor == 0`)."""

    open = "open"
    promised = "promised"
    disputed = "disputed"
    paid_pending = "paid_pending"
    payment_in_progress = "payment_in_progress"
    paid = "paid"
    written_off = "written_off"
    cancelled = "cancelled"


class Item(Table, tablename="item"):
    """An invoice or a credit note. Amounts are positive; the kind gives the sign."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=12, choices=ItemKind, default=ItemKind.invoice)
    number = Varchar(length=64, help_text="Unique per company.")
    issue_date = Date()
    due_date = Date(index=True)
    currency = Varchar(length=3)
    total_minor = BigInt()
    open_minor = BigInt(help_text="total - active allocations; kept in step by allocations.")
    po_number = Varchar(length=64, default="")
    pdf_path = Varchar(
        length=300, default="", help_text="Stored PDF, relative to the documents folder."
    )
    status = Varchar(length=20, choices=ItemStatus, default=ItemStatus.open, index=True)
    promise_date = Date(null=True, default=None)
    dispute_reason = Varchar(length=40, default="")
    comment = Text(default="")
    pending_answer = Varchar(
        length=10,
        default="",
        help_text="Kind of the customer's answer waiting for a collector (paid, promise, "
        "dispute): the item is on hold until it is validated or rejected.",
    )
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=TimestamptzNow().python)


class Payment(Table, tablename="payment"):
    """Money received from a customer, spread over items by allocations."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    class Method(str, Enum):
        transfer = "transfer"
        card = "card"
        direct_debit = "direct_debit"
        cheque = "cheque"
        other = "other"
        credit_note = "credit_note"
        """Not money: carries a credit note's open amount to the invoices it is applied to."""
        write_off = "write_off"
        """Not money: a small remainder written off by finance."""

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, on_delete=OnDelete.restrict, index=True)
    ref = Varchar(length=64, help_text="External reference, unique per company.")  # type: ignore[assignment]
    received_on = Date()
    method = Varchar(length=20, choices=Method, default=Method.transfer)
    currency = Varchar(length=3)
    amount_minor = BigInt()
    unapplied_minor = BigInt(help_text="amount - active allocations.")
    credit_note = ForeignKey(
        Item,
        null=True,
        on_delete=OnDelete.restrict,
        help_text="Method credit_note: the credit note whose amount this payment carries.",
    )
    created_at = Timestamptz(default=TimestamptzNow())


class Allocation(Table, tablename="allocation"):
    """Part of a payment applied to an item. Reversal stamps `reversed_at`; rows stay."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    payment = ForeignKey(Payment, on_delete=OnDelete.restrict, index=True)
    item = ForeignKey(Item, on_delete=OnDelete.restrict, index=True)
    amount_minor = BigInt()
    created_at = Timestamptz(default=TimestamptzNow())
    reversed_at = Timestamptz(null=True, default=None)


class PromiseToPay(Table, tablename="promise_to_pay"):
    """A promise on one invoice: kept when paid by its date plus the grace, broken otherwise."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    class Status(str, Enum):
        running = "running"
        kept = "kept"
        broken = "broken"
        withdrawn = "withdrawn"

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, on_delete=OnDelete.restrict, index=True)
    item = ForeignKey(Item, on_delete=OnDelete.restrict, index=True)
    promised_for = Date()
    made_on = Date()
    source = Varchar(length=20, default="", help_text="portal, call, back office.")
    status = Varchar(length=10, choices=Status, default=Status.running, index=True)
    closed_on = Date(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class PenaltyClaim(Table, tablename="penalty_claim"):
    """What a collector did with one invoice's penalty claim: waived it, or invoiced it."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    class Action(str, Enum):
        waived = "waived"
        invoiced = "invoiced"

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, on_delete=OnDelete.restrict, index=True)
    item = ForeignKey(Item, on_delete=OnDelete.restrict, index=True, help_text="The late invoice.")
    action = Varchar(length=10, choices=Action)
    decided_on = Date(help_text="Company date of the decision; an invoicing counts interest to it.")
    interest_minor = BigInt(default=0, help_text="Interest invoiced (invoice's currency).")
    compensation_minor = BigInt(default=0, help_text="Compensation invoiced.")
    compensation_currency = Varchar(length=3, default="")
    penalty_item = ForeignKey(
        Item,
        null=True,
        default=None,
        on_delete=OnDelete.restrict,
        help_text="The item of kind 'penalty' that invoiced it.",
    )
    reason = Text(default="")
    decided_by = Varchar(length=200, default="")
    created_at = Timestamptz(default=TimestamptzNow())
