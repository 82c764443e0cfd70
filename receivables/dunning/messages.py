"""What a reminder says: the account's facts, the #hashtag values, the composed email.

Every figure comes from `build_statement` and the company's penalty policy. The item
tables are built here, cell by cell with every datum escaped, as HTML (mail and PDF) and
as aligned text (the plain part). Nothing here is a template engine: the words come from
MessageTemplate rows through `hashtags`, the layout is fixed HTML. After the template's
words every email carries the portal's doors (a "view and pay" button on the signed link,
each invoice's PDF and the Excel export through that same link) and the signature.
"""

# ruff: noqa: E501  (labels are whole sentences)
from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date

from babel.dates import format_date

from receivables.access.tables import StaffUser
from receivables.dunning import hashtags
from receivables.dunning.hashtags import Value
from receivables.dunning.reference_rates import statement_penalties, terms_for
from receivables.i18n import N_, choose_language, locale_for, translator
from receivables.ledger.penalties import Penalties, PenaltyTerms
from receivables.ledger.statement import OpenItem, Statement, build_statement
from receivables.ledger.tables import Company, Contact, Customer, ItemStatus
from receivables.mail.outbox import ascii_address
from receivables.money import Money, format_money
from receivables.portal import deep_links
from receivables.portal.feedback import PendingAnswer, pending_by_item
from receivables.portal.tables import DISPUTE_REASONS, FeedbackKind

FONT = "font-family:Helvetica,Arial,sans-serif;"
P_STYLE = "margin:0 0 14px 0;"
LINK_STYLE = "color:#1d4ed8;"
MAX_INVOICE_LINKS = 50
"""PDF links listed under the button; beyond them one line leads to the portal (a
500-invoice account would otherwise send a message that mail clients clip)."""
MAX_WORDS_SHOWN = 160
"""Characters of the customer's own words quoted beside a held invoice."""

STATUS_NOTES = {
    "paid_pending": N_("Payment reported, being checked"),
    "payment_in_progress": N_("Payment in progress"),
}
"""The note beside an invoice whose payment is on its way, translated where written."""


# ------------------------------------------------------------------ the facts


def sendable(email: str) -> bool:
    try:
        ascii_address(email)
    except ValueError:
        return False
    return True


@dataclass
class AccountFacts:
    """One customer's account on one date, split the way a reminder talks about it."""

    statement: Statement
    penalties: Penalties | None
    collector: StaffUser | None
    contacts: list[Contact]
    to_pay: list[OpenItem] = field(default_factory=list)
    coming_due: list[OpenItem] = field(default_factory=list)
    on_hold: list[OpenItem] = field(default_factory=list)
    answers: dict[int, PendingAnswer] = field(default_factory=dict)
    """Pending customer answers by item: the words shown beside a held item."""

    @property
    def company(self) -> Company:
        return self.statement.company

    @property
    def customer(self) -> Customer:
        return self.statement.customer

    @property
    def on(self) -> date:
        return self.statement.on

    @property
    def driving(self) -> list[OpenItem]:
        return self.to_pay + self.coming_due

    @property
    def reminder_contacts(self) -> list[Contact]:
        """Contacts who receive reminders, at an address mail can be sent to."""
        return [c for c in self.contacts if c.receives_reminders and sendable(c.email)]

    @property
    def addressee(self) -> Contact | None:
        """Who a letter or a preview is addressed to: the first reminder contact, else any."""
        found = self.reminder_contacts or self.contacts
        return found[0] if found else None

    def language_for(self, contact: Contact | None = None) -> str:
        return choose_language(
            contact.language if contact else "", self.customer.language, self.company.locale
        )


async def load_facts(
    customer_id: int, on: date, rates: dict[int, PenaltyTerms] | None = None
) -> AccountFacts:
    """The facts of one account; `rates` caches each company's penalty terms for a run."""
    statement = await build_statement(customer_id, on)
    company = statement.company
    if rates is not None and company.id in rates:
        table = rates[company.id]
    else:
        table = await terms_for(company)
        if rates is not None:
            rates[company.id] = table
    collector = None
    if statement.customer.collector:
        # An inactive collector no longer answers: the company signs instead.
        collector = await StaffUser.objects().get(
            (StaffUser.id == statement.customer.collector) & (StaffUser.active == True)  # noqa: E712
        )
    contacts = await Contact.objects().where(Contact.customer == customer_id).order_by(Contact.id)
    facts = AccountFacts(
        statement=statement,
        penalties=await statement_penalties(statement, table),
        collector=collector,
        contacts=list(contacts),
    )
    # The statement's holds are the only ones: what a reminder asks for is its overdue figure.
    for item in statement.invoices:
        if item.held:
            facts.on_hold.append(item)
        elif item.overdue:
            facts.to_pay.append(item)
        else:
            facts.coming_due.append(item)
    if facts.on_hold:
        facts.answers = await pending_by_item(customer_id)
    return facts


# ------------------------------------------------------------------ formatting


def _sum(items: list[OpenItem], fallback_currency: str) -> list[Money]:
    totals: dict[str, Money] = {}
    for item in items:
        cur = item.currency
        totals[cur] = totals[cur] + item.open if cur in totals else item.open
    return [totals[c] for c in sorted(totals)] or [Money.zero(fallback_currency)]


def _amounts(amounts: list[Money], locale: str) -> str:
    return " + ".join(format_money(m.amount, m.currency, locale) for m in amounts)


def _day(value: date | None, locale: str) -> str:
    return "" if value is None else str(format_date(value, format="medium", locale=locale))


def reason_label(code: str, language: str) -> str:
    """A dispute reason as the customer reads it ('' for an unknown code: never the code)."""
    label = DISPUTE_REASONS.get(code)
    return translator(language)(label) if label else ""


def _quoted(text: str) -> str:
    """The customer's words on one line, cut to MAX_WORDS_SHOWN characters."""
    flat = " ".join(text.split())
    if len(flat) <= MAX_WORDS_SHOWN:
        return flat
    return flat[: MAX_WORDS_SHOWN - 1].rsplit(" ", 1)[0] + "…"


def _answer_note(kind: str, answer: PendingAnswer | None, language: str, locale: str) -> str:
    """A held invoice's pending answer, told back to the customer, with their own words."""
    _ = translator(language)
    if answer is not None and answer.kind != kind:
        answer = None  # the answer changed under us: say only that one is waiting
    if kind == FeedbackKind.paid.value:
        paid_on = answer.paid_on if answer else None
        note = (
            _("You told us it was paid on %(date)s", date=_day(paid_on, locale)) if paid_on else ""
        )
        note = note or _("You told us it was paid")
    elif kind == FeedbackKind.promise.value and answer and answer.promise_date:
        note = _("You told us you will pay on %(date)s", date=_day(answer.promise_date, locale))
    elif kind == FeedbackKind.dispute.value:
        reason = reason_label(answer.dispute_reason, language) if answer else ""
        note = _("You disputed it: %(reason)s", reason=reason) if reason else ""
        note = note or _("You disputed it")
    elif kind == FeedbackKind.question.value:
        note = _("You asked us a question")
    else:
        note = _("Your answer is awaiting our confirmation")
    if answer is not None and answer.text.strip():
        return _("%(note)s — “%(words)s”", note=note, words=_quoted(answer.text))
    return note


def _note(item: OpenItem, language: str, locale: str, answer: PendingAnswer | None = None) -> str:
    """Why an invoice is held (or a broken promise), in the customer's language."""
    _ = translator(language)
    if item.hold.startswith("answer_"):
        return _answer_note(item.hold.removeprefix("answer_"), answer, language, locale)
    if item.status == ItemStatus.disputed.value:
        reason = reason_label(item.dispute_reason, language)
        return _("Disputed: %(reason)s", reason=reason) if reason else _("Disputed")
    if item.status == ItemStatus.promised.value:
        return _("Promised for %(date)s", date=_day(item.promise_date, locale))
    if item.status in (ItemStatus.paid_pending.value, ItemStatus.payment_in_progress.value):
        return _(STATUS_NOTES[item.status])
    return ""


@dataclass(frozen=True)
class Table:
    """Rows of cells, by section; rendered as an HTML table or as aligned text."""

    headers: list[str]
    numeric: list[bool]
    sections: list[tuple[str, list[list[str]]]]
    footer: list[list[str]]

    def as_text(self) -> str:
        rows = [self.headers] + [r for _, rs in self.sections for r in rs] + self.footer
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.headers))]

        def line(cells: list[str]) -> str:
            parts = [
                c.rjust(widths[i]) if self.numeric[i] else c.ljust(widths[i])
                for i, c in enumerate(cells)
            ]
            return "  ".join(parts).rstrip()

        out = []
        for title, section_rows in self.sections:
            if not section_rows:
                continue
            if title:
                out.append(title)
            out.append(line(self.headers))
            out.extend(line(r) for r in section_rows)
            out.append("")
        out.extend(line(r) for r in self.footer)
        return "\n".join(out).rstrip()

    def as_html(self) -> str:
        cell = "padding:6px 10px;border-bottom:1px solid #e3e6ea;font-size:14px;"
        head = cell + "text-align:left;color:#52606d;font-weight:600;background:#f5f7fa;"
        parts = [
            '<table role="presentation" cellspacing="0" cellpadding="0" '
            f'style="border-collapse:collapse;width:100%;margin:0 0 16px 0;{FONT}">'
        ]
        span = len(self.headers)
        for title, rows in self.sections:
            if not rows:
                continue
            if title:
                parts.append(
                    f'<tr><td colspan="{span}" style="padding:12px 10px 6px 10px;'
                    f'font-weight:700;font-size:14px;color:#1f2933;">{html.escape(title)}</td></tr>'
                )
            parts.append(
                "<tr>"
                + "".join(
                    f'<th style="{head}{"text-align:right;" if num else ""}">{html.escape(h)}</th>'
                    for h, num in zip(self.headers, self.numeric, strict=True)
                )
                + "</tr>"
            )
            for row in rows:
                parts.append(
                    "<tr>"
                    + "".join(
                        f'<td style="{cell}{"text-align:right;white-space:nowrap;" if num else ""}">'
                        f"{html.escape(c)}</td>"
                        for c, num in zip(row, self.numeric, strict=True)
                    )
                    + "</tr>"
                )
        for row in self.footer:
            parts.append(
                "<tr>"
                + "".join(
                    f'<td style="{cell}font-weight:700;'
                    f'{"text-align:right;white-space:nowrap;" if num else ""}">{html.escape(c)}</td>'
                    for c, num in zip(row, self.numeric, strict=True)
                )
                + "</tr>"
            )
        parts.append("</table>")
        return "".join(parts)


def _item_row(
    item: OpenItem,
    language: str,
    locale: str,
    note: bool = False,
    answers: dict[int, PendingAnswer] | None = None,
) -> list[str]:
    row = [
        item.number,
        _day(item.due_date, locale),
        str(item.days_late) if item.days_late > 0 else "",
        format_money(item.open.amount, item.currency, locale),
    ]
    if note:
        row.append(_note(item, language, locale, (answers or {}).get(item.id)))
    return row


def overdue_table(facts: AccountFacts, language: str, locale: str) -> Table:
    _ = translator(language)
    rows = [_item_row(i, language, locale) for i in facts.to_pay]
    footer = [[_("Total"), "", "", _amounts(_sum(facts.to_pay, facts.company.currency), locale)]]
    return Table(
        headers=[_("Invoice"), _("Due date"), _("Days late"), _("Open")],
        numeric=[False, False, True, True],
        sections=[("", rows)],
        footer=footer,
    )


def open_items_table(facts: AccountFacts, language: str, locale: str) -> Table:
    _ = translator(language)
    st = facts.statement
    credits: list[list[str]] = []
    for credit in st.credit_notes:
        credits.append(
            [
                credit.number,
                _day(credit.due_date, locale),
                "",
                format_money(-credit.open.amount, credit.currency, locale),
                _("Credit note"),
            ]
        )
    for payment in st.unapplied_payments:
        credits.append(
            [
                payment.ref,
                _day(payment.received_on, locale),
                "",
                format_money(-payment.unapplied.amount, payment.unapplied.currency, locale),
                _("Payment received"),
            ]
        )
    totals = [t.open for t in st.totals.values()] or [Money.zero(facts.company.currency)]
    return Table(
        headers=[_("Invoice"), _("Due date"), _("Days late"), _("Open"), _("Note")],
        numeric=[False, False, True, True, False],
        sections=[
            (_("To pay now"), [_item_row(i, language, locale, True) for i in facts.to_pay]),
            (
                _("Coming due: please check that nothing blocks payment"),
                [_item_row(i, language, locale, True) for i in facts.coming_due],
            ),
            (
                _("On hold"),
                [_item_row(i, language, locale, True, facts.answers) for i in facts.on_hold],
            ),
            (_("Credits"), credits),
        ],
        footer=[[_("Total open"), "", "", _amounts(totals, locale), ""]],
    )


def _rate(bp: int, locale: str) -> str:
    from babel.numbers import format_percent

    return str(format_percent(bp / 10000, format="#,##0.00 %", locale=locale))


def penalties_value(facts: AccountFacts, language: str, locale: str) -> Value:
    p = facts.penalties
    if p is None:
        return Value("")
    _ = translator(language)
    parts: list[tuple[str, str]] = []
    if p.interest_computed and p.interest:
        label = _(
            "Late-payment interest (%(rate)s a year)", rate=_rate(p.annual_rate_bp or 0, locale)
        )
        parts.append((label, _amounts(list(p.interest.values()), locale)))
    elif not p.interest_computed and p.lines:
        parts.append((_("Late-payment interest (rate not available)"), "—"))
    if p.compensation:
        parts.append(
            (
                _("Fixed compensation for recovery costs"),
                _amounts(list(p.compensation.values()), locale),
            )
        )
    if not parts:
        return Value(_amounts([Money.zero(facts.company.currency)], locale))
    total = _amounts(list(p.totals.values()), locale) if p.totals else ""
    total_label = _("Total penalties")
    text = "; ".join(_("%(label)s: %(value)s", label=k, value=v) for k, v in parts)
    if total and len(parts) > 1:
        text += ". " + _("%(label)s: %(value)s", label=total_label, value=total)
    rows = "".join(
        f'<tr><td style="padding:2px 12px 2px 0;">{html.escape(label)}</td>'
        f'<td style="padding:2px 0;text-align:right;white-space:nowrap;">{html.escape(amount)}</td></tr>'
        for label, amount in parts
    )
    if total and len(parts) > 1:
        rows += (
            f'<tr><td style="padding:2px 12px 2px 0;font-weight:700;">'
            f"{html.escape(total_label)}</td>"
            f'<td style="padding:2px 0;text-align:right;font-weight:700;white-space:nowrap;">'
            f"{html.escape(total)}</td></tr>"
        )
    table = (
        f'<table role="presentation" cellspacing="0" cellpadding="0" '
        f'style="border-collapse:collapse;margin:0 0 16px 0;font-size:14px;{FONT}">{rows}</table>'
    )
    return Value(text, table, block=True)


# ------------------------------------------------------------------ doors and signature


def _button(label: str, href: str | None) -> str:
    """A bulletproof button (a table cell, inline styles); without href, a grey placeholder."""
    colour = "#1d4ed8" if href else "#9aa5b1"
    inner = (
        f"display:inline-block;padding:12px 28px;{FONT}font-size:16px;font-weight:700;"
        f"line-height:20px;color:#ffffff;text-decoration:none;border-radius:6px;"
        f"border:1px solid {colour};"
    )
    face = (
        f'<a href="{html.escape(href)}" target="_blank" style="{inner}">{html.escape(label)}</a>'
        if href
        else f'<span style="{inner}">{html.escape(label)}</span>'
    )
    return (
        '<table role="presentation" cellspacing="0" cellpadding="0" border="0" '
        'style="border-collapse:separate;margin:20px 0 16px 0;">'
        f'<tr><td align="center" bgcolor="{colour}" style="border-radius:6px;background:{colour};">'
        f"{face}</td></tr></table>"
    )


def _anchor(label: str, href: str | None) -> str:
    if href is None:
        return html.escape(label)
    return f'<a href="{html.escape(href)}" style="{LINK_STYLE}">{html.escape(label)}</a>'


def doors_value(facts: AccountFacts, language: str, portal_url: str | None) -> Value:
    """The portal's doors: the button on the signed link, each invoice's PDF and the Excel
    export through that same link; placeholders without a link (previews)."""
    _ = translator(language)

    def door(destination: str) -> str | None:
        return deep_links.deep_link(portal_url, destination) if portal_url else None

    invoices = facts.to_pay + facts.coming_due + facts.on_hold
    listed = invoices[:MAX_INVOICE_LINKS]
    more = len(invoices) - len(listed)
    pdfs = [
        (_("Invoice %(number)s", number=i.number), door(deep_links.invoice_pdf(i.id)))
        for i in listed
    ]
    excel = door(deep_links.STATEMENT_XLSX)

    def line(label: str, href: str | None) -> str:
        return _("%(label)s: %(url)s", label=label, url=href) if href else label

    view_and_pay = _("View and pay online")
    preview = _("(a personal link is made for each recipient when sent)")
    your_pdfs = _("Your invoices (PDF):")
    excel_label = _("Your statement as an Excel file")
    more_label = _.ngettext(
        "%(num)d more invoice on your online statement",
        "%(num)d more invoices on your online statement",
        more,
    )
    text = [line(view_and_pay, portal_url or preview), ""]
    if pdfs:
        text.append(your_pdfs)
        text += [line(label, href) for label, href in pdfs]
        if more:
            text.append(line(more_label, portal_url))
    text.append(line(excel_label, excel))

    small = f"margin:0 0 6px 0;{FONT}font-size:14px;color:#52606d;"
    parts = [_button(view_and_pay, portal_url)]
    if portal_url is None:
        parts.append(f'<p style="{small}"><em>{html.escape(preview)}</em></p>')
    if pdfs:
        items = "".join(
            f'<li style="margin:0 0 4px 0;">{_anchor(label, href)}</li>' for label, href in pdfs
        )
        if more:
            items += f'<li style="margin:0 0 4px 0;">{_anchor(more_label, portal_url)}</li>'
        parts.append(
            f'<p style="{small}">{html.escape(your_pdfs)}</p>'
            f'<ul style="margin:0 0 10px 0;padding:0 0 0 20px;{FONT}font-size:14px;">{items}</ul>'
        )
    parts.append(
        f'<p style="margin:0 0 16px 0;{FONT}font-size:14px;">{_anchor(excel_label, excel)}</p>'
    )
    return Value("\n".join(text), "".join(parts), block=True)


def signature_value(name: str, email: str, phone: str) -> Value:
    """Who signs: the collector (name, email, phone), else the company."""
    text = "\n".join(p for p in (name, email, phone) if p)
    lines = [f"<strong>{html.escape(name)}</strong>"] if name else []
    if email:
        lines.append(
            f'<a href="mailto:{html.escape(email)}" style="{LINK_STYLE}">{html.escape(email)}</a>'
        )
    if phone:
        dial = "".join(c for c in phone if c.isdigit() or c == "+")
        lines.append(
            f'<a href="tel:{html.escape(dial)}" style="{LINK_STYLE}text-decoration:none;">'
            f"{html.escape(phone)}</a>"
            if dial
            else html.escape(phone)
        )
    block = (
        f'<p style="margin:20px 0 0 0;padding:14px 0 0 0;border-top:1px solid #e3e6ea;{FONT}'
        f'font-size:14px;line-height:1.5;color:#1f2933;">{"<br>".join(lines)}</p>'
    )
    return Value(text, block, block=True)


class ReminderValues(dict[str, Value]):
    """Every #hashtag's value for one recipient, and what the layout adds after the body:
    the portal's doors and the signature (not hashtags: a template cannot drop them)."""

    def __init__(self, values: dict[str, Value], *, doors: Value, signature: Value):
        super().__init__(values)
        self.doors = doors
        self.signature = signature


def logo_url(company: Company, base_url: str) -> str:
    return f"{base_url}/static/{company.logo_path.lstrip('/')}" if company.logo_path else ""


def hashtag_values(
    facts: AccountFacts,
    *,
    language: str,
    contact: Contact | None,
    portal_url: str | None,
    base_url: str,
    logo_src: str | None = None,
) -> ReminderValues:
    """Every hashtag's value for one recipient; `portal_url` None in previews (no link made)."""
    company, customer = facts.company, facts.customer
    locale = locale_for(language, company.locale)
    _ = translator(language)
    collector = facts.collector
    oldest = min(facts.to_pay, key=lambda i: i.due_date, default=None) or min(
        facts.coming_due, key=lambda i: i.due_date, default=None
    )
    src = logo_src if logo_src is not None else logo_url(company, base_url)
    logo = (
        Value(
            "",
            f'<img src="{html.escape(src)}" alt="{html.escape(company.name)}" height="40" '
            'style="height:40px;max-width:240px;border:0;display:block;margin:0 0 16px 0;">',
            block=True,
        )
        if src
        else Value("")
    )
    if portal_url is None:
        preview = _("(a personal link is made for each recipient when sent)")
        link = Value(preview, f"<em>{html.escape(preview)}</em>")
    else:
        invitation = _("See your account, download invoices and answer online")
        link = Value(
            portal_url,
            f'<a href="{html.escape(portal_url)}" style="color:#1d4ed8;">{html.escape(invitation)}</a>',
        )
    overdue = overdue_table(facts, language, locale)
    everything = open_items_table(facts, language, locale)
    values = {
        "CustomerName": Value(customer.name),
        "CustomerRef": Value(customer.ref),
        "ContactName": Value((contact.name if contact else "") or _("Sir or Madam")),
        "CompanyName": Value(company.name),
        "CompanyLogo": logo,
        "OverdueAmount": Value(_amounts(_sum(facts.to_pay, company.currency), locale)),
        "NotDueAmount": Value(_amounts(_sum(facts.coming_due, company.currency), locale)),
        "TotalOpen": Value(
            _amounts(
                [t.open for t in facts.statement.totals.values()] or [Money.zero(company.currency)],
                locale,
            )
        ),
        "Penalties": penalties_value(facts, language, locale),
        "OpenItemsTable": Value(everything.as_text(), everything.as_html(), block=True),
        "OverdueItemsTable": Value(
            overdue.as_text() if facts.to_pay else _("Nothing is overdue."),
            overdue.as_html() if facts.to_pay else None,
            block=bool(facts.to_pay),
        ),
        "PortalLink": link,
        "OldestDueDate": Value(_day(oldest.due_date if oldest else None, locale)),
        "DaysLate": Value(str(oldest.days_late if oldest else 0)),
        "CollectorName": Value(collector.name if collector else company.name),
        "CollectorEmail": Value(collector.email if collector else company.email),
        "CollectorPhone": Value((collector.phone if collector else "") or company.phone),
        "Today": Value(_day(facts.on, locale)),
    }
    assert set(values) == set(hashtags.HASHTAGS), "every hashtag has a value"
    signature = signature_value(
        values["CollectorName"].text, values["CollectorEmail"].text, values["CollectorPhone"].text
    )
    return ReminderValues(
        values, doors=doors_value(facts, language, portal_url), signature=signature
    )


# ------------------------------------------------------------------ the email


@dataclass(frozen=True)
class ComposedEmail:
    subject: str
    text: str
    html: str


def _footer_lines(company: Company) -> list[str]:
    address = ", ".join(line.strip() for line in company.address.splitlines() if line.strip())
    return [p for p in (company.name, address, company.legal_id) if p]


def compose_email(
    subject_template: str,
    body_template: str,
    values: dict[str, Value],
    company: Company,
    language: str,
) -> ComposedEmail:
    """The exact email: subject on one line, plain part, HTML part in a fixed layout.

    With `ReminderValues` the body is followed by the portal's doors, then the signature
    unless the template already signs with #CollectorName; both parts carry the same.
    """
    subject = hashtags.render_line(subject_template, values)
    body_text = hashtags.render_text(body_template, values).strip()
    body_html = hashtags.render_html(body_template, values, P_STYLE)
    ending: list[Value] = []
    if isinstance(values, ReminderValues):
        ending.append(values.doors)
        if "CollectorName" not in hashtags.hashtags_in(body_template):
            ending.append(values.signature)
    body_text = "\n\n".join([body_text, *(v.text for v in ending if v.text)])
    body_html = "\n".join([body_html, *(v.as_html() for v in ending)])
    footer = _footer_lines(company)
    text = body_text + ("\n\n-- \n" + "\n".join(footer) if footer else "") + "\n"
    footer_html = " · ".join(html.escape(line) for line in footer)
    page = (
        f'<!doctype html><html lang="{html.escape(language)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{html.escape(subject)}</title>'
        "</head>"
        f'<body style="margin:0;padding:0;background:#f4f5f7;">'
        '<table role="presentation" width="100%" cellspacing="0" cellpadding="0" '
        'style="background:#f4f5f7;"><tr><td align="center" style="padding:24px 12px;">'
        '<table role="presentation" width="100%" cellspacing="0" cellpadding="0" '
        'style="max-width:680px;background:#ffffff;border:1px solid #e3e6ea;border-radius:8px;">'
        f'<tr><td style="padding:28px 32px;{FONT}font-size:15px;line-height:1.55;color:#1f2933;">'
        f"{body_html}</td></tr>"
        f'<tr><td style="padding:14px 32px;border-top:1px solid #e3e6ea;{FONT}font-size:12px;'
        f'color:#7b8794;">{footer_html}</td></tr>'
        "</table></td></tr></table></body></html>"
    )
    return ComposedEmail(subject=subject, text=text, html=page)
