"""Portal tables: visits (sessions opened from a link) and the customers' answers per invoice."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import Date, ForeignKey, Integer, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from receivables.access.tables import PortalLink
from receivables.i18n import N_
from receivables.ledger.tables import Company, Contact, Customer, Item


class PortalSession(Table, tablename="portal_session"):
    """A visit opened by exchanging a link; the cookie holds a random id, only its hash is here.

    It lives a few hours and dies with its link (revoking the link ends the visit).
    """

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    session_hash = Varchar(length=64, unique=True, secret=True)
    link = ForeignKey(PortalLink, on_delete=OnDelete.cascade, index=True)
    customer = ForeignKey(Customer, on_delete=OnDelete.cascade, index=True)
    contact = ForeignKey(Contact, null=True, on_delete=OnDelete.set_null)
    language = Varchar(length=5, default="", help_text="Chosen on the page; empty: automatic.")
    ip = Varchar(length=45, default="")
    user_agent = Varchar(length=300, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()


class FeedbackKind(str, Enum):
    paid = "paid"
    promise = "promise"
    dispute = "dispute"
    question = "question"


class FeedbackStatus(str, Enum):
    pending = "pending"
    validated = "validated"
    rejected = "rejected"


class DisputeReason(str, Enum):
    price = "price"
    quantity = "quantity"
    quality = "quality"
    not_received = "not_received"
    already_credited = "already_credited"
    other = "other"


DISPUTE_REASONS: dict[str, str] = {
    DisputeReason.price.value: N_("Price"),
    DisputeReason.quantity.value: N_("Quantity"),
    DisputeReason.quality.value: N_("Quality"),
    DisputeReason.not_received.value: N_("Not received"),
    DisputeReason.already_credited.value: N_("Already credited"),
    DisputeReason.other.value: N_("Other"),
}
"""What a customer reads for each reason (never the code): the English label, which is also
its msgid in the catalogs (`receivables.i18n`) for the other languages."""


class PaidMethod(str, Enum):
    transfer = "transfer"
    card = "card"
    cheque = "cheque"
    direct_debit = "direct_debit"
    other = "other"


PAID_METHODS: dict[str, str] = {
    PaidMethod.transfer.value: N_("Bank transfer"),
    PaidMethod.card.value: N_("Card"),
    PaidMethod.cheque.value: N_("Cheque"),
    PaidMethod.direct_debit.value: N_("Direct debit"),
    PaidMethod.other.value: N_("Other"),
}
"""How a customer says an invoice was paid: the English label, also its catalogue key."""

ANSWER_KINDS: dict[str, str] = {
    "paid": N_("Already paid"),
    "promise": N_("Will pay on"),
    "dispute": N_("Disputed"),
    "question": N_("Question"),
}
"""The answers a customer gives on an invoice, as read by the customer and the collector."""


class Feedback(Table, tablename="feedback"):
    """A customer's answer on one invoice, pending until a collector validates or rejects it.

    Answers given for several invoices at once share a `batch` (and a proof file, if any).
    """

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, on_delete=OnDelete.restrict, index=True)
    item = ForeignKey(Item, on_delete=OnDelete.restrict, index=True)
    contact = ForeignKey(Contact, null=True, on_delete=OnDelete.set_null)
    batch = Varchar(length=32, help_text="Answers sent together share it.")
    kind = Varchar(length=10, choices=FeedbackKind)
    paid_on = Date(null=True, default=None)
    method = Varchar(length=20, default="", help_text="How it was paid (kind 'paid').")
    reference = Varchar(length=100, default="", help_text="Payment reference given.")
    promise_date = Date(null=True, default=None)
    dispute_reason = Varchar(length=20, default="")
    text = Text(default="")
    proof_path = Varchar(length=300, default="", help_text="Relative to the documents folder.")
    proof_name = Varchar(length=200, default="", help_text="File name as uploaded.")
    proof_type = Varchar(length=40, default="")
    status = Varchar(length=10, choices=FeedbackStatus, default=FeedbackStatus.pending, index=True)
    created_at = Timestamptz(default=TimestamptzNow())
    ip = Varchar(length=45, default="")
    decided_by = Varchar(length=254, default="")
    decided_by_id = Integer(null=True, default=None)
    decided_at = Timestamptz(null=True, default=None)
    decision_note = Text(default="")
