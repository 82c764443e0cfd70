"""Printed dunning documents: the formal-notice letter, the statement and invoice copies
attached to reminders. PDFs through `receivables.documents.pdf` (its locked URL fetcher).

The page is templates/documents/letter.html, whose `<!-- slot:NAME -->` comments are
replaced, in one pass, by HTML built here with every datum escaped. The letter's words are
the step's MessageTemplate (#hashtags); the legal wording is fixed per language and policy.
"""

# ruff: noqa: E501  (legal wording and labels are whole sentences)
from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

from babel.dates import format_date

from receivables import history
from receivables.db import atomic
from receivables.documents import storage
from receivables.documents.pdf import Assets, render_pdf_async
from receivables.dunning import hashtags
from receivables.dunning.messages import (
    AccountFacts,
    _amounts,
    hashtag_values,
    load_facts,
    open_items_table,
)
from receivables.dunning.sending import Texts, pick, snapshot_of, template_texts
from receivables.dunning.tables import (
    ActionStatus,
    Channel,
    DunningAction,
    DunningActionMessage,
)
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.history import Actor
from receivables.i18n import N_, locale_for, translator
from receivables.ledger.tables import Company, Contact, Item
from receivables.mail.outbox import Attachment
from receivables.money import format_money
from receivables.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SKELETON = ROOT / "templates" / "documents" / "letter.html"
STATIC = ROOT / "static"
SLOT = re.compile(r"<!-- slot:(\w+) -->")

LEGAL = {
    "france": N_(
        "Late payment automatically gives rise, under Article L441-10 of the French Commercial Code, to interest at the ECB rate plus ten points and to a fixed compensation of EUR 40 per invoice for recovery costs (Article D441-5)."
    ),
    "eu": N_(
        "Under Directive 2011/7/EU on combating late payment in commercial transactions, interest is due at the ECB reference rate plus eight points, together with a fixed sum of EUR 40 per invoice for recovery costs."
    ),
    "uk": N_(
        "Under the Late Payment of Commercial Debts (Interest) Act 1998, statutory interest runs at eight per cent over the Bank of England reference rate, and fixed compensation of GBP 40, 70 or 100 per invoice is due according to its amount."
    ),
    "fixed": N_("Late payment gives rise to interest at the rate stated in our terms of sale."),
}
"""The law a letter cites per penalty policy (none for 'none'), translated where printed."""


def assets(settings: Settings) -> Assets:
    return Assets(static_dir=STATIC, documents_dir=settings.documents_path)


@cache
def _skeleton() -> str:
    return SKELETON.read_text(encoding="utf-8")


def css_string(text: str) -> str:
    """Text safe inside a CSS double-quoted string in a <style> element."""
    return "".join(c if c.isalnum() or c in " .,-" else f"\\{ord(c):x} " for c in text)


def fill(slots: dict[str, str]) -> str:
    """The page with each slot replaced (one pass: inserted HTML is never read again)."""
    return SLOT.sub(lambda m: slots.get(m.group(1), ""), _skeleton())


def _esc_lines(text: str) -> str:
    return "<br>".join(html.escape(line.strip()) for line in text.splitlines() if line.strip())


def _day(value: date, locale: str, fmt: str = "long") -> str:
    return str(format_date(value, format=fmt, locale=locale))


def _letterhead(company: Company) -> str:
    logo = ""
    if company.logo_path:
        path = (STATIC / company.logo_path).resolve()
        if path.is_file() and path.is_relative_to(STATIC.resolve()):
            logo = f'<img src="{html.escape(company.logo_path)}" alt="{html.escape(company.name)}">'
    lines = [f"<strong>{html.escape(company.name)}</strong>", _esc_lines(company.address)]
    lines += [html.escape(x) for x in (company.phone, company.email, company.legal_id) if x]
    return f'<div>{logo}</div><div class="sender">{"<br>".join(x for x in lines if x)}</div>'


def _recipient(facts: AccountFacts, contact: Contact | None, language: str) -> str:
    _ = translator(language)
    customer = facts.customer
    parts = [f"<strong>{html.escape(customer.name)}</strong>"]
    if contact and contact.name:
        parts.append(
            '<span class="attention">'
            + html.escape(_("For the attention of %(name)s", name=contact.name))
            + "</span>"
        )
    if customer.address:
        parts.append(_esc_lines(customer.address))
    return "<br>".join(parts)


_POSTCODE_TOWN = re.compile(r"^(?:[A-Z]{1,2}-)?(?:\d{4,5}|\d{3} \d{2})\s+(?P<town>[^\d\s].*)$")
"""A line of an address that starts with a postcode: '69002 Lyon', 'D-10115 Berlin',
'114 55 Stockholm'."""


def town_of(address: str) -> str:
    """The town of a postal address: the last line after the first (the street) that starts
    with a postcode, else nothing: a street line is never taken for the town."""
    lines = [part.strip() for part in address.splitlines() if part.strip()]
    for line in reversed(lines[1:]):
        found = _POSTCODE_TOWN.match(line)
        if found:
            return found.group("town").strip()
    return ""


def _place_date(company: Company, on: date, locale: str) -> str:
    town = town_of(company.address)
    when = _day(on, locale)
    return html.escape(f"{town}, {when}" if town else when)


def _payment(company: Company, language: str) -> str:
    if not company.iban:
        return ""
    _ = translator(language)
    text = _(
        "Payment by bank transfer to %(name)s, IBAN %(iban)s, BIC %(bic)s, quoting the invoice numbers.",
        name=company.name,
        iban=company.iban,
        bic=company.bic or "—",
    )
    return f'<div class="payment">{html.escape(text)}</div>'


def _penalty_table(facts: AccountFacts, language: str, locale: str) -> str:
    p = facts.penalties
    if p is None or not p.lines:
        return ""
    _ = translator(language)
    rows = []
    for line in p.lines:
        interest = (
            format_money(line.interest.amount, line.interest.currency, locale)
            if line.interest
            else "—"
        )
        comp = (
            format_money(line.compensation.amount, line.compensation.currency, locale)
            if line.compensation
            else "—"
        )
        rows.append(
            f'<tr><td>{html.escape(line.number)}</td><td class="num">{line.days_late}</td>'
            f'<td class="num">{html.escape(format_money(line.base.amount, line.base.currency, locale))}</td>'
            f'<td class="num">{html.escape(interest)}</td><td class="num">{html.escape(comp)}</td></tr>'
        )
    total = _amounts(list(p.totals.values()), locale) if p.totals else "—"
    heads = [_("Invoice"), _("Days late"), _("Overdue amount"), _("Interest"), _("Compensation")]
    cells = f"<th>{html.escape(heads[0])}</th>" + "".join(
        f'<th class="num">{html.escape(h)}</th>' for h in heads[1:]
    )
    title = _("Late-payment penalties, invoice by invoice")
    waived = ", ".join(x.number for x in p.waived)
    return (
        f"<h2>{html.escape(title)}</h2><table><thead><tr>{cells}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody><tfoot><tr>"
        f'<td colspan="4">{html.escape(_("Total penalties"))}</td>'
        f'<td class="num">{html.escape(total)}</td></tr></tfoot></table>'
        + (
            f"<p>{html.escape(_('Penalties waived: %(numbers)s.', numbers=waived))}</p>"
            if waived
            else ""
        )
    )


async def _company(company_id: int) -> Company:
    company = await Company.objects().get(Company.id == company_id)
    if company is None:
        raise NotFound(f"company {company_id}")
    return company


def notice_deadline(company: Company, posted_on: date) -> date:
    """The date a formal notice gives to pay: its posting plus the company's notice days."""
    return posted_on + timedelta(days=company.formal_notice_days or 0)


def _legal(company: Company, language: str, notice: bool, deadline: str = "") -> str:
    _ = translator(language)
    law = LEGAL.get(company.penalty_policy)
    parts = [_(law) if law else ""]
    if notice:
        parts.append(_("This letter constitutes formal notice to pay."))
        if deadline:
            parts.append(
                _(
                    "Failing payment of the amounts due by %(date)s, we will hand the matter over for recovery proceedings without further notice.",
                    date=deadline,
                )
            )
    return " ".join(html.escape(p) for p in parts if p)


def _footer(company: Company) -> str:
    return css_string(" · ".join(p for p in (company.name, company.legal_id) if p))


def letter_html(facts: AccountFacts, texts: Texts, contact: Contact | None) -> str:
    """The formal notice: letterhead, recipient, the template's words, penalties, the law."""
    language = texts.language
    locale = locale_for(language, facts.company.locale)
    logo_src = facts.company.logo_path if facts.company.logo_path else ""
    values = hashtag_values(
        facts, language=language, contact=contact, portal_url=None, base_url="", logo_src=logo_src
    )
    subject = hashtags.render_line(texts.subject, values)
    _ = translator(language)
    delivery = _("Recorded delivery with acknowledgement of receipt")
    return fill(
        {
            "lang": html.escape(language),
            "title": html.escape(subject),
            "footer_left": _footer(facts.company),
            "letterhead": _letterhead(facts.company),
            "recipient": _recipient(facts, contact, language),
            "place_date": _place_date(facts.company, facts.on, locale),
            "delivery": f'<p class="delivery">{html.escape(delivery)}</p>',
            "subject": html.escape(subject),
            "body": hashtags.render_html(texts.body, values),
            "details": _penalty_table(facts, language, locale),
            "payment": _payment(facts.company, language),
            "legal": _legal(
                facts.company,
                language,
                notice=True,
                deadline=_day(notice_deadline(facts.company, facts.on), locale),
            ),
        }
    )


def statement_html(facts: AccountFacts, language: str, contact: Contact | None) -> str:
    locale = locale_for(language, facts.company.locale)
    _ = translator(language)
    title = _("Statement of account at %(date)s", date=_day(facts.on, locale))
    return fill(
        {
            "lang": html.escape(language),
            "title": html.escape(title),
            "footer_left": _footer(facts.company),
            "letterhead": _letterhead(facts.company),
            "recipient": _recipient(facts, contact, language),
            "place_date": _place_date(facts.company, facts.on, locale),
            "subject": html.escape(title),
            "body": open_items_table(facts, language, locale).as_html(),
            "details": _penalty_table(facts, language, locale),
            "payment": _payment(facts.company, language),
            "legal": _legal(facts.company, language, notice=False),
        }
    )


def invoice_copy_html(facts: AccountFacts, item: dict, language: str) -> str:
    """For invoices the ERP sent without a PDF: the facts of the invoice, marked as a copy."""
    locale = locale_for(language, facts.company.locale)
    _ = translator(language)
    title = _("Copy of invoice %(number)s", number=item["number"])
    cur = item["currency"]
    rows = [
        (_("Issued on"), _day(item["issue_date"], locale, "medium")),
        (_("Due on"), _day(item["due_date"], locale, "medium")),
        (_("Amount"), format_money(_minor(item["total_minor"], cur), cur, locale)),
        (_("Open"), format_money(_minor(item["open_minor"], cur), cur, locale)),
    ]
    if item.get("po_number"):
        rows.append((_("Purchase order"), item["po_number"]))
    table = (
        "<table>"
        + "".join(
            f'<tr><th>{html.escape(k)}</th><td class="num">{html.escape(v)}</td></tr>'
            for k, v in rows
        )
        + "</table>"
    )
    return fill(
        {
            "lang": html.escape(language),
            "title": html.escape(title),
            "footer_left": _footer(facts.company),
            "letterhead": _letterhead(facts.company),
            "recipient": _recipient(facts, None, language),
            "place_date": _place_date(facts.company, facts.on, locale),
            "subject": html.escape(title),
            "details": table,
            "payment": _payment(facts.company, language),
            "legal": html.escape(
                _("This copy is issued for information; the original invoice prevails.")
            ),
        }
    )


def _minor(minor: int, currency: str):
    from receivables.money import from_minor

    return from_minor(minor, currency)


# ------------------------------------------------------------------ letters of actions


async def _action(action_id: int) -> DunningAction:
    action = await DunningAction.objects().get(DunningAction.id == action_id)
    if action is None:
        raise NotFound(f"action {action_id}")
    return action


@dataclass(frozen=True)
class Letter:
    filename: str
    content: bytes
    stored: bool
    """True: the letter exactly as it was marked sent (from the documents folder)."""


async def action_letter(action_id: int, settings: Settings, on: date) -> Letter:
    """The action's letter: as sent when it was, else as it would be printed today."""
    action = await _action(action_id)
    if action.channel != Channel.letter.value:
        raise NotFound(f"letter of action {action_id}")
    name = f"formal-notice-{action.id}.pdf"
    if action.letter_path:
        path = storage.stored_file(settings.documents_path, action.letter_path)
        if path is not None:
            return Letter(name, await storage.read_bytes(path), True)
    return Letter(name, await render_letter(action, settings, on), False)


async def render_letter(action: DunningAction, settings: Settings, on: date) -> bytes:
    facts = await load_facts(action.customer, on)
    contact = facts.addressee
    texts = pick(
        await template_texts(action.company, action.template_code), facts.language_for(contact)
    )
    if texts is None:
        raise InvalidInput.one("template", f"no template '{action.template_code}' for this letter")
    return await render_pdf_async(letter_html(facts, texts, contact), assets(settings))


async def mark_letter_sent(
    action_id: int, sent_on: date | None, actor: Actor, settings: Settings, today: date
) -> DunningAction:
    """Keep the letter as printed (PDF in the documents folder, SHA-256 in the history)."""
    if sent_on is None:
        raise InvalidInput.one("sent_on", "the date the letter was posted")
    if sent_on > today:
        raise InvalidInput.one("sent_on", "cannot be in the future")
    action = await _action(action_id)
    if action.channel != Channel.letter.value:
        raise InvalidInput.one("action", "this action is not a letter")
    if action.status not in (ActionStatus.due.value, ActionStatus.to_confirm.value):
        raise Conflict(f"this letter is already {action.status}")
    content = await render_letter(action, settings, sent_on)
    digest = hashlib.sha256(content).hexdigest()
    relative = f"letters/{action.company}/{action.id}-{digest[:16]}.pdf"
    target = settings.documents_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    async with atomic():
        await history.lock_accounts([action.customer], company_id=action.company)
        done = (
            await DunningAction.update(
                {
                    DunningAction.status: ActionStatus.done.value,
                    DunningAction.letter_sent_on: sent_on,
                    DunningAction.done_on: sent_on,
                    DunningAction.letter_deadline: notice_deadline(
                        await _company(action.company), sent_on
                    ),
                    DunningAction.letter_path: relative,
                    DunningAction.letter_sha256: digest,
                    DunningAction.done_at: datetime.now(UTC),
                    DunningAction.done_by: actor.label,
                    DunningAction.outcome: f"letter posted on {sent_on.isoformat()}",
                }
            )
            .where(
                (DunningAction.id == action_id)
                & DunningAction.status.is_in(
                    [ActionStatus.due.value, ActionStatus.to_confirm.value]
                )
            )
            .returning(DunningAction.id)
        )
        if not done:
            raise Conflict("this letter was marked sent meanwhile")
        await history.record(
            company_id=action.company,
            actor=actor,
            kind="letter.sent",
            customer_id=action.customer,
            details={
                "action": action.id,
                "step": action.step_name,
                "level": action.level,
                "sent_on": sent_on,
                "sha256": digest,
                "document": relative,
                "size": len(content),
            },
        )
    return await _action(action_id)


# ------------------------------------------------------------------ attachments


async def render_attachments(row: dict, settings: Settings) -> list[Attachment]:
    """The files the step chose, rendered now (the outbox keeps their SHA-256)."""
    link = (
        await DunningActionMessage.select(DunningActionMessage.action, DunningActionMessage.contact)
        .where(DunningActionMessage.message == row["id"])
        .first()
    )
    if link is None:
        return []
    action = await _action(link["action"])
    if not (action.attach_statement or action.attach_invoices):
        return []
    on = datetime.now(UTC).date()
    facts = await load_facts(action.customer, on)
    contact = next((c for c in facts.contacts if c.id == link["contact"]), None)
    language = facts.language_for(contact)
    out: list[Attachment] = []
    if action.attach_statement:
        pdf = await render_pdf_async(statement_html(facts, language, contact), assets(settings))
        out.append(Attachment(f"statement-{facts.customer.ref}-{on}.pdf", "application/pdf", pdf))
    if action.attach_invoices:
        ids = [s["id"] for s in snapshot_of(action)]
        items = await Item.select().where(Item.id.is_in(ids)).order_by(Item.due_date) if ids else []
        for item in items:
            stored = storage.stored_file(settings.documents_path, item["pdf_path"])
            if stored is not None:
                content = await storage.read_bytes(stored)
            else:
                content = await render_pdf_async(
                    invoice_copy_html(facts, item, language), assets(settings)
                )
            out.append(Attachment(f"{item['number']}.pdf", "application/pdf", content))
    return out
