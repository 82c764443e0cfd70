"""Dunning tables: scenarios and their steps, message templates, actions, reference rates, runs."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import (
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
from piccolo.table import Table

from receivables.i18n import N_
from receivables.ledger.tables import Company, Contact, Customer, PayerProfile
from receivables.mail.tables import OutboxMessage


class Level(str, Enum):
    """How firm a step is; litigation is where amicable collection ends."""

    pre_dunning = "pre_dunning"
    level_1 = "level_1"
    level_2 = "level_2"
    level_3 = "level_3"
    litigation = "litigation"


class Channel(str, Enum):
    email = "email"
    letter = "letter"
    phone = "phone"


class Mode(str, Enum):
    manual = "manual"
    """A task on the collector's agenda."""
    confirm = "confirm"
    """Built by the run, sent when a collector confirms it (in bulk from the agenda)."""
    automatic = "automatic"
    """Sent by the run at its date, if its items are still unpaid and undisputed then."""


class Scenario(Table, tablename="dunning_scenario"):
    """An ordered list of steps placed around the due date of a customer's oldest unpaid item."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    name = Varchar(length=120)
    payer_profile = Varchar(
        length=20,
        null=True,
        default=None,
        choices=PayerProfile,
        help_text="Set on the default scenario of a payer profile (one per profile).",
    )
    description = Text(default="")
    min_interval_days = Integer(
        default=7, help_text="No two dunning emails to one customer closer than this."
    )
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=TimestamptzNow().python)


class DunningStep(Table, tablename="dunning_step"):
    """One step: when (days from the oldest unpaid due date), how, and with which words."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    scenario = ForeignKey(Scenario, on_delete=OnDelete.cascade, index=True)
    position = Integer(default=0, help_text="Order among steps with the same offset.")
    name = Varchar(length=120)
    level = Varchar(length=12, choices=Level, default=Level.level_1)
    offset_days = Integer(default=0, help_text="Negative: before the due date.")
    channel = Varchar(length=8, choices=Channel, default=Channel.email)
    mode = Varchar(length=10, choices=Mode, default=Mode.manual)
    template_code = Varchar(length=60, default="", help_text="Message template (all languages).")
    attach_statement = Boolean(default=False, help_text="Attach the statement PDF.")
    attach_invoices = Boolean(default=False, help_text="Attach the PDFs of the overdue invoices.")


class MessageTemplate(Table, tablename="message_template"):
    """Words of an email or a letter in one language: text and #hashtags, never code."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    code = Varchar(length=60, help_text="Steps name templates by code; one row per language.")
    language = Varchar(length=5, default="en")
    channel = Varchar(length=8, choices=Channel, default=Channel.email)
    name = Varchar(length=120, default="")
    subject = Text(default="")
    body = Text(default="")
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=TimestamptzNow().python)
    updated_by = Varchar(length=254, default="")


class ActionStatus(str, Enum):
    due = "due"
    """Waiting for a collector (manual steps, and automatic ones held for a reason)."""
    to_confirm = "to_confirm"
    """Built, waiting for a collector's confirmation."""
    done = "done"
    """Sent (email queued, letter posted) or call logged."""
    skipped = "skipped"
    """A collector decided against it, with a reason."""
    cancelled = "cancelled"
    """Made pointless (items paid, disputed, promised) before it went out."""


OPEN_ACTION_STATUSES = (ActionStatus.due.value, ActionStatus.to_confirm.value)
ACTION_STATUS_LABELS = {
    ActionStatus.due.value: N_("To do"),
    ActionStatus.to_confirm.value: N_("To confirm"),
    ActionStatus.done.value: N_("Done"),
    ActionStatus.skipped.value: N_("Skipped"),
    ActionStatus.cancelled.value: N_("Cancelled"),
}
"""What staff read for an action's status (pages take them from here, never restate them)."""


class DunningAction(Table, tablename="dunning_action"):
    """One step made real for one customer in one cycle: a task, an email, a letter, a call."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, on_delete=OnDelete.restrict, index=True)
    scenario = ForeignKey(Scenario, null=True, on_delete=OnDelete.set_null)
    step = ForeignKey(DunningStep, null=True, on_delete=OnDelete.set_null)
    step_name = Varchar(length=120)
    level = Varchar(length=12, choices=Level)
    channel = Varchar(length=8, choices=Channel)
    mode = Varchar(length=10, choices=Mode)
    offset_days = Integer()
    template_code = Varchar(length=60, default="")
    attach_statement = Boolean(default=False)
    attach_invoices = Boolean(default=False)
    cycle_start = Date(help_text="Due date of the oldest overdue item when it was made (anchor).")
    escalation = Integer(
        default=0, help_text="The account's escalation it belongs to (0: pre-dunning)."
    )
    cycle_key = Varchar(
        length=80,
        null=True,
        default=None,
        unique=True,
        help_text="customer:step:cycle while the action holds its place; cleared when it is "
        "cancelled because its items changed, so the run may build it again.",
    )
    due_on = Date(index=True)
    status = Varchar(length=12, choices=ActionStatus, default=ActionStatus.due, index=True)
    items = Text(default="[]", help_text="JSON: the items it is about, as they were.")
    held_reason = Text(default="", help_text="Why an automatic step waits for a person.")
    outcome = Text(default="", help_text="Call outcome, skip or cancel reason.")
    done_at = Timestamptz(null=True, default=None)
    done_on = Date(
        null=True, default=None, help_text="The company's date it was done, skipped or cancelled."
    )
    done_by = Varchar(length=254, default="")
    letter_sent_on = Date(null=True, default=None)
    letter_path = Varchar(length=300, default="", help_text="The letter as sent, in documents/.")
    letter_sha256 = Varchar(length=64, default="")
    letter_deadline = Date(
        null=True, default=None, help_text="Formal notice: the date by which to pay."
    )
    created_at = Timestamptz(default=TimestamptzNow())


class DunningActionMessage(Table, tablename="dunning_action_message"):
    """The emails of an action, one per recipient (each carries its own portal link)."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    action = ForeignKey(DunningAction, on_delete=OnDelete.restrict, index=True)
    message = ForeignKey(OutboxMessage, on_delete=OnDelete.restrict, unique=True)
    contact = ForeignKey(Contact, null=True, on_delete=OnDelete.set_null)


class RateSource(str, Enum):
    ecb = "ecb"
    """European Central Bank, main refinancing operations."""
    boe = "boe"
    """Bank of England, Bank Rate."""


class ReferenceRate(Table, tablename="reference_rate"):
    """A central bank rate in force from a date (until the next value of the same source)."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    source = Varchar(length=8, choices=RateSource)
    effective_from = Date()
    rate_bp = Integer(help_text="Basis points: 4.50 % is 450.")
    note = Varchar(length=200, default="")
    updated_by = Varchar(length=254, default="")


class DunningRun(Table, tablename="dunning_run"):
    """One pass of the daily run (the CLI or a worker); its counts are reported."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    run_on = Date(index=True)
    company = ForeignKey(Company, null=True, on_delete=OnDelete.cascade, index=True)
    started_at = Timestamptz(default=TimestamptzNow())
    finished_at = Timestamptz(null=True, default=None)
    created = Integer(default=0)
    queued = Integer(default=0)
    cancelled = Integer(default=0)
    triggered_by = Varchar(length=100, default="")
