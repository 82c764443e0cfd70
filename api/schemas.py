"""Request and response bodies: amounts travel as strings, dates as YYYY-MM-DD.

Request bodies only type the JSON (a string where a string goes, a date where a date
goes); what the values mean is checked by `receivables.ledger.records`, the same code
that checks imported files. A field left out keeps the stored value; a field sent as
null clears it (or takes its default), exactly like an absent or empty file column.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

from receivables.money import Money

AMOUNT_FIELDS = frozenset({"total", "amount", "credit_limit"})
"""Body fields holding an amount: a JSON number there is refused, asking for a string."""

_AMOUNT = 'A decimal amount as a JSON string, like "1234.50" (never a number).'


def _optional(description: str = "", kind: Any = str) -> Any:
    """A field that may be left out (the stored value stays) or sent as null (cleared)."""
    return Annotated[kind | None | UnsetType, Meta(description=description)]


def _required(description: str, kind: Any = str) -> Any:
    return Annotated[kind, Meta(description=description)]


Text = _optional()
CompanyCode = _optional("The company's code; only the API key's own company is accepted.")
Language = _optional("en or fr; empty: the company's")
CustomerRef = _required("The ERP's customer reference")


class _Body(Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body: unknown fields are refused, so a misspelt optional field is noticed."""


class CustomerFields(_Body):
    """A customer's fields (the reference is in the path)."""

    name: str
    address: _optional("Several lines allowed") = UNSET
    country: _optional("Two-letter code: FR, GB, DE...") = UNSET
    payer_profile: _optional(
        "good_payer (default), negligent, bad_payer, insolvent, administrative, "
        "dispute_prone, automatic"
    ) = UNSET
    language: Language = UNSET
    collector_email: _optional("A staff user, who becomes the account's collector") = UNSET
    credit_limit: _optional(_AMOUNT) = UNSET
    currency: _optional("Of the credit limit; default the company's") = UNSET
    company: CompanyCode = UNSET


class CustomerRow(CustomerFields, kw_only=True):
    """A customer in a batch."""

    ref: CustomerRef


class ContactFields(_Body):
    """A contact's fields (customer and email are in the path)."""

    name: Text = UNSET
    phone: Text = UNSET
    role: _optional("Accounts payable, buyer, CFO...") = UNSET
    language: _optional("en or fr; empty: the customer's") = UNSET
    receives_reminders: _optional("Default true", bool) = UNSET
    ext_ref: _optional("The ERP's contact reference") = UNSET
    company: CompanyCode = UNSET


class ContactRow(ContactFields, kw_only=True):
    """A contact in a batch; its key is (customer_ref, email)."""

    customer_ref: CustomerRef
    email: _required("Compared and stored in lower case")


class ItemFields(_Body):
    """An invoice's or credit note's fields (the number is in the path)."""

    customer_ref: CustomerRef
    issue_date: date
    due_date: _required("Not before issue_date", date)
    currency: _required("ISO 4217: EUR, GBP, USD...")
    total: _required(_AMOUNT + " More than zero, a credit note's too.")
    kind: _optional("invoice (default) or credit_note") = UNSET
    po_number: _optional("The customer's purchase order") = UNSET
    company: CompanyCode = UNSET


class ItemRow(ItemFields, kw_only=True):
    """An item in a batch."""

    number: _required("Unique per company")


class PaymentRow(_Body):
    """A payment received, known by `ref`. Payments are facts: sent again, only
    `received_on` and `method` may change."""

    ref: _required("The bank's or ERP's reference, unique per company")
    customer_ref: CustomerRef
    received_on: date
    amount: _required(_AMOUNT)
    currency: _optional("Default the customer's") = UNSET
    method: _optional("transfer (default), card, direct_debit, cheque, other") = UNSET
    item_number: _optional(
        "An open invoice of the same customer and currency: the whole amount goes to it"
    ) = UNSET
    company: CompanyCode = UNSET


BatchSize = Meta(min_length=1, max_length=10_000)


class CustomersBatch(_Body):
    customers: Annotated[list[CustomerRow], BatchSize]


class ContactsBatch(_Body):
    contacts: Annotated[list[ContactRow], BatchSize]


class ItemsBatch(_Body):
    items: Annotated[list[ItemRow], BatchSize]


class PaymentsBatch(_Body):
    payments: Annotated[list[PaymentRow], BatchSize]


class LedgerBatch(_Body):
    """Several kinds at once, written together in dependency order: a contact may name a
    customer, an item a customer, a payment an item of the same batch."""

    customers: Annotated[list[CustomerRow], Meta(max_length=10_000)] = []
    contacts: Annotated[list[ContactRow], Meta(max_length=10_000)] = []
    items: Annotated[list[ItemRow], Meta(max_length=10_000)] = []
    payments: Annotated[list[PaymentRow], Meta(max_length=10_000)] = []


def carried(body: Struct, **keys: str) -> dict[str, Any]:
    """The fields the caller sent (absent ones left out), plus the keys taken from the path."""
    sent = {
        name: value
        for name in body.__struct_fields__
        if (value := getattr(body, name)) is not UNSET
    }
    return {**sent, **keys}


# --------------------------------------------------------------------------------------
# Responses

UPSERT_ANSWER = (
    "201 when this call created it, 200 when it existed (updated or unchanged); the body "
    "is the stored row either way, with `created`. A 400 lists `problems` naming each field."
)


def upsert_status(created: bool) -> int:
    return 201 if created else 200


class MoneyOut(Struct):
    amount: Annotated[str, Meta(examples=["1234.50"])]
    currency: str

    @classmethod
    def of(cls, money: Money) -> MoneyOut:
        return cls(str(money.amount), money.currency)

    @classmethod
    def minor(cls, minor: int, currency: str) -> MoneyOut:
        return cls.of(Money.from_minor(minor, currency))


class CustomerOut(Struct):
    ref: str
    name: str
    address: str
    country: str
    payer_profile: str
    language: str
    collector_email: str | None
    blocked: bool
    credit_limit: MoneyOut | None
    currency: str
    created: Annotated[bool, Meta(description="true: this call created it; false: it existed")]


class ContactOut(Struct):
    customer_ref: str
    email: str
    name: str
    phone: str
    role: str
    language: str
    receives_reminders: bool
    ext_ref: str | None
    created: bool


class ItemOut(Struct):
    number: str
    customer_ref: str
    kind: str
    issue_date: date
    due_date: date
    total: MoneyOut
    open: Annotated[MoneyOut, Meta(description="What is left to pay after allocations")]
    po_number: str
    status: str
    has_pdf: bool
    created: bool


class AllocationOut(Struct):
    item_number: str
    amount: MoneyOut


class PaymentOut(Struct):
    ref: str
    customer_ref: str
    received_on: date
    method: str
    amount: MoneyOut
    unapplied: Annotated[MoneyOut, Meta(description="What is not allocated to items yet")]
    allocations: list[AllocationOut]
    created: bool


class PdfOut(Struct):
    number: str
    bytes: int
    sha256: str
    changed: Annotated[bool, Meta(description="false: the item already had this very file")]


class BatchResult(Struct):
    """What a batch did, per kind: rows created, updated, and left as they were."""

    created: int
    updated: int
    unchanged: int
