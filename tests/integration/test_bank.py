"""Bank statements: CSV (documented column mapping) and CAMT.053 credits matched to invoices by
reference, amount and customer; certain matches proposed, the rest waiting for review; nothing
allocated before finance confirms; the same file or bank reference imported once."""

# ruff: noqa: E501  (statement files are kept as the banks write them)

from __future__ import annotations

import html
import re
from datetime import date, timedelta

import pytest

from receivables.errors import InvalidInput
from receivables.history import Actor
from receivables.ledger.tables import Allocation, Item, Payment
from receivables.money import AmountFormat
from receivables.payments.bank_files import parse_statement
from receivables.payments.bank_reconciliation import (
    confirm_line,
    confirm_proposed,
    ignore_line,
    import_statement,
)
from receivables.payments.tables import BankLine, BankLineMatch, BankStatement
from tests.factories import make_company, make_customer, make_item

FINANCE = Actor.system("finance test")
TODAY = date.today()


async def _world():
    company = await make_company(code="ATL")
    alpha = await make_customer(company, ref="ALPHA01", name="Alpha Bakery")
    beta = await make_customer(company, ref="BETA02", name="Beta Garage")
    due = TODAY - timedelta(days=20)
    items = {
        "A1": await make_item(alpha, "100.00", number="F2026-0101", due=due),
        "A2": await make_item(alpha, "50.00", number="F2026-0102", due=due + timedelta(days=5)),
        "B1": await make_item(beta, "80.00", number="F2026-0201", due=due),
        "B2": await make_item(beta, "80.00", number="F2026-0202", due=due + timedelta(days=1)),
    }
    return company, alpha, beta, items


CSV = """Date;Libellé;Montant;Devise;Donneur d'ordre;IBAN;Id
{d};VIR ALPHA01 FACT F2026-0101 F2026-0102;150,00;EUR;ALPHA BAKERY;FR76 3000 6000 0112 3456 7890 189;TX-1
{d};Payment invoice F2026-0201;60,00;EUR;Beta Garage;;TX-2
{d};BETA02 settlement;80,00;EUR;Beta Garage;;TX-3
{d};Interest;12,34;EUR;Our Bank;;TX-4
{d};Card fees;-30,00;EUR;Our Bank;;TX-5
"""


async def _import(company, text: str, name: str = "statement.csv"):
    return await import_statement(
        company_id=company.id,
        filename=name,
        content=text.encode(),
        currency="EUR",
        actor=FINANCE,
    )


async def _line(fragment: str) -> BankLine:
    for line in await BankLine.objects():
        if fragment in line.reference:
            return line
    raise AssertionError(fragment)


async def _matches(line: BankLine) -> list[tuple[int, int]]:
    rows = await BankLineMatch.select(BankLineMatch.item, BankLineMatch.amount_minor).where(
        BankLineMatch.line == line.id
    )
    return sorted((r["item"], r["amount_minor"]) for r in rows)


async def _open(item) -> int:
    return (await Item.objects().get(Item.id == item.id)).open_minor


async def test_csv_credits_are_proposed_or_wait_and_nothing_is_allocated(db):
    company, alpha, beta, items = await _world()
    report = await _import(company, CSV.format(d=TODAY.strftime("%d/%m/%Y")))
    assert (report.credits, report.proposed, report.review, report.debits) == (4, 1, 3, 1)

    # The right reference and the exact amount: proposed against the right invoices.
    exact = await _line("F2026-0101")
    assert exact.status == "proposed" and exact.customer == alpha.id
    assert await _matches(exact) == sorted([(items["A1"].id, 10000), (items["A2"].id, 5000)])
    assert exact.counterparty_iban == "FR7630006000011234567890189"
    # The right invoice, a different amount: waits, with the invoice suggested.
    partial = await _line("F2026-0201")
    assert partial.status == "review" and "60.00" in partial.reason
    assert await _matches(partial) == [(items["B1"].id, 6000)]
    # Only the customer, and two invoices of that amount: ambiguous, waits, nothing suggested.
    ambiguous = await _line("BETA02")
    assert ambiguous.status == "review" and ambiguous.customer == beta.id
    assert await _matches(ambiguous) == []
    unknown = await _line("Interest")
    assert unknown.status == "review" and unknown.customer is None

    # Nothing allocated before finance confirms.
    assert await Payment.count() == 0 and await Allocation.count() == 0
    assert [await _open(i) for i in items.values()] == [10000, 5000, 8000, 8000]

    assert await confirm_proposed(report.statement_id, actor=FINANCE) == 1
    assert await _open(items["A1"]) == 0 and await _open(items["A2"]) == 0
    payment = await Payment.objects().get(Payment.id == (await _line("F2026-0101")).payment)
    assert (payment.method, payment.amount_minor, payment.unapplied_minor) == ("transfer", 15000, 0)

    # Finance decides the ambiguous one: the newer invoice, by hand.
    await confirm_line(ambiguous.id, actor=FINANCE, item_ids=[items["B2"].id])
    assert await _open(items["B2"]) == 0 and await _open(items["B1"]) == 8000
    await ignore_line(unknown.id, actor=FINANCE, note="bank interest")
    assert (await BankLine.objects().get(BankLine.id == unknown.id)).status == "ignored"
    with pytest.raises(Exception, match="already"):
        await confirm_line(unknown.id, actor=FINANCE)


async def test_the_same_file_or_bank_reference_imports_once(db):
    company, _alpha, _beta, _items = await _world()
    text = CSV.format(d=TODAY.isoformat())
    await _import(company, text)
    with pytest.raises(InvalidInput, match="already imported"):
        await _import(company, text)
    # A later statement overlapping the first: the lines it shares are skipped.
    overlap = text + f"{TODAY.isoformat()};ALPHA01 F2026-0102;50,00;EUR;Alpha;;TX-9\n"
    report = await _import(company, overlap, "next.csv")
    assert (report.credits, report.duplicates) == (1, 4)
    assert await BankStatement.count() == 2


async def test_bad_rows_are_named_and_nothing_is_imported(db):
    company, *_ = await _world()
    text = "date,amount,reference\n2026-13-01,10.00,x\n2026-01-02,abc,y\n2026-01-03,1.234,z\n"
    with pytest.raises(InvalidInput) as refused:
        await _import(company, text)
    lines = sorted(p.line for p in refused.value.problems)
    assert lines == [2, 3, 4]
    assert await BankStatement.count() == 0 and await BankLine.count() == 0
    with pytest.raises(InvalidInput, match="booking date"):
        await _import(company, "amount,reference\n1,2\n", "no-date.csv")


def test_csv_amounts_as_banks_write_them():
    """A French bank's spellings read without being told; "1,000" is refused until the
    file's locale says which sign is decimal; CAMT amounts are ISO's "1234.56" only."""
    french = (
        "Date;Libellé;Débit;Crédit\n"
        "01/12/2026;VIR A;;1 234,56\n"
        "01/12/2026;VIR B;;2\u202f990,07\n"
        "01/12/2026;VIR C;;1\u00a0000\n"
        "01/12/2026;VIR D;;1.234,56 EUR\n"
        "01/12/2026;FRAIS;30,00;\n"
        "01/12/2026;VIR E;;(12,50)\n"
    )
    for amounts in (None, AmountFormat(locale="fr_FR")):
        got = [e.amount_minor for e in parse_statement(french.encode(), "EUR", amounts).entries]
        assert got == [123456, 299007, 100000, 123456, -3000, -1250]

    english = 'date,amount,currency,reference\n2026-12-01,"1,000",JPY,x\n2026-12-01,250.5,EUR,y\n'
    with pytest.raises(InvalidInput) as refused:
        parse_statement(english.encode(), "EUR")
    assert [str(p) for p in refused.value.problems] == [
        "line 2, column amount: '1,000' could be 1000 or 1: set the file's locale or decimal separator"
    ]
    entries = parse_statement(english.encode(), "EUR", AmountFormat(locale="en_GB")).entries
    assert [(e.currency, e.amount_minor) for e in entries] == [("JPY", 1000), ("EUR", 25050)]
    with pytest.raises(InvalidInput, match="'1 234,56' is not an amount written the en_GB way"):
        parse_statement(french.encode(), "EUR", AmountFormat(locale="en_GB"))

    camt = CAMT.format(d=TODAY.isoformat()).replace(">150.00<", ">1,150.00<")
    with pytest.raises(InvalidInput, match="'1,150.00' is not an amount written like 1234.56"):
        parse_statement(camt.encode(), "EUR")


CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
 <BkToCstmrStmt>
  <GrpHdr><MsgId>STMT-1</MsgId><CreDtTm>{d}T06:00:00</CreDtTm></GrpHdr>
  <Stmt>
   <Id>1</Id>
   <Acct><Id><IBAN>FR7630006000011234567890189</IBAN></Id><Ccy>EUR</Ccy></Acct>
   <Ntry>
    <Amt Ccy="EUR">150.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>{d}</Dt></BookgDt><ValDt><Dt>{d}</Dt></ValDt>
    <AcctSvcrRef>BANK-REF-1</AcctSvcrRef>
    <NtryDtls><TxDtls>
      <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
      <RltdPties><Dbtr><Nm>Alpha Bakery</Nm></Dbtr><DbtrAcct><Id><IBAN>BE68539007547034</IBAN></Id></DbtrAcct></RltdPties>
      <RmtInf><Strd><CdtrRefInf><Ref>F2026-0101</Ref></CdtrRefInf></Strd><Ustrd>and F2026-0102</Ustrd></RmtInf>
    </TxDtls></NtryDtls>
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">160.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>{d}</Dt></BookgDt>
    <AcctSvcrRef>BATCH-7</AcctSvcrRef>
    <NtryDtls>
     <TxDtls><AmtDtls><TxAmt><Amt Ccy="EUR">80.00</Amt></TxAmt></AmtDtls>
       <RltdPties><Dbtr><Nm>Beta Garage</Nm></Dbtr></RltdPties><RmtInf><Ustrd>F2026-0201</Ustrd></RmtInf></TxDtls>
     <TxDtls><AmtDtls><TxAmt><Amt Ccy="EUR">80.00</Amt></TxAmt></AmtDtls>
       <RltdPties><Dbtr><Nm>Beta Garage</Nm></Dbtr></RltdPties><RmtInf><Ustrd>invoice F2026-0202 and F2026-0101</Ustrd></RmtInf></TxDtls>
    </NtryDtls>
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">20.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>{d}</Dt></BookgDt>
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">999.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>PDNG</Sts><BookgDt><Dt>{d}</Dt></BookgDt>
   </Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>
"""


async def test_camt053_entries_and_batches_are_matched(db):
    company, alpha, beta, items = await _world()
    parsed = parse_statement(CAMT.format(d=TODAY.isoformat()).encode(), "EUR")
    assert parsed.format == "camt053" and parsed.account == "FR7630006000011234567890189"
    assert [e.amount_minor for e in parsed.entries] == [15000, 8000, 8000, -2000]  # PDNG left out
    report = await _import(company, CAMT.format(d=TODAY.isoformat()), "camt.xml")
    assert (report.credits, report.proposed, report.review, report.debits) == (3, 2, 1, 1)
    first = await _line("F2026-0101 and F2026-0102")
    assert first.status == "proposed" and first.counterparty == "Alpha Bakery"
    assert first.dedup_key == "ref:BANK-REF-1"
    batch = await _line("F2026-0201")
    assert batch.status == "proposed" and await _matches(batch) == [(items["B1"].id, 8000)]
    # Invoices of two customers named: waits for review.
    mixed = await _line("F2026-0202 and")
    assert mixed.status == "review" and "several customers" in mixed.reason
    assert await Allocation.count() == 0


async def test_hostile_xml_is_refused(db):
    company, *_ = await _world()
    bomb = b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<Document><BkToCstmrStmt><Stmt><Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>
<BookgDt><Dt>2026-01-01</Dt></BookgDt><AddtlNtryInf>&e;</AddtlNtryInf></Ntry></Stmt></BkToCstmrStmt></Document>"""
    parsed = parse_statement(bomb, "EUR")
    assert "root:" not in parsed.entries[0].reference


# ------------------------------------------------------------------ the back-office pages


async def test_finance_imports_and_confirms_from_the_back_office(db, databases):
    from app import create_app
    from receivables.access.staff import create_user
    from receivables.settings import load_settings
    from tests.conftest import TEST_SECRET, app_client

    company, alpha, _beta, items = await _world()
    await create_user("fin@seller.example", "Fin Ance", "finance", "long enough password")
    settings = load_settings({"SECRET_KEY": TEST_SECRET, "BASE_URL": "http://testserver.local"})
    app = create_app(settings, engine=await databases.get(db))
    async with app_client(app) as http:
        page = await http.get("/backoffice/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
        signed = await http.post(
            "/backoffice/login",
            data={
                "email": "fin@seller.example",
                "password": "long enough password",
                "_csrf_token": token,
            },
        )
        assert signed.status_code == 303
        page = await http.get("/backoffice/finance/bank")
        assert page.status_code == 200
        csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
        sent = await http.post(
            "/backoffice/finance/bank",
            data={"_csrf_token": csrf},
            files={"file": ("june.csv", CSV.format(d=TODAY.isoformat()).encode(), "text/csv")},
        )
        assert sent.status_code == 303, sent.text[:800]
        statement = await http.get(sent.headers["location"])
        assert "1 proposed" in statement.text or "Confirm the 1 proposed line" in statement.text
        assert await Allocation.count() == 0
        statement_id = sent.headers["location"].rsplit("/", 1)[1]
        confirmed = await http.post(
            f"/backoffice/finance/bank/{statement_id}/confirm", data={"_csrf_token": csrf}
        )
        assert confirmed.status_code == 303
        assert await _open(items["A1"]) == 0
        review = await http.get("/backoffice/finance/bank")
        assert "To review" in review.text
        line = await _line("F2026-0201")
        form = await http.get(f"/backoffice/finance/bank/lines/{line.id}")
        assert "F2026-0201" in form.text
        done = await http.post(
            f"/backoffice/finance/bank/lines/{line.id}/confirm",
            data={"_csrf_token": csrf, "chose": "1", "item": [str(items["B1"].id)]},
        )
        assert done.status_code == 303
        assert await _open(items["B1"]) == 2000
        bad = await http.post(
            "/backoffice/finance/bank",
            data={"_csrf_token": csrf},
            files={"file": ("bad.csv", b"date,amount\nnope,1\n", "text/csv")},
        )
        assert bad.status_code == 400 and "line 2" in bad.text
        # A statement writing thousands with a point and no decimals: asked, then read.
        german = f"date;amount;reference\n{TODAY:%d.%m.%Y};1.000;SEPA ONE THOUSAND\n"
        ambiguous = await http.post(
            "/backoffice/finance/bank",
            data={"_csrf_token": csrf},
            files={"file": ("de.csv", german.encode(), "text/csv")},
        )
        assert ambiguous.status_code == 400
        assert "could be 1000.00 or 1.00" in html.unescape(ambiguous.text)
        assert '<option value="" selected>' in ambiguous.text
        read = await http.post(
            "/backoffice/finance/bank",
            data={"_csrf_token": csrf, "decimal_separator": ","},
            files={"file": ("de.csv", german.encode(), "text/csv")},
        )
        assert read.status_code == 303, read.text[:800]
        assert (await _line("ONE THOUSAND")).amount_minor == 100000
