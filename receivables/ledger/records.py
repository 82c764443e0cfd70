"""Ledger records from outside (files, the JSON API): parsed, checked as a whole, upserted in bulk.

Two steps, shared by the file import and the API:

1. `parse_company`, `parse_customer`, ... (or `parse_rows` for many) turn a mapping of
   field name -> raw value into a frozen record, listing every bad value as a
   `FieldProblem`; nothing touches the database.
2. `upsert_companies`, `upsert_customers`, ... (or a `Changeset` for several kinds at
   once) check the records against the database (references, allocated amounts, payments
   already recorded) and write them in one transaction, idempotently by business key:
   company code; customer (company, ref); contact (customer, email); item (company,
   number); payment (company, ref).

A record remembers which fields its source carried (`fields_set`): a field the source did
not carry keeps its stored value on update and its default on creation; a field carried
empty clears the stored value. That is what lets a file without a `collector_email`
column leave the collectors assigned in the back office alone.

Writes are batched: existing rows are loaded a few thousand keys per query, new rows go
in multi-row INSERTs, changed rows in one UPDATE per batch, unchanged rows cost nothing.
Those statements run on the transaction's own driver connection: building them through
Piccolo's QueryString costs ~50 ms per 1000 rows in Python alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any, TypeVar

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from email_validator import EmailNotValidError, validate_email
from piccolo.columns import BigInt, Boolean, Column, Date, ForeignKey, Integer, Serial, Timestamptz
from piccolo.table import Table
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from receivables import history
from receivables.access.tables import StaffUser
from receivables.db import atomic, current_engine, is_postgres
from receivables.errors import AllocationRefused, Conflict, FieldProblem, InvalidInput
from receivables.history import Actor
from receivables.ledger.allocations import allocate
from receivables.ledger.tables import (
    Allocation,
    Company,
    Contact,
    Customer,
    Item,
    ItemKind,
    ItemStatus,
    PayerProfile,
    Payment,
)
from receivables.money import (
    PLAIN,
    AmountFormat,
    Money,
    MoneyError,
    check_currency,
    exponent,
    from_minor,
    to_minor,
)

KINDS: tuple[str, ...] = ("companies", "customers", "contacts", "items", "payments")
"""Every kind of record, in the order they are written (each may refer to the previous)."""

BATCH = 1000
"""Rows per INSERT or UPDATE statement (SQLite binds ~17 values a row, its limit is 32766)."""
LOOKUP_BATCH = 5000
"""Keys per `IN (...)` lookup; Postgres allows 32767 bind parameters per query."""
MAX_REFS_IN_HISTORY = 20


# --------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class CompanyRecord:
    """A legal entity that sells on credit (`code` is its business key)."""

    code: str
    name: str
    legal_id: str = ""
    address: str = ""
    email: str = ""
    phone: str = ""
    iban: str = ""
    bic: str = ""
    currency: str = "EUR"
    locale: str = "en_GB"
    penalty_policy: str = Company.PenaltyPolicy.none.value
    logo_path: str = ""
    fields_set: frozenset[str] | None = field(default=None, compare=False)
    """Fields the source carried; None means all of them."""
    line: int | None = field(default=None, compare=False)
    """Line in the source file (header is line 1), for problems."""
    source: str = field(default="", compare=False)
    """File name (or 'api'), for problems."""


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A buyer account; key (company, ref). `currency` None: the company's currency."""

    ref: str
    name: str
    address: str = ""
    country: str = ""
    payer_profile: str = PayerProfile.good_payer.value
    language: str = ""
    collector_email: str = ""
    credit_limit: Decimal | None = None
    currency: str | None = None
    company: str | None = None
    fields_set: frozenset[str] | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """A person at a customer; key (customer, email). The email is stored lower-case."""

    customer_ref: str
    email: str
    name: str = ""
    phone: str = ""
    role: str = ""
    language: str = ""
    receives_reminders: bool = True
    ext_ref: str = ""
    company: str | None = None
    fields_set: frozenset[str] | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An invoice or a credit note; key (company, number). `total` is positive."""

    number: str
    customer_ref: str
    issue_date: date
    due_date: date
    currency: str
    total: Decimal
    kind: str = ItemKind.invoice.value
    po_number: str = ""
    company: str | None = None
    fields_set: frozenset[str] | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """Money received; key (company, ref). `currency` None: the customer's currency.

    With `item_number`, the whole amount is allocated to that invoice.
    """

    ref: str
    customer_ref: str
    received_on: date
    amount: Decimal
    currency: str | None = None
    method: str = Payment.Method.transfer.value
    item_number: str = ""
    company: str | None = None
    fields_set: frozenset[str] | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)
    source: str = field(default="", compare=False)


Record = CompanyRecord | CustomerRecord | ContactRecord | ItemRecord | PaymentRecord
R = TypeVar("R", CompanyRecord, CustomerRecord, ContactRecord, ItemRecord, PaymentRecord)

RECORD_TYPES: dict[str, type] = {
    "companies": CompanyRecord,
    "customers": CustomerRecord,
    "contacts": ContactRecord,
    "items": ItemRecord,
    "payments": PaymentRecord,
}
_META_FIELDS = ("fields_set", "line", "source")

FIELDS: dict[str, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(cls) if f.name not in _META_FIELDS)
    for kind, cls in RECORD_TYPES.items()
}
"""The field names (file columns, JSON keys) of each kind."""

REQUIRED: dict[str, frozenset[str]] = {
    "companies": frozenset({"code", "name"}),
    "customers": frozenset({"ref", "name"}),
    "contacts": frozenset({"customer_ref", "email"}),
    "items": frozenset({"number", "customer_ref", "issue_date", "due_date", "currency", "total"}),
    "payments": frozenset({"ref", "customer_ref", "received_on", "amount"}),
}
"""The fields every record of a kind must carry."""


def kind_of(record: Record) -> str:
    for kind, cls in RECORD_TYPES.items():
        if isinstance(record, cls):
            return kind
    raise TypeError(f"not a ledger record: {type(record).__name__}")


def _carries(record: Record, name: str) -> bool:
    return record.fields_set is None or name in record.fields_set


@dataclass
class RowProblem(FieldProblem):
    """A FieldProblem that also names where its row came from (a file name, 'api')."""

    source: str = ""


# --------------------------------------------------------------------------------------
# Values: each parser takes one raw value (str from CSV; str, int, float, Decimal, date,
# datetime or bool from XLSX; JSON types from the API) and raises ValueError with a
# message meant for the person who typed the value.

# Control characters (Unicode Cc) and the bidirectional overrides that make text display
# in another order than it is stored.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_DMY = re.compile(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})")
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]00:00(?::00(?:\.0+)?)?)?")
_CODE = re.compile(r"[A-Za-z0-9._-]+")
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})


def fold(text: str) -> str:
    """Lower case, accents off, runs of anything but letters and digits as one `_`.

    "Due date", "DUE-DATE" and "due_date" fold to "due_date"; "Échéance" to "echeance".
    """
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^0-9a-z]+", "_", bare.casefold()).strip("_")


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # A spreadsheet cell holding 1001 as a number comes back as 1001.0 from some tools.
        return str(int(value)) if value.is_integer() else format(value, ".15g")
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    raise ValueError(f"unexpected {type(value).__name__} value")


def clean_text(value: object, *, multiline: bool = False) -> str:
    """Text with surrounding spaces stripped; control characters refused.

    `multiline` keeps line breaks (addresses), normalised to "\\n".
    """
    text = _as_text(value)
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = "\n".join(line.strip() for line in text.split("\n")).strip("\n")
    text = text.strip()
    if bad := (_CONTROL_BUT_NEWLINE if multiline else _CONTROL).search(text):
        raise ValueError(f"contains a control character (U+{ord(bad[0]):04X})")
    return text


def parse_date(value: object) -> date:
    """A date from a date cell, `YYYY-MM-DD`, or `DD/MM/YYYY` (also `DD.MM.YYYY`)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (bool, int, float, Decimal)):
        raise ValueError(f"{value} is a number, not a date (format the cell as a date)")
    text = clean_text(value)
    if len(text) == 10 and text[4] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass  # the patterns below say what is wrong
    if m := _ISO.fullmatch(text):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
    elif m := _DMY.fullmatch(text):
        day, month, year = int(m[1]), int(m[2]), int(m[3])
    else:
        raise ValueError(f"'{text}' is not a date; write YYYY-MM-DD or DD/MM/YYYY")
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"'{text}' is not a real date") from None


@lru_cache(maxsize=1)
def _finest_currency() -> str:
    return max(sorted(list_currencies()), key=exponent)


def parse_money(
    value: object, currency: str | None, amounts: AmountFormat | None = None
) -> Decimal:
    """An exact amount: text read as `amounts` says (see `receivables.money.parse_amount`;
    None: only spellings with one reading, "1,000" is refused), 1234, Decimal, or a float cell.

    Number cells are numbers whatever the locale. Floats only come from spreadsheet cells;
    they are read at Excel's own precision (15 significant digits), so 0.1 + 0.2 computed in
    a sheet is 0.3, never 0.30000000000000004. With `currency` None the amount is only
    checked for what no currency allows; call `exact_minor` once the currency is known.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value} is not an amount")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("is not an amount")
        value = Decimal(format(value, ".15g"))
    if not isinstance(value, (str, int, Decimal)):
        raise ValueError(f"a {type(value).__name__} is not an amount")
    try:
        return (amounts or AmountFormat()).parse(value, currency or _finest_currency())
    except MoneyError as exc:
        raise ValueError(str(exc)) from None


def exact_minor(amount: Decimal, currency: str) -> int:
    """Minor units of `amount` in `currency`; ValueError when it has too many decimals."""
    try:
        return to_minor(amount, currency)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None


_TRUE = frozenset({"yes", "y", "true", "1", "oui", "o", "vrai", "x"})
_FALSE = frozenset({"no", "n", "false", "0", "non", "faux"})


def parse_flag(value: object) -> bool:
    """yes/no, true/false, 1/0, oui/non (any case), or a boolean cell."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = fold(clean_text(value))
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"'{clean_text(value)}' is not yes or no")


def parse_choice(
    value: object, choices: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str:
    """One of `choices`, matched after folding ("Bad-Payer" -> bad_payer)."""
    allowed = list(choices)
    folded = fold(clean_text(value))
    if folded in allowed:
        return folded
    if aliases and folded in aliases:
        return aliases[folded]
    raise ValueError(f"'{clean_text(value)}' is not one of {', '.join(allowed)}")


def parse_email(value: object) -> str:
    """A syntactically valid address (no DNS lookup), normalised and lower-cased."""
    text = clean_text(value)
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"'{text}' is not an email address: {exc}") from None


def parse_iban(value: object) -> str:
    text = clean_text(value)
    try:
        return IBAN(text).compact
    except SchwiftyException as exc:
        raise ValueError(f"'{text}' is not a valid IBAN: {exc}") from None


def parse_bic(value: object) -> str:
    text = clean_text(value)
    try:
        return BIC(text).compact
    except SchwiftyException as exc:
        raise ValueError(f"'{text}' is not a valid BIC: {exc}") from None


def parse_locale(value: object) -> str:
    text = clean_text(value)
    try:
        return str(Locale.parse(text.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(f"'{text}' is not a locale like en_GB or fr_FR") from None


@lru_cache(maxsize=1)
def _territories() -> frozenset[str]:
    codes = Locale("en").territories
    return (
        frozenset(str(c) for c in codes if len(str(c)) == 2 and str(c).isalpha()) - _NOT_COUNTRIES
    )


def parse_country(value: object) -> str:
    text = clean_text(value).upper()
    if text not in _territories():
        raise ValueError(f"'{text}' is not a two-letter country code (FR, GB, DE...)")
    return text


def parse_currency(value: object) -> str:
    try:
        return check_currency(clean_text(value))
    except MoneyError as exc:
        raise ValueError(str(exc)) from None


_PAYER_ALIASES = {
    "good": "good_payer",
    "bad": "bad_payer",
    "dispute": "dispute_prone",
    "direct_debit": "automatic",
    "admin": "administrative",
}
_KIND_ALIASES = {
    "credit": "credit_note",
    "creditnote": "credit_note",
    "avoir": "credit_note",
    "facture": "invoice",
}
_METHOD_ALIASES = {
    "bank_transfer": "transfer",
    "wire": "transfer",
    "virement": "transfer",
    "sepa_direct_debit": "direct_debit",
    "prelevement": "direct_debit",
    "check": "cheque",
    "carte": "card",
    "autre": "other",
}


# --------------------------------------------------------------------------------------
# Rows -> records


class _Row:
    """One source row being parsed: reads fields, collects every problem."""

    def __init__(
        self,
        kind: str,
        data: Mapping[str, object],
        line: int | None,
        source: str,
        amounts: AmountFormat = PLAIN,
    ):
        self.kind = kind
        self.data = data
        self.line = line
        self.source = source
        self.amounts = amounts
        self.problems: list[FieldProblem] = []
        known = FIELDS[kind]
        for name in data:
            if name not in known:
                self.bad(name, f"unknown field; {kind} have {', '.join(known)}")
        for name in sorted(REQUIRED[kind] - set(data)):
            self.bad(name, "required")

    def bad(self, name: str, message: str) -> None:
        self.problems.append(RowProblem(name, message, self.line, self.source))

    def raw(self, name: str) -> object | None:
        value = self.data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value

    def get(
        self,
        name: str,
        parse: Callable[[object], Any],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        value = self.raw(name)
        if value is None:
            if required and name in self.data:
                self.bad(name, "required")
            return default
        try:
            return parse(value)
        except ValueError as exc:
            self.bad(name, str(exc))
            return default

    def text(
        self,
        name: str,
        length: int | None = None,
        *,
        required: bool = False,
        multiline: bool = False,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        value: str = self.get(
            name, lambda v: clean_text(v, multiline=multiline), "", required=required
        )
        if length is not None and len(value) > length:
            self.bad(name, f"too long ({len(value)} characters, at most {length})")
            return ""
        if value and pattern is not None and not pattern.fullmatch(value):
            self.bad(name, f"'{value}' may only use letters, digits, '.', '_' and '-'")
            return ""
        return value

    def money(
        self, name: str, currency: str | None, *, required: bool = False, positive: bool = True
    ) -> Decimal | None:
        amount: Decimal | None = self.get(
            name, lambda v: parse_money(v, currency, self.amounts), required=required
        )
        if amount is not None:
            if positive and amount <= 0:
                hint = (
                    "; a credit note is an item of kind credit_note with a positive total"
                    if self.kind == "items" and amount < 0
                    else ""
                )
                self.bad(name, f"must be more than zero (got {amount}){hint}")
            elif not positive and amount < 0:
                self.bad(name, f"must not be negative (got {amount})")
        return amount

    def finish(self, cls: type[R], **values: Any) -> R | None:
        if self.problems:
            return None
        return cls(**values, fields_set=frozenset(self.data), line=self.line, source=self.source)


def _company_field(row: _Row) -> str | None:
    return row.text("company", Company.code.length, pattern=_CODE) or None


def _parse_company(row: _Row) -> CompanyRecord | None:
    logo = row.text("logo_path", Company.logo_path.length)
    path = PurePosixPath(logo)
    if logo and (path.is_absolute() or ".." in path.parts or "\\" in logo or ":" in logo):
        row.bad("logo_path", "must be a path inside static/, like img/logo.png")
    return row.finish(
        CompanyRecord,
        code=row.text("code", Company.code.length, required=True, pattern=_CODE),
        name=row.text("name", Company.name.length, required=True),
        legal_id=row.text("legal_id", Company.legal_id.length),
        address=row.text("address", multiline=True),
        email=row.get("email", parse_email, ""),
        phone=row.text("phone", Company.phone.length),
        iban=row.get("iban", parse_iban, ""),
        bic=row.get("bic", parse_bic, ""),
        currency=row.get("currency", parse_currency, "EUR"),
        locale=row.get("locale", parse_locale, "en_GB"),
        penalty_policy=row.get(
            "penalty_policy",
            lambda v: parse_choice(v, [p.value for p in Company.PenaltyPolicy]),
            Company.PenaltyPolicy.none.value,
        ),
        logo_path=logo,
    )


def _parse_language(value: object) -> str:
    return parse_choice(
        value, ["en", "fr"], {"english": "en", "anglais": "en", "french": "fr", "francais": "fr"}
    )


def _parse_customer(row: _Row) -> CustomerRecord | None:
    currency = row.get("currency", parse_currency)
    return row.finish(
        CustomerRecord,
        ref=row.text("ref", Customer.ref.length, required=True),
        name=row.text("name", Customer.name.length, required=True),
        address=row.text("address", multiline=True),
        country=row.get("country", parse_country, ""),
        payer_profile=row.get(
            "payer_profile",
            lambda v: parse_choice(v, [p.value for p in PayerProfile], _PAYER_ALIASES),
            PayerProfile.good_payer.value,
        ),
        language=row.get("language", _parse_language, ""),
        collector_email=row.get("collector_email", parse_email, ""),
        credit_limit=row.money("credit_limit", currency, positive=False),
        currency=currency,
        company=_company_field(row),
    )


def _parse_contact(row: _Row) -> ContactRecord | None:
    return row.finish(
        ContactRecord,
        customer_ref=row.text("customer_ref", Customer.ref.length, required=True),
        email=row.get("email", parse_email, "", required=True),
        name=row.text("name", Contact.name.length),
        phone=row.text("phone", Contact.phone.length),
        role=row.text("role", Contact.role.length),
        language=row.get("language", _parse_language, ""),
        receives_reminders=row.get("receives_reminders", parse_flag, True),
        ext_ref=row.text("ext_ref", Contact.ext_ref.length),
        company=_company_field(row),
    )


def _parse_item(row: _Row) -> ItemRecord | None:
    currency = row.get("currency", parse_currency, required=True)
    issue = row.get("issue_date", parse_date, required=True)
    due = row.get("due_date", parse_date, required=True)
    if issue and due and due < issue:
        row.bad("due_date", f"{due.isoformat()} is before the issue date {issue.isoformat()}")
    total = row.money("total", currency, required=True)
    return row.finish(
        ItemRecord,
        number=row.text("number", Item.number.length, required=True),
        customer_ref=row.text("customer_ref", Customer.ref.length, required=True),
        kind=row.get(
            "kind",
            lambda v: parse_choice(v, [k.value for k in ItemKind], _KIND_ALIASES),
            ItemKind.invoice.value,
        ),
        issue_date=issue,
        due_date=due,
        currency=currency,
        total=total,
        po_number=row.text("po_number", Item.po_number.length),
        company=_company_field(row),
    )


def _parse_payment(row: _Row) -> PaymentRecord | None:
    currency = row.get("currency", parse_currency)
    return row.finish(
        PaymentRecord,
        ref=row.text("ref", Payment.ref.length, required=True),
        customer_ref=row.text("customer_ref", Customer.ref.length, required=True),
        received_on=row.get("received_on", parse_date, required=True),
        amount=row.money("amount", currency, required=True),
        currency=currency,
        method=row.get(
            "method",
            lambda v: parse_choice(v, [m.value for m in Payment.Method], _METHOD_ALIASES),
            Payment.Method.transfer.value,
        ),
        item_number=row.text("item_number", Item.number.length),
        company=_company_field(row),
    )


_PARSERS: dict[str, Callable[[_Row], Any]] = {
    "companies": _parse_company,
    "customers": _parse_customer,
    "contacts": _parse_contact,
    "items": _parse_item,
    "payments": _parse_payment,
}


def try_parse(
    kind: str,
    data: Mapping[str, object],
    *,
    line: int | None = None,
    source: str = "",
    amounts: AmountFormat = PLAIN,
) -> tuple[Record | None, list[FieldProblem]]:
    """Parse one row of `kind`: (record, []) or (None, every problem of the row).

    `amounts` says how the source writes amounts; the default is a machine's "1234.50"
    (the JSON API), files say their locale or decimal separator."""
    if kind not in _PARSERS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    row = _Row(kind, data, line, source, amounts)
    record = _PARSERS[kind](row)
    return record, row.problems


def parse_record(
    kind: str, data: Mapping[str, object], *, line: int | None = None, source: str = ""
) -> Record:
    """Parse one row of `kind`; raise InvalidInput listing every bad field."""
    record, problems = try_parse(kind, data, line=line, source=source)
    if record is None:
        raise InvalidInput(problems)
    return record


def parse_company(data: Mapping[str, object], *, line: int | None = None) -> CompanyRecord:
    """See `parse_record`."""
    return parse_record("companies", data, line=line)  # type: ignore[return-value]


def parse_customer(data: Mapping[str, object], *, line: int | None = None) -> CustomerRecord:
    """See `parse_record`."""
    return parse_record("customers", data, line=line)  # type: ignore[return-value]


def parse_contact(data: Mapping[str, object], *, line: int | None = None) -> ContactRecord:
    """See `parse_record`."""
    return parse_record("contacts", data, line=line)  # type: ignore[return-value]


def parse_item(data: Mapping[str, object], *, line: int | None = None) -> ItemRecord:
    """See `parse_record`."""
    return parse_record("items", data, line=line)  # type: ignore[return-value]


def parse_payment(data: Mapping[str, object], *, line: int | None = None) -> PaymentRecord:
    """See `parse_record`."""
    return parse_record("payments", data, line=line)  # type: ignore[return-value]


_KEY_FIELD = {
    "companies": "code",
    "customers": "ref",
    "contacts": "email",
    "items": "number",
    "payments": "ref",
}


@dataclass
class ParsedRows:
    """The outcome of `parse_rows`: the good records and every problem of the bad rows."""

    records: list[Record] = field(default_factory=list)
    problems: list[FieldProblem] = field(default_factory=list)
    bad_keys: set[str] = field(default_factory=set)
    """Business keys (ref, number...) of rows refused: references to them are not re-reported."""


def parse_rows(
    kind: str,
    rows: Iterable[tuple[int | None, Mapping[str, object]]],
    *,
    source: str = "",
    amounts: AmountFormat = PLAIN,
    company_amounts: Mapping[str, AmountFormat] | None = None,
) -> ParsedRows:
    """Parse many rows given as (line, mapping); every problem of every row is kept.

    Amounts are read as `amounts` says, or as `company_amounts` says for the company a row
    names in its `company` field (a file of several companies, each in its locale)."""
    out = ParsedRows()
    key_field = _KEY_FIELD[kind]
    for line, data in rows:
        row_amounts = amounts
        if company_amounts and isinstance(data.get("company"), str):
            row_amounts = company_amounts.get(str(data["company"]).strip(), amounts)
        record, problems = try_parse(kind, data, line=line, source=source, amounts=row_amounts)
        if record is None:
            out.problems.extend(problems)
            key = data.get(key_field)
            if key is not None:
                try:
                    out.bad_keys.add(
                        clean_text(key).lower() if kind == "contacts" else clean_text(key)
                    )
                except ValueError:
                    pass
        else:
            out.records.append(record)
    return out


# --------------------------------------------------------------------------------------
# Bulk statements on the transaction's connection


def _pg_type(column: Column) -> str:
    if isinstance(column, BigInt):
        return "int8"
    if isinstance(column, (Integer, Serial, ForeignKey)):
        return "int4"
    if isinstance(column, Timestamptz):
        return "timestamptz"
    if isinstance(column, Date):
        return "date"
    if isinstance(column, Boolean):
        return "bool"
    return "text"


def _connection() -> Any:
    transaction = current_engine().current_transaction.get()
    if transaction is None:
        raise RuntimeError("bulk writes run inside receivables.db.atomic()")
    return transaction.connection


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _insert_many(
    table: type[Table], columns: Sequence[str], rows: Sequence[Sequence[Any]], key: Sequence[str]
) -> dict[tuple[Any, ...], int]:
    """INSERT `rows` (values in `columns` order); returns {key values: new id}."""
    if not rows:
        return {}
    name = table._meta.tablename
    cols = ", ".join(columns)
    back = ", ".join(["id", *key])
    conn = _connection()
    try:
        if is_postgres():
            types = [_pg_type(table._meta.get_column_by_name(c)) for c in columns]
            unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
            sql = f"INSERT INTO {name} ({cols}) SELECT * FROM unnest({unnest}) RETURNING {back}"  # noqa: S608
            arrays = [list(values) for values in zip(*rows, strict=True)]
            result = await conn.fetch(sql, *arrays)
        else:
            values = ", ".join(["(" + ", ".join("?" * len(columns)) + ")"] * len(rows))
            sql = f"INSERT INTO {name} ({cols}) VALUES {values} RETURNING {back}"  # noqa: S608
            result = await conn.execute_fetchall(sql, [v for row in rows for v in row])
    except Exception as exc:
        # Checked absent a moment ago: someone else created the same key meanwhile (Postgres
        # lets two transactions race; SQLite's IMMEDIATE transactions queue instead).
        if type(exc).__name__ in ("UniqueViolationError", "IntegrityError"):
            raise Conflict(
                f"another import or user created some of these {name} rows at the same time; "
                "nothing was written, run it again"
            ) from exc
        raise
    return {tuple(r[k] for k in key): r["id"] for r in result}


async def _update_many(
    table: type[Table],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    guard: Sequence[str] = (),
) -> int:
    """UPDATE by id; each row is (id, *new values in `columns` order, *old values of `guard`).

    A row whose `guard` columns no longer hold the old values is left alone; returns how
    many rows were updated, so the caller can tell.
    """
    if not rows:
        return 0
    name = table._meta.tablename
    conn = _connection()
    if is_postgres():
        names = ["id", *columns, *(f"old_{g}" for g in guard)]
        source_columns = ["id", *columns, *guard]
        types = [_pg_type(table._meta.get_column_by_name(c)) for c in source_columns]
        unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
        sets = ", ".join(f"{c} = v.{c}" for c in columns)
        where = "".join(f" AND t.{g} IS NOT DISTINCT FROM v.old_{g}" for g in guard)
        sql = (
            f"UPDATE {name} AS t SET {sets} FROM unnest({unnest}) AS v({', '.join(names)}) "  # noqa: S608
            f"WHERE t.id = v.id{where} RETURNING t.id"
        )
        arrays = [list(values) for values in zip(*rows, strict=True)]
        return len(await conn.fetch(sql, *arrays))
    sets = ", ".join(f"{c} = ?" for c in columns)
    where = "".join(f" AND {g} IS ?" for g in guard)
    sql = f"UPDATE {name} SET {sets} WHERE id = ?{where}"  # noqa: S608
    n = len(columns)
    params = [(*row[1 : n + 1], row[0], *row[n + 1 :]) for row in rows]
    cursor = await conn.executemany(sql, params)
    try:
        return int(cursor.rowcount)
    finally:
        await cursor.close()


# --------------------------------------------------------------------------------------
# Checking and writing


@dataclass(frozen=True)
class UpsertResult:
    """What an upsert did. `ids` maps each record's business key to its row id:
    (code,) for companies, (company code, ref) for customers and payments,
    (company code, customer ref, email) for contacts, (company code, number) for items."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ids: Mapping[tuple[str, ...], int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


Progress = Callable[[str, int, int], None]
"""progress(step, done, total): `step` is a kind while writing it."""


@dataclass
class _CompanyRef:
    id: int | None
    currency: str


@dataclass
class _CustomerRef:
    id: int | None
    currency: str


@dataclass
class _ItemRef:
    id: int | None
    customer: tuple[str, str]
    currency: str
    kind: str
    open_minor: int


@dataclass
class _Plan:
    """One kind's outcome of `check`: what to insert, update, leave, allocate."""

    kind: str
    create: list[Any] = field(default_factory=list)
    update: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    unchanged: list[Any] = field(default_factory=list)
    allocations: list[tuple[PaymentRecord, tuple[str, str]]] = field(default_factory=list)
    companies: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """company code -> business refs of its records, in order (for history)."""
    keys: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """id(record) -> business key of the record."""
    sources: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.create) + len(self.update) + len(self.unchanged)


class Changeset:
    """Records of any kinds, checked together against the database, then written together.

    Usage (inside or outside a transaction)::

        changes = Changeset(actor, company_code="ATL", source="items.csv")
        changes.add(records)
        problems = await changes.check()      # reads only
        if not problems:
            results = await changes.apply()   # {kind: UpsertResult}

    `check` and `apply` should run in the same `atomic()` block so nothing moves in
    between; `apply` refuses to run after a `check` that found problems. Records of one
    kind may refer to records of an earlier kind in the same changeset (a contact to a
    customer, a payment to an item).
    """

    def __init__(
        self,
        actor: Actor,
        *,
        company_code: str | None = None,
        source: str = "api",
        channel: str = "import",
    ):
        """`company_code` is the company of records that name none (and the only one they
        may name); `source` goes into history details; history events are of kind
        `{channel}.{kind}`."""
        self.actor = actor
        self.company_code = company_code
        self.source = source
        self.channel = channel
        self.records: dict[str, list[Record]] = {kind: [] for kind in KINDS}
        self.mentioned: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self._plans: dict[str, _Plan] | None = None
        self._companies: dict[str, _CompanyRef] = {}
        self._db_company_codes: list[str] = []
        self._customers: dict[tuple[str, str], _CustomerRef] = {}
        self._items: dict[tuple[str, str], _ItemRef] = {}
        self._staff: dict[str, int] | None = None
        self._company_presets: dict[str, dict[str, int]] = {}

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            self.records[kind_of(record)].append(record)
        self._plans = None

    def mention(self, kind: str, keys: Iterable[str]) -> None:
        """Declare business keys (customer refs, item numbers...) of rows that were refused
        before reaching here, so references to them are not reported a second time."""
        self.mentioned[kind].update(keys)

    # -- check ---------------------------------------------------------------------------

    async def check(
        self, progress: Progress | None = None, *, lock: bool = True
    ) -> list[FieldProblem]:
        """Every problem of every record against the database and the other records; reads
        only. Inside a transaction it first locks the accounts the records name (see
        `_lock_accounts`); `lock=False` for a check that will not be applied (a dry run)."""
        problems: list[FieldProblem] = []
        plans: dict[str, _Plan] = {}
        self._customers, self._items, self._staff = {}, {}, None
        self._company_presets = {}
        await self._load_companies()
        if lock:
            await self._lock_accounts()
        checkers: dict[str, Callable[..., Awaitable[None]]] = {
            "companies": self._check_companies,
            "customers": self._check_customers,
            "contacts": self._check_contacts,
            "items": self._check_items,
            "payments": self._check_payments,
        }
        for kind in KINDS:
            if progress:
                progress("check", KINDS.index(kind), len(KINDS))
            if kind == "customers" and self._unknown_company_code():
                # One problem, not one per row.
                problems.append(RowProblem("company", f"no company '{self.company_code}'"))
                break
            records = self.records[kind]
            if not records:
                continue
            plan = _Plan(kind, sources=sorted({r.source for r in records if r.source}))
            unique = self._dedupe(kind, records, problems)
            await checkers[kind](unique, plan, problems)
            plans[kind] = plan
        if progress:
            progress("check", len(KINDS), len(KINDS))
        self._plans = None if problems else plans
        return problems

    async def _lock_accounts(self) -> None:
        """Chain before rows: the history locks of every existing account the records name
        (by customer ref, or as the customer of a named invoice) and of their companies'
        chains (the import's summary events), before `check` reads and `apply` writes. An
        import then queues behind a webhook or a dunning batch on one of its accounts
        instead of deadlocking with it (receivables.history describes the order)."""
        if not is_postgres():
            return  # SQLite's write lock serialises writers already
        only = next(iter(self._companies)) if len(self._companies) == 1 else None
        refs: dict[str, set[str]] = defaultdict(set)
        numbers: dict[str, set[str]] = defaultdict(set)
        codes: set[str] = set()
        for records in self.records.values():
            for record in records:
                if isinstance(record, CompanyRecord):
                    codes.add(record.code)
                    continue
                code = record.company or self.company_code or only
                if code is None or self._companies.get(code) is None:
                    continue
                codes.add(code)
                if isinstance(record, CustomerRecord):
                    refs[code].add(record.ref)
                else:
                    refs[code].add(record.customer_ref)
                if isinstance(record, ItemRecord):
                    numbers[code].add(record.number)
                elif isinstance(record, PaymentRecord) and record.item_number:
                    numbers[code].add(record.item_number)
        accounts: set[int] = set()
        for code in codes:
            company_id = self._companies[code].id if code in self._companies else None
            if company_id is None:
                continue
            for chunk in _chunks(sorted(refs[code]), LOOKUP_BATCH):
                rows = await Customer.select(Customer.id).where(
                    (Customer.company == company_id) & Customer.ref.is_in(list(chunk))
                )
                accounts.update(r["id"] for r in rows)
            for chunk in _chunks(sorted(numbers[code]), LOOKUP_BATCH):
                rows = await Item.select(Item.customer).where(
                    (Item.company == company_id) & Item.number.is_in(list(chunk))
                )
                accounts.update(r["customer"] for r in rows)
        companies = [
            c.id for code, c in self._companies.items() if code in codes and c.id is not None
        ]
        await history.lock_accounts(accounts, company_wide=companies)

    def _unknown_company_code(self) -> bool:
        code = self.company_code
        return bool(
            code and code not in self._companies and code not in self.mentioned["companies"]
        )

    def _problem(self, record: Record, name: str, message: str) -> RowProblem:
        return RowProblem(name, message, record.line, record.source)

    def _key(self, kind: str, record: Any, code: str | None = None) -> tuple[str, ...]:
        if kind == "companies":
            return (record.code,)
        if kind == "contacts":
            return (code or "", record.customer_ref, record.email)
        if kind == "items":
            return (code or "", record.number)
        return (code or "", record.ref)

    def _dedupe(self, kind: str, records: list[Any], problems: list[FieldProblem]) -> list[Any]:
        first: dict[tuple[str, ...], Any] = {}
        out = []
        for record in records:
            code = None if kind == "companies" else (record.company or self.company_code or "")
            key = self._key(kind, record, code)
            if key in first:
                seen = first[key]
                where = f"line {seen.line}" if seen.line else "another record"
                if seen.source and seen.source != record.source:
                    where = f"{seen.source} {where}"
                problems.append(
                    self._problem(
                        record, _KEY_FIELD[kind], f"'{key[-1]}' appears twice (also {where})"
                    )
                )
                continue
            first[key] = record
            out.append(record)
        return out

    async def _load_companies(self) -> None:
        rows = await Company.select(Company.id, Company.code, Company.currency).order_by(Company.id)
        self._db_company_codes = [r["code"] for r in rows]
        self._companies = {r["code"]: _CompanyRef(r["id"], r["currency"]) for r in rows}

    def _company_for(self, record: Any, problems: list[FieldProblem]) -> str | None:
        """The code of the company a record belongs to, or None after reporting why not."""
        named = record.company
        if named and self.company_code and named != self.company_code:
            problems.append(
                self._problem(
                    record,
                    "company",
                    f"'{named}' is not {self.company_code}, the company of this import",
                )
            )
            return None
        code = named or self.company_code
        if code is None:
            known = sorted(self._companies)
            if len(known) == 1:
                return known[0]
            message = (
                "no company exists yet; import a companies file first"
                if not known
                else f"required: there are several companies ({', '.join(known)})"
            )
            problems.append(self._problem(record, "company", message))
            return None
        if code not in self._companies:
            if code not in self.mentioned["companies"]:
                problems.append(self._problem(record, "company", f"no company '{code}'"))
            return None
        return code

    async def _ensure_customers(self, code: str, refs: Iterable[str]) -> None:
        company = self._companies[code]
        missing = sorted({r for r in refs if (code, r) not in self._customers})
        if company.id is None or not missing:
            return
        for chunk in _chunks(missing, LOOKUP_BATCH):
            rows = await Customer.select(Customer.id, Customer.ref, Customer.currency).where(
                (Customer.company == company.id) & Customer.ref.is_in(list(chunk))
            )
            for r in rows:
                self._customers[(code, r["ref"])] = _CustomerRef(r["id"], r["currency"])

    async def _resolve(
        self,
        records: list[Any],
        problems: list[FieldProblem],
    ) -> list[tuple[Any, str]]:
        """(record, company code) for records whose company and customer_ref are known."""
        with_company = []
        refs: dict[str, set[str]] = defaultdict(set)
        for record in records:
            code = self._company_for(record, problems)
            if code is not None:
                with_company.append((record, code))
                refs[code].add(record.customer_ref)
        for code, wanted in refs.items():
            await self._ensure_customers(code, wanted)
        out = []
        for record, code in with_company:
            if (code, record.customer_ref) in self._customers:
                out.append((record, code))
            elif record.customer_ref not in self.mentioned["customers"]:
                problems.append(
                    self._problem(
                        record,
                        "customer_ref",
                        f"no customer '{record.customer_ref}' in {code} (nor in this import)",
                    )
                )
        return out

    async def _check_companies(
        self, records: list[CompanyRecord], plan: _Plan, problems: list[FieldProblem]
    ) -> None:
        codes = [r.code for r in records]
        existing = {
            hit["code"]: hit
            for chunk in _chunks(codes, LOOKUP_BATCH)
            for hit in await Company.select().where(Company.code.is_in(list(chunk)))
        }
        managed = [n for n in FIELDS["companies"] if n != "code"]
        for record in records:
            plan.keys[id(record)] = (record.code,)
            plan.companies[record.code].append(record.code)
            row = existing.get(record.code)
            carried = {n: getattr(record, n) for n in managed if _carries(record, n)}
            if row is None:
                plan.create.append(record)
                self._companies[record.code] = _CompanyRef(None, record.currency)
                self._company_presets[record.code] = _preset_values(
                    record.penalty_policy, record.currency
                )
                continue
            changes = {n: v for n, v in carried.items() if row[n] != v}
            if "penalty_policy" in changes:
                # A new policy brings its preset's margin and compensation; the same policy
                # sent again leaves the values an admin may have adjusted alone.
                currency = carried.get("currency", row["currency"])
                changes.update(_preset_values(record.penalty_policy, currency))
            if "currency" in changes and await self._company_has_money(row["id"]):
                problems.append(
                    self._problem(
                        record,
                        "currency",
                        f"{record.code} already has items or payments in {row['currency']}; "
                        "its currency stays",
                    )
                )
                continue
            self._companies[record.code].currency = carried.get("currency", row["currency"])
            if changes:
                plan.update.append((record, {"id": row["id"], **changes}))
            else:
                plan.unchanged.append(record)

    async def _company_has_money(self, company_id: int) -> bool:
        return bool(await Item.exists().where(Item.company == company_id)) or bool(
            await Payment.exists().where(Payment.company == company_id)
        )

    async def _staff_ids(self) -> dict[str, int]:
        if self._staff is None:
            rows = await StaffUser.select(StaffUser.id, StaffUser.email)
            self._staff = {r["email"].lower(): r["id"] for r in rows}
        return self._staff

    async def _check_customers(
        self, records: list[CustomerRecord], plan: _Plan, problems: list[FieldProblem]
    ) -> None:
        staff = await self._staff_ids()
        placed = [(r, code) for r in records if (code := self._company_for(r, problems))]
        existing: dict[tuple[str, str], dict[str, Any]] = {}
        by_company: dict[str, list[str]] = defaultdict(list)
        for record, code in placed:
            by_company[code].append(record.ref)
        for code, refs in by_company.items():
            company_id = self._companies[code].id
            if company_id is None:
                continue
            for chunk in _chunks(refs, LOOKUP_BATCH):
                for hit in await Customer.select().where(
                    (Customer.company == company_id) & Customer.ref.is_in(list(chunk))
                ):
                    existing[(code, hit["ref"])] = hit
        for record, code in placed:
            key = (code, record.ref)
            row = existing.get(key)
            values: dict[str, Any] = {}
            bad = False
            for name in ("name", "address", "country", "payer_profile", "language"):
                if row is None or _carries(record, name):
                    values[name] = getattr(record, name)
            currency = record.currency if _carries(record, "currency") else None
            if currency is None:
                currency = row["currency"] if row is not None else self._companies[code].currency
            if row is None or _carries(record, "currency"):
                values["currency"] = currency
            if row is None or _carries(record, "credit_limit"):
                try:
                    values["credit_limit_minor"] = (
                        None
                        if record.credit_limit is None
                        else exact_minor(record.credit_limit, currency)
                    )
                except ValueError as exc:
                    problems.append(self._problem(record, "credit_limit", str(exc)))
                    bad = True
            if row is None or _carries(record, "collector_email"):
                if not record.collector_email:
                    values["collector"] = None
                elif record.collector_email in staff:
                    values["collector"] = staff[record.collector_email]
                else:
                    problems.append(
                        self._problem(
                            record,
                            "collector_email",
                            f"no staff user '{record.collector_email}' (create the user first)",
                        )
                    )
                    bad = True
            if bad:
                continue
            plan.keys[id(record)] = key
            plan.companies[code].append(record.ref)
            if row is None:
                self._customers[key] = _CustomerRef(None, currency)
                plan.create.append((record, code, values))
                continue
            self._customers[key] = _CustomerRef(row["id"], currency)
            changes = {n: v for n, v in values.items() if row[n] != v}
            if changes:
                plan.update.append(((record, code), {**row, **changes}))
            else:
                plan.unchanged.append(record)

    async def _check_contacts(
        self, records: list[ContactRecord], plan: _Plan, problems: list[FieldProblem]
    ) -> None:
        placed = await self._resolve(records, problems)
        customer_ids = sorted(
            {
                cid
                for r, code in placed
                if (cid := self._customers[(code, r.customer_ref)].id) is not None
            }
        )
        existing: dict[tuple[int, str], dict[str, Any]] = {}
        for chunk in _chunks(customer_ids, LOOKUP_BATCH):
            for hit in await Contact.select().where(Contact.customer.is_in(list(chunk))):
                existing[(hit["customer"], hit["email"].lower())] = hit
        managed = ("name", "phone", "role", "language", "receives_reminders", "ext_ref")
        for record, code in placed:
            customer_id = self._customers[(code, record.customer_ref)].id
            row = existing.get((customer_id, record.email)) if customer_id else None
            values = {n: getattr(record, n) for n in managed if row is None or _carries(record, n)}
            if "ext_ref" in values:
                values["ext_ref"] = values["ext_ref"] or None
            plan.keys[id(record)] = (code, record.customer_ref, record.email)
            plan.companies[code].append(f"{record.customer_ref}/{record.email}")
            if row is None:
                plan.create.append((record, code, values))
                continue
            changes = {n: v for n, v in values.items() if row[n] != v}
            if row["email"] != record.email:
                changes["email"] = record.email
            if changes:
                plan.update.append(((record, code), {**row, **changes}))
            else:
                plan.unchanged.append(record)

    async def _allocated(self, item_ids: Sequence[int]) -> dict[int, int]:
        """Sum of active allocations per item; for a credit note, what it gave to invoices
        through its carrier payment (receivables.ledger.cash_application)."""
        out: dict[int, int] = {}
        for chunk in _chunks(sorted(item_ids), LOOKUP_BATCH):
            rows = await Allocation.select(Allocation.item, Allocation.amount_minor).where(
                Allocation.item.is_in(list(chunk)) & Allocation.reversed_at.is_null()
            )
            for r in rows:
                out[r["item"]] = out.get(r["item"], 0) + r["amount_minor"]
            for r in await Payment.select(Payment.credit_note, Payment.amount_minor).where(
                Payment.credit_note.is_in(list(chunk))
                & (Payment.method == Payment.Method.credit_note.value)
            ):
                out[r["credit_note"]] = out.get(r["credit_note"], 0) + r["amount_minor"]
        return out

    async def _check_items(
        self, records: list[ItemRecord], plan: _Plan, problems: list[FieldProblem]
    ) -> None:
        placed = await self._resolve(records, problems)
        existing: dict[tuple[str, str], dict[str, Any]] = {}
        by_company: dict[str, list[str]] = defaultdict(list)
        for record, code in placed:
            by_company[code].append(record.number)
        columns = (
            Item.id,
            Item.customer,
            Item.kind,
            Item.issue_date,
            Item.due_date,
            Item.currency,
            Item.total_minor,
            Item.open_minor,
            Item.po_number,
            Item.status,
            Item.number,
        )
        for code, numbers in by_company.items():
            company_id = self._companies[code].id
            if company_id is None:
                continue
            for chunk in _chunks(numbers, LOOKUP_BATCH):
                for hit in await Item.select(*columns).where(
                    (Item.company == company_id) & Item.number.is_in(list(chunk))
                ):
                    existing[(code, hit["number"])] = hit
        pending: list[tuple[ItemRecord, str, dict[str, Any], dict[str, Any]]] = []
        for record, code in placed:
            key = (code, record.number)
            customer = self._customers[(code, record.customer_ref)]
            try:
                total_minor = exact_minor(record.total, record.currency)
            except ValueError as exc:
                problems.append(self._problem(record, "total", str(exc)))
                continue
            row = existing.get(key)
            values: dict[str, Any] = {
                "customer": customer.id,
                "currency": record.currency,
                "total_minor": total_minor,
                "issue_date": record.issue_date,
                "due_date": record.due_date,
            }
            for name in ("kind", "po_number"):
                if row is None or _carries(record, name):
                    values[name] = getattr(record, name)
            plan.keys[id(record)] = key
            plan.companies[code].append(record.number)
            if row is None:
                self._items[key] = _ItemRef(
                    None, (code, record.customer_ref), record.currency, values["kind"], total_minor
                )
                plan.create.append((record, code, values))
                continue
            changes = {n: v for n, v in values.items() if row[n] != v}
            pending.append((record, code, row, changes))
        money_moves = [
            row["id"]
            for _, _, row, changes in pending
            if changes.keys() & {"customer", "currency", "total_minor", "kind"}
        ]
        allocated = await self._allocated(money_moves) if money_moves else {}
        for record, code, row, changes in pending:
            key = (code, record.number)
            taken = allocated.get(row["id"], 0)
            refused = False
            if taken:
                held = Money.from_minor(taken, row["currency"])
                for name, column in (
                    ("customer_ref", "customer"),
                    ("currency", "currency"),
                    ("kind", "kind"),
                ):
                    if column in changes:
                        problems.append(
                            self._problem(
                                record,
                                name,
                                f"{record.number} already has {held} of payments allocated; "
                                f"its {name} cannot change",
                            )
                        )
                        refused = True
                if "total_minor" in changes and not refused and changes["total_minor"] < taken:
                    problems.append(
                        self._problem(
                            record,
                            "total",
                            f"{record.total} is less than the {held} already allocated to "
                            f"{record.number}",
                        )
                    )
                    refused = True
            if refused:
                continue
            open_minor = row["open_minor"]
            status = row["status"]
            if "total_minor" in changes:
                open_minor = changes["total_minor"] - taken
                if open_minor == 0 and taken:
                    status = ItemStatus.paid.value
                elif status == ItemStatus.paid.value and open_minor > 0:
                    status = ItemStatus.open.value
            self._items[key] = _ItemRef(
                row["id"],
                (code, record.customer_ref),
                record.currency,
                changes.get("kind", row["kind"]),
                open_minor,
            )
            if changes:
                merged = {**row, **changes, "open_minor": open_minor, "status": status}
                plan.update.append(((record, code), {"old": row, "new": merged}))
            else:
                plan.unchanged.append(record)

    async def _ensure_items(self, code: str, numbers: Iterable[str]) -> None:
        company_id = self._companies[code].id
        missing = sorted({n for n in numbers if (code, n) not in self._items})
        if company_id is None or not missing:
            return
        for chunk in _chunks(missing, LOOKUP_BATCH):
            rows = await Item.select(
                Item.id, Item.number, Item.customer.ref, Item.currency, Item.kind, Item.open_minor
            ).where((Item.company == company_id) & Item.number.is_in(list(chunk)))
            for r in rows:
                self._items[(code, r["number"])] = _ItemRef(
                    r["id"], (code, r["customer.ref"]), r["currency"], r["kind"], r["open_minor"]
                )

    async def _check_payments(
        self, records: list[PaymentRecord], plan: _Plan, problems: list[FieldProblem]
    ) -> None:
        placed = await self._resolve(records, problems)
        by_company: dict[str, list[PaymentRecord]] = defaultdict(list)
        for record, code in placed:
            by_company[code].append(record)
        existing: dict[tuple[str, str], dict[str, Any]] = {}
        for code, recs in by_company.items():
            await self._ensure_items(code, [r.item_number for r in recs if r.item_number])
            company_id = self._companies[code].id
            if company_id is None:
                continue
            for chunk in _chunks([r.ref for r in recs], LOOKUP_BATCH):
                for hit in await Payment.select(
                    Payment.id,
                    Payment.ref,
                    Payment.customer,
                    Payment.customer.ref,
                    Payment.received_on,
                    Payment.method,
                    Payment.currency,
                    Payment.amount_minor,
                    Payment.unapplied_minor,
                ).where((Payment.company == company_id) & Payment.ref.is_in(list(chunk))):
                    existing[(code, hit["ref"])] = hit
        applied: set[tuple[int, int]] = set()
        payment_ids = [row["id"] for row in existing.values()]
        for chunk in _chunks(payment_ids, LOOKUP_BATCH):
            for r in await Allocation.select(Allocation.payment, Allocation.item).where(
                Allocation.payment.is_in(list(chunk)) & Allocation.reversed_at.is_null()
            ):
                applied.add((r["payment"], r["item"]))
        for record, code in placed:
            key = (code, record.ref)
            customer = self._customers[(code, record.customer_ref)]
            currency = record.currency or customer.currency
            try:
                amount_minor = exact_minor(record.amount, currency)
            except ValueError as exc:
                problems.append(self._problem(record, "amount", str(exc)))
                continue
            row = existing.get(key)
            if row is not None:
                facts = []
                if row["customer.ref"] != record.customer_ref:
                    facts.append(("customer_ref", f"customer {row['customer.ref']}"))
                if row["currency"] != currency:
                    facts.append(("currency", f"currency {row['currency']}"))
                elif row["amount_minor"] != amount_minor:
                    facts.append(("amount", f"amount {from_minor(row['amount_minor'], currency)}"))
                for name, was in facts:
                    problems.append(
                        self._problem(
                            record,
                            name,
                            f"payment {record.ref} is already recorded with {was}; a payment "
                            "received does not change (record a new one, or reverse it)",
                        )
                    )
                if facts:
                    continue
            allocate_to: tuple[str, str] | None = None
            if record.item_number:
                item_key = (code, record.item_number)
                item = self._items.get(item_key)
                message = None
                if item is None:
                    if record.item_number not in self.mentioned["items"]:
                        message = f"no item '{record.item_number}' in {code} (nor in this import)"
                    else:
                        continue
                elif item.kind != ItemKind.invoice.value:
                    message = f"{record.item_number} is a credit note; payments go to invoices"
                elif item.customer != (code, record.customer_ref):
                    message = (
                        f"{record.item_number} belongs to customer {item.customer[1]}, "
                        f"not {record.customer_ref}"
                    )
                elif item.currency != currency:
                    message = (
                        f"{record.item_number} is in {item.currency}, the payment in {currency}"
                    )
                elif row is not None and item.id is not None and (row["id"], item.id) in applied:
                    pass  # already allocated there by an earlier import
                elif row is not None and row["unapplied_minor"] < amount_minor:
                    message = (
                        f"payment {record.ref} is already applied to other items; "
                        "move it in the back office (Finance > Cash application)"
                    )
                elif item.open_minor < amount_minor:
                    message = (
                        f"{record.item_number} has only "
                        f"{from_minor(item.open_minor, currency)} {currency} open"
                    )
                else:
                    allocate_to = item_key
                    item.open_minor -= amount_minor
                if message:
                    problems.append(self._problem(record, "item_number", message))
                    continue
            plan.keys[id(record)] = key
            plan.companies[code].append(record.ref)
            if allocate_to:
                plan.allocations.append((record, allocate_to))
            values = {"received_on": record.received_on, "method": record.method}
            if row is None:
                values.update(customer=customer, currency=currency, amount_minor=amount_minor)
                plan.create.append((record, code, values))
                continue
            changes = {n: v for n, v in values.items() if _carries(record, n) and row[n] != v}
            if changes:
                plan.update.append(((record, code), {**row, **changes}))
            elif allocate_to:
                plan.update.append(((record, code), dict(row)))  # only gains an allocation
            else:
                plan.unchanged.append(record)

    # -- apply ---------------------------------------------------------------------------

    async def apply(self, progress: Progress | None = None) -> dict[str, UpsertResult]:
        """Write what `check` planned, in kind order, in one transaction; one history event
        per kind and company. Call `check` first (and get no problems)."""
        if self._plans is None:
            problems = await self.check()
            if problems:
                raise InvalidInput(problems)
        plans = self._plans
        assert plans is not None
        results: dict[str, UpsertResult] = {}
        writers = {
            "companies": self._write_companies,
            "customers": self._write_customers,
            "contacts": self._write_contacts,
            "items": self._write_items,
            "payments": self._write_payments,
        }
        async with atomic():
            for kind in KINDS:
                plan = plans.get(kind)
                if plan is None:
                    continue
                ids: dict[tuple[str, ...], int] = {}

                def tick(done: int, kind: str = kind, plan: _Plan = plan) -> None:
                    if progress:
                        progress(kind, done, plan.size)

                tick(len(plan.unchanged))
                await writers[kind](plan, ids, tick)
                await self._record(plan, ids)
                results[kind] = UpsertResult(
                    len(plan.create), len(plan.update), len(plan.unchanged), ids
                )
        self._plans = None
        return results

    async def _record(self, plan: _Plan, ids: dict[tuple[str, ...], int]) -> None:
        single = plan.size == 1
        record = (plan.create or [u[0] for u in plan.update] or plan.unchanged)[0]
        if isinstance(record, tuple):
            record = record[0]
        key = plan.keys.get(id(record))
        for code, refs in plan.companies.items():
            company_id = self._companies[code].id
            assert company_id is not None
            counts = {
                "created": sum(1 for r in plan.create if self._code_of(plan, r) == code),
                "updated": sum(1 for r in plan.update if self._code_of(plan, r[0]) == code),
                "unchanged": sum(1 for r in plan.unchanged if self._code_of(plan, r) == code),
            }
            customer_id = item_id = None
            if single and key is not None:
                if plan.kind == "customers":
                    customer_id = ids.get(key)
                elif plan.kind == "items":
                    item_id = ids.get(key)
                    customer_id = self._customers[(code, record.customer_ref)].id
                elif plan.kind in ("contacts", "payments"):
                    customer_id = self._customers[(code, record.customer_ref)].id
                    if plan.kind == "payments" and record.item_number:
                        item_ref = self._items.get((code, record.item_number))
                        item_id = item_ref.id if item_ref else None
            await history.record(
                company_id=company_id,
                actor=self.actor,
                kind=f"{self.channel}.{plan.kind}",
                customer_id=customer_id,
                item_id=item_id,
                details={
                    "source": ", ".join(plan.sources) or self.source,
                    **counts,
                    "refs": refs[:MAX_REFS_IN_HISTORY],
                    "more_refs": max(0, len(refs) - MAX_REFS_IN_HISTORY),
                },
            )

    def _code_of(self, plan: _Plan, entry: Any) -> str:
        record = entry[0] if isinstance(entry, tuple) else entry
        key = plan.keys[id(record)]
        return key[0]

    async def _write_companies(
        self, plan: _Plan, ids: dict[tuple[str, ...], int], tick: Callable[[int], None]
    ) -> None:
        # A handful of rows: plain ORM.
        for record in plan.create:
            values = {n: getattr(record, n) for n in FIELDS["companies"]}
            values.update(self._company_presets.get(record.code, {}))
            rows = await Company.insert(Company(**values)).returning(Company.id)
            self._companies[record.code].id = rows[0]["id"]
            ids[(record.code,)] = rows[0]["id"]
        for record, changes in plan.update:
            company_id = changes.pop("id")
            update: dict[Column | str, Any] = {k: v for k, v in changes.items()}
            await Company.update(update).where(Company.id == company_id)
            ids[(record.code,)] = company_id
        for record in plan.unchanged:
            ids[(record.code,)] = self._companies[record.code].id  # type: ignore[assignment]
        tick(plan.size)

    async def _write_customers(
        self, plan: _Plan, ids: dict[tuple[str, ...], int], tick: Callable[[int], None]
    ) -> None:
        now = datetime.now(UTC)
        columns = [
            "company",
            "ref",
            "name",
            "address",
            "country",
            "payer_profile",
            "language",
            "collector",
            "blocked",
            "blocked_reason",
            "credit_limit_minor",
            "currency",
            "created_at",
            "updated_at",
        ]
        done = len(plan.unchanged)
        for chunk in _chunks(plan.create, BATCH):
            rows = []
            for record, code, v in chunk:
                rows.append(
                    (
                        self._companies[code].id,
                        record.ref,
                        v["name"],
                        v["address"],
                        v["country"],
                        v["payer_profile"],
                        v["language"],
                        v["collector"],
                        False,
                        "",
                        v["credit_limit_minor"],
                        v["currency"],
                        now,
                        now,
                    )
                )
            new = await _insert_many(Customer, columns, rows, key=("company", "ref"))
            for record, code, _ in chunk:
                customer_id = new[(self._companies[code].id, record.ref)]
                self._customers[(code, record.ref)].id = customer_id
                ids[(code, record.ref)] = customer_id
            done += len(chunk)
            tick(done)
        managed = [
            "name",
            "address",
            "country",
            "payer_profile",
            "language",
            "collector",
            "credit_limit_minor",
            "currency",
            "updated_at",
        ]
        for chunk in _chunks(plan.update, BATCH):
            rows = [
                (row["id"], *(now if c == "updated_at" else row[c] for c in managed))
                for _, row in chunk
            ]
            await _update_many(Customer, managed, rows)
            for (record, code), row in chunk:
                ids[(code, record.ref)] = row["id"]
            done += len(chunk)
            tick(done)
        for record in plan.unchanged:
            key = plan.keys[id(record)]
            ids[key] = self._customers[key].id  # type: ignore[index,assignment]

    async def _write_contacts(
        self, plan: _Plan, ids: dict[tuple[str, ...], int], tick: Callable[[int], None]
    ) -> None:
        columns = [
            "customer",
            "ext_ref",
            "name",
            "email",
            "phone",
            "role",
            "language",
            "receives_reminders",
        ]
        done = len(plan.unchanged)
        for chunk in _chunks(plan.create, BATCH):
            rows = []
            for record, code, v in chunk:
                customer_id = self._customers[(code, record.customer_ref)].id
                rows.append(
                    (
                        customer_id,
                        v["ext_ref"],
                        v["name"],
                        record.email,
                        v["phone"],
                        v["role"],
                        v["language"],
                        v["receives_reminders"],
                    )
                )
            new = await _insert_many(Contact, columns, rows, key=("customer", "email"))
            for record, code, _ in chunk:
                customer_id = self._customers[(code, record.customer_ref)].id
                ids[(code, record.customer_ref, record.email)] = new[(customer_id, record.email)]
            done += len(chunk)
            tick(done)
        managed = columns[1:]
        for chunk in _chunks(plan.update, BATCH):
            await _update_many(
                Contact, managed, [(row["id"], *(row[c] for c in managed)) for _, row in chunk]
            )
            for (record, code), row in chunk:
                ids[(code, record.customer_ref, record.email)] = row["id"]
            done += len(chunk)
            tick(done)
        if plan.unchanged:
            await self._contact_ids(plan, ids)

    async def _contact_ids(self, plan: _Plan, ids: dict[tuple[str, ...], int]) -> None:
        wanted = {
            (self._customers[(k[0], k[1])].id, k[2]): k
            for k in (plan.keys[id(r)] for r in plan.unchanged)
        }
        customer_ids = sorted({c for c, _ in wanted if c is not None})
        for chunk in _chunks(customer_ids, LOOKUP_BATCH):
            for row in await Contact.select(Contact.id, Contact.customer, Contact.email).where(
                Contact.customer.is_in(list(chunk))
            ):
                key = wanted.get((row["customer"], row["email"].lower()))
                if key is not None:
                    ids[key] = row["id"]

    async def _write_items(
        self, plan: _Plan, ids: dict[tuple[str, ...], int], tick: Callable[[int], None]
    ) -> None:
        now = datetime.now(UTC)
        columns = [
            "company",
            "customer",
            "kind",
            "number",
            "issue_date",
            "due_date",
            "currency",
            "total_minor",
            "open_minor",
            "po_number",
            "pdf_path",
            "status",
            "promise_date",
            "dispute_reason",
            "comment",
            "created_at",
            "updated_at",
        ]
        done = len(plan.unchanged)
        for chunk in _chunks(plan.create, BATCH):
            rows = []
            for record, code, v in chunk:
                customer_id = self._customers[(code, record.customer_ref)].id
                rows.append(
                    (
                        self._companies[code].id,
                        customer_id,
                        v["kind"],
                        record.number,
                        record.issue_date,
                        record.due_date,
                        record.currency,
                        v["total_minor"],
                        v["total_minor"],
                        v["po_number"],
                        "",
                        ItemStatus.open.value,
                        None,
                        "",
                        "",
                        now,
                        now,
                    )
                )
            new = await _insert_many(Item, columns, rows, key=("company", "number"))
            for record, code, _ in chunk:
                item_id = new[(self._companies[code].id, record.number)]
                self._items[(code, record.number)].id = item_id
                ids[(code, record.number)] = item_id
            done += len(chunk)
            tick(done)
        managed = [
            "customer",
            "kind",
            "issue_date",
            "due_date",
            "currency",
            "total_minor",
            "open_minor",
            "po_number",
            "status",
            "updated_at",
        ]
        for chunk in _chunks(plan.update, BATCH):
            rows = []
            for (record, code), change in chunk:
                new_row, old = change["new"], change["old"]
                new_row["customer"] = self._customers[(code, record.customer_ref)].id
                new_row["updated_at"] = now
                rows.append(
                    (
                        old["id"],
                        *(new_row[c] for c in managed),
                        old["total_minor"],
                        old["open_minor"],
                    )
                )
            updated = await _update_many(Item, managed, rows, guard=("total_minor", "open_minor"))
            if updated != len(rows):
                raise Conflict(
                    f"{len(rows) - updated} item{'s' if len(rows) - updated != 1 else ''} "
                    "received payments while this import ran; "
                    "nothing was written, run it again"
                )
            for (record, code), change in chunk:
                ids[(code, record.number)] = change["old"]["id"]
            done += len(chunk)
            tick(done)
        for record in plan.unchanged:
            key = plan.keys[id(record)]
            ids[key] = self._items[key].id  # type: ignore[index,assignment]

    async def _write_payments(
        self, plan: _Plan, ids: dict[tuple[str, ...], int], tick: Callable[[int], None]
    ) -> None:
        now = datetime.now(UTC)
        columns = [
            "company",
            "customer",
            "ref",
            "received_on",
            "method",
            "currency",
            "amount_minor",
            "unapplied_minor",
            "created_at",
        ]
        done = len(plan.unchanged)
        for chunk in _chunks(plan.create, BATCH):
            rows = []
            for record, code, v in chunk:
                rows.append(
                    (
                        self._companies[code].id,
                        v["customer"].id,
                        record.ref,
                        v["received_on"],
                        v["method"],
                        v["currency"],
                        v["amount_minor"],
                        v["amount_minor"],
                        now,
                    )
                )
            new = await _insert_many(Payment, columns, rows, key=("company", "ref"))
            for record, code, _ in chunk:
                ids[(code, record.ref)] = new[(self._companies[code].id, record.ref)]
            done += len(chunk)
            tick(done)
        managed = ["received_on", "method"]
        for chunk in _chunks(plan.update, BATCH):
            await _update_many(
                Payment, managed, [(row["id"], *(row[c] for c in managed)) for _, row in chunk]
            )
            for (record, code), row in chunk:
                ids[(code, record.ref)] = row["id"]
            done += len(chunk)
            tick(done)
        if plan.unchanged:
            for code, records in _group(plan.unchanged, lambda r: plan.keys[id(r)][0]).items():
                company_id = self._companies[code].id
                for chunk in _chunks([r.ref for r in records], LOOKUP_BATCH):
                    for row in await Payment.select(Payment.id, Payment.ref).where(
                        (Payment.company == company_id) & Payment.ref.is_in(list(chunk))
                    ):
                        ids[(code, row["ref"])] = row["id"]
        for record, item_key in plan.allocations:
            payment_id = ids[plan.keys[id(record)]]
            item_id = self._items[item_key].id
            assert item_id is not None
            currency = (
                record.currency or self._customers[(item_key[0], record.customer_ref)].currency
            )
            try:
                await allocate(payment_id, item_id, Money(record.amount, currency), self.actor)
            except AllocationRefused as exc:
                raise InvalidInput(
                    [RowProblem("item_number", str(exc), record.line, record.source)]
                ) from None


def _preset_values(policy: str, currency: str) -> dict[str, int]:
    """The margin and compensation a penalty policy's preset sets (eu, france, uk), like
    the back office's preset button; {} for a policy without one (none, fixed)."""
    # The presets live beside the reference rates they follow (dunning); read at call time
    # so the ledger does not load the dunning package for every import.
    from receivables.dunning.reference_rates import PRESETS

    preset = PRESETS.get(policy)
    if preset is None:
        return {}
    return {
        "penalty_margin_bp": preset.margin_bp,
        "compensation_minor": to_minor(preset.compensation, currency),
    }


def _group(records: Iterable[Any], key: Callable[[Any], str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        out[key(record)].append(record)
    return out


# --------------------------------------------------------------------------------------
# One kind at a time (the API)


async def upsert(
    kind: str,
    records: Sequence[Record],
    actor: Actor,
    *,
    company_code: str | None = None,
    source: str = "api",
    channel: str = "api",
) -> UpsertResult:
    """Check then write `records` of one kind in one transaction (joining the caller's).

    Raises InvalidInput listing every problem (nothing written). A record without a company
    goes to `company_code`, or to the only company there is. One history event
    `{channel}.{kind}` per company, with customer_id/item_id set when there is one record.
    """
    for record in records:
        if kind_of(record) != kind:
            raise TypeError(f"upsert of {kind} given a {type(record).__name__}")
    changes = Changeset(actor, company_code=company_code, source=source, channel=channel)
    changes.add(records)
    if not records:
        return UpsertResult()
    async with atomic():
        problems = await changes.check()
        if problems:
            raise InvalidInput(problems)
        return (await changes.apply())[kind]


async def upsert_companies(
    records: Sequence[CompanyRecord], actor: Actor, *, source: str = "api", channel: str = "api"
) -> UpsertResult:
    """Create or update companies by code."""
    return await upsert("companies", records, actor, source=source, channel=channel)


async def upsert_customers(
    records: Sequence[CustomerRecord],
    actor: Actor,
    *,
    company_code: str | None = None,
    source: str = "api",
    channel: str = "api",
) -> UpsertResult:
    """Create or update customers by (company, ref)."""
    return await upsert(
        "customers", records, actor, company_code=company_code, source=source, channel=channel
    )


async def upsert_contacts(
    records: Sequence[ContactRecord],
    actor: Actor,
    *,
    company_code: str | None = None,
    source: str = "api",
    channel: str = "api",
) -> UpsertResult:
    """Create or update contacts by (customer, email)."""
    return await upsert(
        "contacts", records, actor, company_code=company_code, source=source, channel=channel
    )


async def upsert_items(
    records: Sequence[ItemRecord],
    actor: Actor,
    *,
    company_code: str | None = None,
    source: str = "api",
    channel: str = "api",
) -> UpsertResult:
    """Create or update invoices and credit notes by (company, number).

    A new item is fully open. A changed total keeps `open_minor = total - active
    allocations`; a total below what is allocated, or a new customer, currency or kind for
    an item with allocations, is refused.
    """
    return await upsert(
        "items", records, actor, company_code=company_code, source=source, channel=channel
    )


async def upsert_payments(
    records: Sequence[PaymentRecord],
    actor: Actor,
    *,
    company_code: str | None = None,
    source: str = "api",
    channel: str = "api",
) -> UpsertResult:
    """Record payments by (company, ref); with `item_number`, allocate the whole amount.

    Payments are facts: the same ref with another amount, currency or customer is refused;
    only `received_on` and `method` may be corrected.
    """
    return await upsert(
        "payments", records, actor, company_code=company_code, source=source, channel=channel
    )


__all__ = [
    "FIELDS",
    "KINDS",
    "RECORD_TYPES",
    "REQUIRED",
    "Changeset",
    "CompanyRecord",
    "ContactRecord",
    "CustomerRecord",
    "ItemRecord",
    "ParsedRows",
    "PaymentRecord",
    "Progress",
    "Record",
    "RowProblem",
    "UpsertResult",
    "clean_text",
    "exact_minor",
    "fold",
    "kind_of",
    "parse_bic",
    "parse_choice",
    "parse_company",
    "parse_contact",
    "parse_country",
    "parse_currency",
    "parse_customer",
    "parse_date",
    "parse_email",
    "parse_flag",
    "parse_iban",
    "parse_item",
    "parse_locale",
    "parse_money",
    "parse_payment",
    "parse_record",
    "parse_rows",
    "try_parse",
    "upsert",
    "upsert_companies",
    "upsert_contacts",
    "upsert_customers",
    "upsert_items",
    "upsert_payments",
]
