"""Mail tables."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import (
    Boolean,
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
from receivables.ledger.tables import Company, Customer


class CapturedMail(Table, tablename="captured_mail"):
    """A message received by the demo's local SMTP server, to read in the back office."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    received_at = Timestamptz(default=TimestamptzNow())
    mail_from = Varchar(length=254)
    rcpt_to = Text(help_text="Recipients, comma separated.")
    subject = Text(default="")
    # Shadows Table.raw(): query this table with the query builder, never CapturedMail.raw().
    raw = Text(help_text="The whole message as received.")  # type: ignore[assignment]


class OutboxStatus(str, Enum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    cancelled = "cancelled"


OUTBOX_STATUS_LABELS = {
    OutboxStatus.queued.value: N_("Queued"),
    OutboxStatus.sending.value: N_("Sending"),
    OutboxStatus.sent.value: N_("Sent"),
    OutboxStatus.failed.value: N_("Failed"),
    OutboxStatus.cancelled.value: N_("Cancelled"),
}
"""What staff read for an email's status."""


class OutboxMessage(Table, tablename="outbox_message"):
    """An email as sent (or to be sent): the communication history itself.

    Written in the transaction of the action that caused it; the worker sends it. Its
    portal link is stored redacted; the SHA-256 and size of the exact bytes sent prove
    what left.
    """

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, null=True, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=40, help_text="reminder, feedback_notice, portal_link, ...")
    message_id = Varchar(length=200, unique=True, help_text="Stable Message-ID header.")
    thread_key = Varchar(
        length=64,
        default="",
        index=True,
        help_text="Threaded messages: kind, customer and recipients hashed; the message answers "
        "the last one sent with the same key.",
    )
    in_reply_to = Varchar(length=200, default="", help_text="As sent (set when sent).")
    references = Text(default="", help_text="As sent (set when sent).")
    mail_from = Varchar(length=254)
    reply_to = Varchar(length=254, default="")
    to_addrs = Text(help_text="Recipients as 'Name <addr>', one per line.")
    subject = Text(help_text="Portal links redacted (see receivables/mail/sealed_links.py).")
    text_body = Text(help_text="Portal links redacted.")
    html_body = Text(default="", help_text="Portal links redacted.")
    sealed_token = Text(
        default="",
        help_text="The portal token the redacted link stands for, sealed under SECRET_KEY; "
        "emptied once the message is sent, failed or cancelled.",
    )
    status = Varchar(length=10, choices=OutboxStatus, default=OutboxStatus.queued, index=True)
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(default=TimestamptzNow(), index=True)
    claimed_by = Varchar(length=100, default="")
    claimed_at = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    sent_at = Timestamptz(null=True, default=None)
    sent_sha256 = Varchar(length=64, default="", help_text="SHA-256 of the exact bytes sent.")
    sent_size = Integer(default=0, help_text="Their size in bytes.")
    sent_event_pending = Boolean(
        default=False,
        index=True,
        help_text="Sent, its email.sent history event not yet written (for milliseconds; "
        "after a worker crash, until the next worker writes it).",
    )
    sent_event = Text(
        default="",
        help_text="That event's details (JSON): SHA-256 and size, attachments, refusals.",
    )
