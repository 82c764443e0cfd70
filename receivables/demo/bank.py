"""Bank statement files as the demo company's bank writes them: a French CSV export and an
ISO 20022 CAMT.053 statement. The replay imports one each morning; examples/ holds the
next one, for finance to import by hand (see examples/make_bank_statements.py)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from xml.sax.saxutils import escape

from receivables.ledger.tables import ItemKind
from receivables.money import from_minor

from .data import EXAMPLE_CUSTOMERS, Plan, PlannedItem, ascii_fold

ACCOUNT_IBAN = "FR7630006000011234567890189"
CAMT_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


@dataclass(frozen=True)
class Credit:
    """One line of a statement: money in (positive) or out (negative)."""

    booked_on: date
    amount_minor: int
    currency: str
    reference: str
    counterparty: str
    bank_ref: str
    counterparty_iban: str = ""
    structured_ref: str = ""
    """CAMT only: the creditor reference the payer gave (an invoice number)."""


def _french_amount(minor: int, currency: str) -> str:
    amount: Decimal = from_minor(minor, currency)
    whole, _, cents = f"{abs(amount):,.2f}".partition(".")
    return ("-" if amount < 0 else "") + whole.replace(",", " ") + "," + cents


def statement_csv(credits: list[Credit]) -> bytes:
    """The bank's CSV export: semicolons, DD/MM/YYYY, amounts with a decimal comma."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        ["Date", "Libellé", "Montant", "Devise", "Donneur d'ordre", "Référence bancaire"]
    )
    for c in credits:
        writer.writerow(
            [
                c.booked_on.strftime("%d/%m/%Y"),
                c.reference,
                _french_amount(c.amount_minor, c.currency),
                c.currency,
                c.counterparty,
                c.bank_ref,
            ]
        )
    return out.getvalue().encode("utf-8")


def statement_camt053(statement_id: str, entries: list[list[Credit]]) -> bytes:
    """A CAMT.053 statement; each entry is one booking, of one or several transactions."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<Document xmlns="{CAMT_NS}">',
        "  <BkToCstmrStmt>",
        f"    <GrpHdr><MsgId>{escape(statement_id)}</MsgId>"
        f"<CreDtTm>{entries[0][0].booked_on.isoformat()}T18:00:00</CreDtTm></GrpHdr>",
        "    <Stmt>",
        f"      <Id>{escape(statement_id)}</Id>",
        f"      <Acct><Id><IBAN>{ACCOUNT_IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>",
    ]
    for n, entry in enumerate(entries, start=1):
        total = sum(c.amount_minor for c in entry)
        first = entry[0]
        side = "CRDT" if total >= 0 else "DBIT"
        lines += [
            "      <Ntry>",
            f"        <NtryRef>{n}</NtryRef>",
            f'        <Amt Ccy="{first.currency}">{abs(from_minor(total, first.currency))}</Amt>',
            f"        <CdtDbtInd>{side}</CdtDbtInd>",
            "        <Sts><Cd>BOOK</Cd></Sts>",
            f"        <BookgDt><Dt>{first.booked_on.isoformat()}</Dt></BookgDt>",
            f"        <ValDt><Dt>{first.booked_on.isoformat()}</Dt></ValDt>",
            f"        <AcctSvcrRef>{escape(first.bank_ref.split('/')[0])}</AcctSvcrRef>",
            "        <NtryDtls>",
        ]
        for c in entry:
            amount = abs(from_minor(c.amount_minor, c.currency))
            remittance = (
                f"<Strd><CdtrRefInf><Ref>{escape(c.structured_ref)}</Ref></CdtrRefInf></Strd>"
                if c.structured_ref
                else f"<Ustrd>{escape(c.reference)}</Ustrd>"
            )
            lines += [
                "          <TxDtls>",
                f"            <Refs><EndToEndId>{escape(c.bank_ref.split('/')[-1])}"
                "</EndToEndId></Refs>",
                f'            <AmtDtls><TxAmt><Amt Ccy="{c.currency}">{amount}</Amt>'
                "</TxAmt></AmtDtls>",
                f"            <RltdPties><Dbtr><Nm>{escape(c.counterparty)}</Nm></Dbtr>"
                + (
                    f"<DbtrAcct><Id><IBAN>{c.counterparty_iban}</IBAN></Id></DbtrAcct>"
                    if c.counterparty_iban
                    else ""
                )
                + "</RltdPties>",
                f"            <RmtInf>{remittance}</RmtInf>",
                "          </TxDtls>",
            ]
        lines += ["        </NtryDtls>", "      </Ntry>"]
    lines += ["    </Stmt>", "  </BkToCstmrStmt>", "</Document>", ""]
    return "\n".join(lines).encode("utf-8")


# ------------------------------------------------------------------ the samples in examples/


def example_items(plan: Plan, ref: str) -> list[PlannedItem]:
    index = plan.customer_index(ref)
    return sorted(
        (
            i
            for i in plan.items
            if i.customer == index and i.reserved and i.kind == ItemKind.invoice.value
        ),
        key=lambda i: (i.due, i.number),
    )


def example_statements(plan: Plan, booked_on: date) -> tuple[bytes, bytes]:
    """The CSV and the CAMT.053 statement finance imports in the demo: what each line pays
    is left open by the demo, so the file matches its data whatever the day."""
    refs = list(EXAMPLE_CUSTOMERS)
    name = {c.ref: c.name for c in plan.customers}

    def upper(ref: str) -> str:
        return ascii_fold(name[ref]).upper()

    (one,) = example_items(plan, refs[0])
    two = example_items(plan, refs[1])
    (part,) = example_items(plan, refs[2])
    (unnamed,) = example_items(plan, refs[3])
    day = booked_on.strftime("%Y%m%d")
    csv_lines = [
        # Names the invoice and pays it exactly: proposed.
        Credit(
            booked_on,
            one.total_minor,
            "EUR",
            f"VIR SEPA {upper(refs[0])} FACT {one.number}",
            upper(refs[0]),
            f"EX-{day}-01",
        ),
        # Two invoices, one transfer, the exact total: proposed.
        Credit(
            booked_on,
            sum(i.total_minor for i in two),
            "EUR",
            f"Reglement factures {two[0].number} et {two[1].number}",
            upper(refs[1]),
            f"EX-{day}-02",
        ),
        # A down payment on an invoice: to review.
        Credit(
            booked_on,
            (part.total_minor * 4 // 10) // 100 * 100,
            "EUR",
            f"Acompte facture {part.number}",
            upper(refs[2]),
            f"EX-{day}-03",
        ),
        # No invoice named; the payer's name and the exact amount suggest one: to review.
        Credit(
            booked_on,
            unnamed.total_minor,
            "EUR",
            f"VIREMENT {upper(refs[3])}",
            upper(refs[3]),
            f"EX-{day}-04",
        ),
        # Not a customer: to review, then ignore.
        Credit(booked_on, 1240, "EUR", "INTERETS CREDITEURS", "BANQUE", f"EX-{day}-05"),
        # Money out: skipped.
        Credit(booked_on, -125000, "EUR", "PRLV SEPA URSSAF", "URSSAF RHONE-ALPES", f"EX-{day}-06"),
    ]
    (first,) = example_items(plan, refs[4])
    (second,) = example_items(plan, refs[5])
    batch = [
        Credit(
            booked_on,
            first.total_minor,
            "EUR",
            "",
            name[refs[4]],
            f"EXC-{day}-1/E2E-{first.number}",
            "BE71096123456769",
            structured_ref=first.number,
        ),
        Credit(
            booked_on,
            second.total_minor,
            "EUR",
            f"Rechnung {second.number}",
            name[refs[5]],
            f"EXC-{day}-1/E2E-{second.number}",
            "DE89370400440532013000",
        ),
    ]
    camt = statement_camt053(f"EXC-{day}", [batch])
    return statement_csv(csv_lines), camt
