"""Payment tables: Stripe events, online payments, disputes, payouts, bank statements, and the
exceptions finance acts on. Money is BigInt minor units beside a currency (receivables.money).
"""

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
from piccolo.table import Table

from receivables.ledger.tables import Company, Customer, Item, Payment


class StripeEvent(Table, tablename="stripe_event"):
    """A verified webhook event, stored once under Stripe's id and answered at once; the
    worker applies it (`receivables.payments.events.apply_due`)."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    class Status(str, Enum):
        received = "received"
        processed = "processed"
        failed = "failed"
        ignored = "ignored"

    event_id = Varchar(length=255, unique=True, help_text="Stripe's evt_... id.")
    type = Varchar(length=100, index=True)
    object_id = Varchar(length=255, default="", index=True, help_text="data.object.id")
    livemode = Boolean(default=False)
    created = Timestamptz(help_text="When Stripe created the event.")
    received_at = Timestamptz(default=TimestamptzNow())
    payload = Text(help_text="The raw body, as signed.")
    status = Varchar(length=12, choices=Status, default=Status.received, index=True)
    attempts = Integer(default=0, help_text="Times a worker took it to apply.")
    last_error = Text(default="")
    processed_at = Timestamptz(null=True, default=None)
    # Not indexed: the claim finds its rows by status (few are due at any time), and an
    # unindexed column lets the claim's UPDATE be a HOT update (no index entry rewritten).
    next_attempt_at = Timestamptz(
        default=TimestamptzNow(),
        help_text="When a worker may take it: on arrival; after a failure, the retry; while "
        "a worker applies it, the end of that worker's claim.",
    )


class StripePayout(Table, tablename="stripe_payout"):
    """Money Stripe sent to the bank, and whether its balance transactions add up to it."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    payout_id = Varchar(length=255, unique=True)
    currency = Varchar(length=3)
    amount_minor = BigInt()
    status = Varchar(length=20, default="")
    arrival_date = Date(null=True, default=None)
    transactions_net_minor = BigInt(default=0, help_text="Sum of the nets it carries.")
    transactions = Integer(default=0)
    balanced = Boolean(default=False, help_text="The transactions add up to the payout.")
    checked_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class OnlinePayment(Table, tablename="online_payment"):
    """One attempt to pay items by card: our side of a Stripe PaymentIntent.

    Only webhooks move it to processing, succeeded or failed; the ledger payment and its
    allocations are written when Stripe says the money is there.
    """

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    class Status(str, Enum):
        started = "started"
        requires_action = "requires_action"
        processing = "processing"
        succeeded = "succeeded"
        failed = "failed"
        canceled = "canceled"

    key = Varchar(length=40, unique=True, help_text="Our reference: metadata, idempotency, URLs.")
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, null=True, on_delete=OnDelete.restrict, index=True)
    contact_label = Varchar(length=254, default="", help_text="Who paid from the portal.")
    intent_id = Varchar(length=255, null=True, default=None, unique=True)
    setup_intent_id = Varchar(length=255, default="")
    currency = Varchar(length=3)
    amount_minor = BigInt(help_text="Amount asked for (selected invoices less credit notes).")
    status = Varchar(length=20, choices=Status, default=Status.started, index=True)
    failure_message = Text(default="")
    received_minor = BigInt(default=0, help_text="Gross amount Stripe collected.")
    settlement_currency = Varchar(length=3, default="", help_text="Of the fee and net.")
    fee_minor = BigInt(null=True, default=None)
    net_minor = BigInt(null=True, default=None)
    charge_id = Varchar(length=255, default="", index=True)
    balance_transaction_id = Varchar(length=255, default="")
    payment = ForeignKey(Payment, null=True, on_delete=OnDelete.restrict, index=True)
    payout = ForeignKey(StripePayout, null=True, on_delete=OnDelete.set_null, index=True)
    refunded_minor = BigInt(default=0, help_text="Refunds applied to the ledger.")
    dispute_lost_minor = BigInt(default=0, help_text="Lost disputes applied to the ledger.")
    dispute_status = Varchar(length=30, default="")
    succeeded_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=TimestamptzNow().python)


class OnlinePaymentItem(Table, tablename="online_payment_item"):
    """An invoice paid, or a credit note offset, by an online payment."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    online_payment = ForeignKey(OnlinePayment, on_delete=OnDelete.cascade, index=True)
    item = ForeignKey(Item, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=12, help_text="invoice or credit_note, as at selection.")
    amount_minor = BigInt(help_text="Open amount when the customer selected it.")
    prior_status = Varchar(length=20, default="", help_text="Restored if the payment fails.")
    offset_payment = ForeignKey(
        Payment,
        null=True,
        on_delete=OnDelete.restrict,
        help_text="Credit notes: the non-cash payment that carries the offset.",
    )


class StripeDispute(Table, tablename="stripe_dispute"):
    """A chargeback on an online payment, in the state Stripe reported when last read
    (`Dispute.retrieve`; `last_event_at`: when that state was first seen)."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    dispute_id = Varchar(length=255, unique=True)
    online_payment = ForeignKey(OnlinePayment, on_delete=OnDelete.restrict, index=True)
    currency = Varchar(length=3)
    amount_minor = BigInt()
    status = Varchar(length=40, default="")
    reason = Varchar(length=60, default="")
    last_event_at = Timestamptz()


class PayoutTransaction(Table, tablename="stripe_balance_transaction"):
    """A balance transaction carried by a payout: a charge, a refund, a fee, the payout itself."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    txn_id = Varchar(length=255, unique=True)
    payout = ForeignKey(StripePayout, on_delete=OnDelete.cascade, index=True)
    type = Varchar(length=40)
    source_id = Varchar(length=255, default="", index=True)
    currency = Varchar(length=3)
    amount_minor = BigInt()
    fee_minor = BigInt(default=0)
    net_minor = BigInt()
    online_payment = ForeignKey(OnlinePayment, null=True, on_delete=OnDelete.set_null)


class FinanceException(Table, tablename="finance_exception"):
    """Something finance must look at, with the action to take; resolved, never deleted."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    class Kind(str, Enum):
        overpayment = "overpayment"
        already_paid = "already_paid"
        currency_mismatch = "currency_mismatch"
        unallocated = "unallocated"
        failed = "failed"
        disputed = "disputed"
        refund_failed = "refund_failed"
        payout_mismatch = "payout_mismatch"

    key = Varchar(length=120, unique=True, help_text="kind:subject, so a cause flags once.")
    kind = Varchar(length=30, choices=Kind, index=True)
    company = ForeignKey(Company, null=True, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(Customer, null=True, on_delete=OnDelete.restrict)
    online_payment = ForeignKey(OnlinePayment, null=True, on_delete=OnDelete.restrict)
    payout = ForeignKey(StripePayout, null=True, on_delete=OnDelete.restrict)
    currency = Varchar(length=3, default="")
    amount_minor = BigInt(null=True, default=None)
    detail = Text(default="")
    action = Text(default="", help_text="What finance should do about it.")
    created_at = Timestamptz(default=TimestamptzNow())
    resolved_at = Timestamptz(null=True, default=None, index=True)
    resolved_by = Varchar(length=254, default="")
    resolution = Text(default="")


class BankStatement(Table, tablename="bank_statement"):
    """An imported bank statement file (CSV or CAMT.053)."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    filename = Varchar(length=255, default="")
    format = Varchar(length=10, help_text="csv or camt053")
    account = Varchar(length=64, default="", help_text="IBAN of the account, when given.")
    sha256 = Varchar(length=64, help_text="Of the file: the same file imports once.")
    imported_at = Timestamptz(default=TimestamptzNow())
    imported_by = Varchar(length=254, default="")
    credits = Integer(default=0)
    skipped = Integer(default=0, help_text="Debits and lines already imported.")


class BankLine(Table, tablename="bank_line"):
    """A credit on the bank statement and what it pays, proposed or waiting for review.

    Nothing is allocated until finance confirms the line.
    """

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    class Status(str, Enum):
        proposed = "proposed"
        review = "review"
        confirmed = "confirmed"
        ignored = "ignored"

    statement = ForeignKey(BankStatement, on_delete=OnDelete.restrict, index=True)
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    line_no = Integer(help_text="Row (CSV) or entry (CAMT) number in the file.")
    dedup_key = Varchar(length=200, help_text="Bank's reference, else file+line.")
    booked_on = Date()
    value_date = Date(null=True, default=None)
    currency = Varchar(length=3)
    amount_minor = BigInt()
    counterparty = Varchar(length=200, default="")
    counterparty_iban = Varchar(length=34, default="")
    reference = Text(default="", help_text="Remittance information as the bank gave it.")
    status = Varchar(length=12, choices=Status, default=Status.review, index=True)
    customer = ForeignKey(Customer, null=True, on_delete=OnDelete.restrict, index=True)
    reason = Text(default="", help_text="Why it was proposed, or why it waits.")
    payment = ForeignKey(Payment, null=True, on_delete=OnDelete.restrict)
    decided_at = Timestamptz(null=True, default=None)
    decided_by = Varchar(length=254, default="")


class BankLineMatch(Table, tablename="bank_line_match"):
    """A proposed (then confirmed) part of a bank line applied to one invoice."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    line = ForeignKey(BankLine, on_delete=OnDelete.cascade, index=True)
    item = ForeignKey(Item, on_delete=OnDelete.restrict, index=True)
    amount_minor = BigInt()
