"""Bank statement files: CSV with a documented column mapping, and ISO 20022 CAMT.053 XML.

Both give the same entries: booking date, signed amount and currency, counterparty, the
remittance text the payer typed, and the bank's own reference when there is one. A bad row
stops the whole file with every problem named (nothing half-imported).

CSV columns are recognised by their header, whatever the case, accents or spacing (the
first matching column wins); see docs/PAYMENTS.md for the table:

    booking_date (or date, booked, date_comptable)         required
    amount (or montant), signed, credits positive          or credit / debit columns
    currency (or devise)                                    default: the account's
    reference (or remittance, description, libelle, details, communication)
    counterparty (or name, payer, debtor, donneur_d_ordre)
    counterparty_iban (or iban)
    value_date (or date_de_valeur)
    bank_ref (or transaction_id, id, reference_bancaire)    makes re-imports harmless

Amounts are read as the file's locale or decimal separator says when the caller knows it,
else only when they have one reading; a bad amount names its line, column and value.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree

from receivables.errors import FieldProblem, InvalidInput
from receivables.money import (
    AmountFormat,
    MoneyError,
    check_currency,
    parse_plain_amount,
    to_minor,
)

HEADERS = {
    "booking_date": (
        "booking_date",
        "date",
        "booked",
        "booked_on",
        "date_comptable",
        "date_operation",
    ),
    "value_date": ("value_date", "date_de_valeur", "date_valeur"),
    "amount": ("amount", "montant"),
    "credit": ("credit",),
    "debit": ("debit",),
    "currency": ("currency", "devise", "ccy"),
    "reference": (
        "reference",
        "remittance",
        "remittance_information",
        "description",
        "libelle",
        "details",
        "communication",
    ),
    "counterparty": ("counterparty", "name", "payer", "debtor", "donneur_d_ordre"),
    "counterparty_iban": ("counterparty_iban", "iban", "payer_iban", "debtor_iban"),
    "bank_ref": ("bank_ref", "transaction_id", "id", "reference_bancaire", "bank_reference"),
}
MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class BankEntry:
    line_no: int
    booked_on: date
    value_date: date | None
    currency: str
    amount_minor: int
    """Signed: credits are positive."""
    counterparty: str
    counterparty_iban: str
    reference: str
    bank_ref: str


@dataclass(frozen=True)
class StatementFile:
    format: str
    account: str
    entries: list[BankEntry]


def parse_statement(
    content: bytes, default_currency: str, amounts: AmountFormat | None = None
) -> StatementFile:
    """Read a CSV or CAMT.053 file (told apart by its content).

    `amounts`: how the CSV writes amounts (the bank's locale or decimal separator); without
    it only spellings with one reading are taken ("1 234,56", "1,234.56", "-30.00") and
    "1,000" is refused with both readings. CAMT amounts are always "1234.56" (ISO 20022).
    """
    if len(content) > MAX_BYTES:
        raise InvalidInput.one("file", "the file is larger than 20 MiB")
    head = content[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return parse_camt053(content)
    return parse_csv(content, default_currency, amounts)


def _key(header: str) -> str:
    text = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def _date(text: str) -> date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"'{text}' is not a date (YYYY-MM-DD or DD/MM/YYYY)")


def parse_csv(
    content: bytes, default_currency: str, amounts: AmountFormat | None = None
) -> StatementFile:
    reading = amounts or AmountFormat()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("cp1252")
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows = list(reader)
    if not rows:
        raise InvalidInput.one("file", "the file is empty")
    keys = [_key(h) for h in rows[0]]
    column: dict[str, int] = {}
    for field, names in HEADERS.items():
        for name in names:
            if name in keys:
                column[field] = keys.index(name)
                break
    problems = []
    if "booking_date" not in column:
        problems.append(FieldProblem("booking_date", "no column for the booking date (date)"))
    if "amount" not in column and not ("credit" in column or "debit" in column):
        problems.append(FieldProblem("amount", "no amount column (amount, or credit and debit)"))
    if problems:
        raise InvalidInput(problems)

    def cell(row: list[str], field: str) -> str:
        index = column.get(field)
        return row[index].strip() if index is not None and index < len(row) else ""

    entries = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        try:
            currency = check_currency(cell(row, "currency") or default_currency)
        except MoneyError as exc:
            problems.append(FieldProblem("currency", str(exc), number))
            continue
        try:
            booked = _date(cell(row, "booking_date"))
            value = _date(cell(row, "value_date")) if cell(row, "value_date") else None
        except ValueError as exc:
            problems.append(FieldProblem("booking_date", str(exc), number))
            continue
        try:
            if "amount" in column:
                field = "amount"
                amount = reading.parse(cell(row, "amount"), currency)
            else:
                credit = cell(row, "credit")
                field = "credit" if credit else "debit"
                debit = cell(row, "debit")
                amount = (
                    reading.parse(credit, currency)
                    if credit
                    else -abs(reading.parse(debit or "0", currency))
                )
        except MoneyError as exc:
            problems.append(FieldProblem(rows[0][column[field]].strip() or field, str(exc), number))
            continue
        entries.append(
            BankEntry(
                line_no=number,
                booked_on=booked,
                value_date=value,
                currency=currency,
                amount_minor=to_minor(amount, currency),
                counterparty=cell(row, "counterparty")[:200],
                counterparty_iban=re.sub(r"\s", "", cell(row, "counterparty_iban"))[:34],
                reference=cell(row, "reference")[:2000],
                bank_ref=cell(row, "bank_ref")[:150],
            )
        )
    if problems:
        raise InvalidInput(problems)
    return StatementFile("csv", "", entries)


# ------------------------------------------------------------------ CAMT.053


def _children(node, *path: str):
    """Descendants along `path` by local name (namespaces differ between versions)."""
    found = [node]
    for name in path:
        found = [
            c
            for n in found
            for c in n
            if isinstance(c.tag, str) and etree.QName(c).localname == name
        ]
    return found


def _text(node, *path: str) -> str:
    found = _children(node, *path)
    return (found[0].text or "").strip() if found else ""


def _camt_date(node, name: str) -> date | None:
    text = _text(node, name, "Dt") or _text(node, name, "DtTm")[:10]
    return date.fromisoformat(text) if text else None


def parse_camt053(content: bytes) -> StatementFile:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(content, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidInput.one("file", f"not readable XML: {exc}") from None
    statements = _children(root, "BkToCstmrStmt", "Stmt")
    if not statements:
        raise InvalidInput.one("file", "not a CAMT.053 statement (no BkToCstmrStmt/Stmt)")
    entries: list[BankEntry] = []
    problems: list[FieldProblem] = []
    account = ""
    number = 0
    for stmt in statements:
        account = account or _text(stmt, "Acct", "Id", "IBAN")
        for entry in _children(stmt, "Ntry"):
            number += 1
            status = _text(entry, "Sts") or _text(entry, "Sts", "Cd")
            if status and status != "BOOK":
                continue  # pending entries are not money yet
            try:
                booked = _camt_date(entry, "BookgDt") or _camt_date(entry, "ValDt")
                if booked is None:
                    raise ValueError("no booking date")
                value = _camt_date(entry, "ValDt")
            except ValueError as exc:
                problems.append(FieldProblem("BookgDt", str(exc), number))
                continue
            sign = -1 if _text(entry, "CdtDbtInd") == "DBIT" else 1
            entry_amount = _children(entry, "Amt")
            details = _children(entry, "NtryDtls", "TxDtls") or [None]
            for index, tx in enumerate(details):
                amount_node = entry_amount[0] if entry_amount else None
                if tx is not None:
                    # lxml elements without children are falsy: compare lists, never nodes.
                    own = _children(tx, "AmtDtls", "TxAmt", "Amt") or _children(tx, "Amt")
                    amount_node = own[0] if own else (amount_node if len(details) == 1 else None)
                if amount_node is None:
                    problems.append(FieldProblem("Amt", "a transaction without an amount", number))
                    continue
                try:
                    currency = check_currency(amount_node.get("Ccy") or "")
                    # ISO 20022 amounts are "1234.56" whatever the bank's country.
                    minor = to_minor(parse_plain_amount(amount_node.text or "", currency), currency)
                except MoneyError as exc:
                    problems.append(FieldProblem("Amt", str(exc), number))
                    continue
                tx_sign = sign
                if tx is not None and _text(tx, "CdtDbtInd"):
                    tx_sign = -1 if _text(tx, "CdtDbtInd") == "DBIT" else 1
                reference = ""
                counterparty = ""
                iban = ""
                bank_ref = _text(entry, "AcctSvcrRef")
                if tx is not None:
                    unstructured = [
                        (n.text or "").strip() for n in _children(tx, "RmtInf", "Ustrd")
                    ]
                    structured = [
                        (n.text or "").strip()
                        for n in _children(tx, "RmtInf", "Strd", "CdtrRefInf", "Ref")
                    ]
                    reference = " ".join(p for p in [*structured, *unstructured] if p)
                    counterparty = _text(tx, "RltdPties", "Dbtr", "Nm") or _text(
                        tx, "RltdPties", "Dbtr", "Pty", "Nm"
                    )
                    iban = _text(tx, "RltdPties", "DbtrAcct", "Id", "IBAN")
                    tx_ref = _text(tx, "Refs", "AcctSvcrRef") or _text(tx, "Refs", "EndToEndId")
                    if tx_ref and tx_ref != "NOTPROVIDED":
                        bank_ref = f"{bank_ref}/{tx_ref}" if bank_ref else tx_ref
                    elif bank_ref and len(details) > 1:
                        bank_ref = f"{bank_ref}/{index + 1}"
                reference = reference or _text(entry, "AddtlNtryInf")
                entries.append(
                    BankEntry(
                        line_no=number,
                        booked_on=booked,
                        value_date=value,
                        currency=currency,
                        amount_minor=tx_sign * minor,
                        counterparty=counterparty[:200],
                        counterparty_iban=iban[:34],
                        reference=reference[:2000],
                        bank_ref=bank_ref[:150],
                    )
                )
    if problems:
        raise InvalidInput(problems)
    return StatementFile("camt053", account, entries)
