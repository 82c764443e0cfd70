"""Message templates as admins edit them: text and #hashtags, per language, checked on save.

Saving refuses an unknown hashtag (or one the channel cannot carry) and names it; the
text itself is stored as typed and never interpreted. Previews fill the hashtags from a
real customer's account without issuing anything (no portal link is made).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from receivables import history
from receivables.db import atomic
from receivables.dunning import hashtags
from receivables.dunning.letters import letter_html
from receivables.dunning.messages import ComposedEmail, compose_email, hashtag_values, load_facts
from receivables.dunning.sending import Texts
from receivables.dunning.tables import Channel, MessageTemplate
from receivables.errors import FieldProblem, InvalidInput, NotFound
from receivables.history import Actor
from receivables.i18n import LANGUAGES
from receivables.ledger.tables import Customer

MAX_BODY = 20000


@dataclass
class TemplateFamily:
    """One code: its name, channel and the languages it is written in."""

    code: str
    name: str
    channel: str
    variants: list[MessageTemplate]

    @property
    def languages(self) -> list[str]:
        return [v.language for v in self.variants]


async def list_templates(company_id: int) -> list[TemplateFamily]:
    rows = (
        await MessageTemplate.objects()
        .where(MessageTemplate.company == company_id)
        .order_by(MessageTemplate.code)
        .order_by(MessageTemplate.language)
    )
    families: dict[str, TemplateFamily] = {}
    for row in rows:
        family = families.setdefault(row.code, TemplateFamily(row.code, row.name, row.channel, []))
        family.variants.append(row)
    return list(families.values())


async def get_template(template_id: int) -> MessageTemplate:
    template = await MessageTemplate.objects().get(MessageTemplate.id == template_id)
    if template is None:
        raise NotFound(f"template {template_id}")
    return template


def check_texts(subject: str, body: str, channel: str) -> list[FieldProblem]:
    problems = []
    if not subject.strip():
        problems.append(FieldProblem("subject", "required"))
    elif len(subject) > 500:
        problems.append(FieldProblem("subject", "500 characters at most"))
    if not body.strip():
        problems.append(FieldProblem("body", "required"))
    elif len(body) > MAX_BODY:
        problems.append(FieldProblem("body", f"{MAX_BODY} characters at most"))
    problems += hashtags.check(subject, "subject", channel)
    problems += hashtags.check(body, "body", channel)
    return problems


async def save_template(
    template_id: int, *, name: str, subject: str, body: str, actor: Actor
) -> MessageTemplate:
    template = await get_template(template_id)
    name = " ".join(name.split())[:120] or template.name
    problems = check_texts(subject, body, template.channel)
    if problems:
        raise InvalidInput(problems)
    async with atomic():
        await MessageTemplate.update(
            {
                MessageTemplate.name: name,
                MessageTemplate.subject: subject,
                MessageTemplate.body: body,
                MessageTemplate.updated_by: actor.label,
            }
        ).where(MessageTemplate.id == template_id)
        await history.record(
            company_id=template.company,
            actor=actor,
            kind="dunning.template_saved",
            details={
                "template": template_id,
                "code": template.code,
                "language": template.language,
                "subject": subject,
                "body": body,
                "before": {"subject": template.subject, "body": template.body},
            },
        )
    return await get_template(template_id)


async def add_language(template_id: int, language: str, actor: Actor) -> MessageTemplate:
    """A new language for a template, starting from the words of the one given."""
    source = await get_template(template_id)
    if language not in LANGUAGES:
        raise InvalidInput.one("language", "one of " + ", ".join(LANGUAGES))
    async with atomic():
        if await MessageTemplate.exists().where(
            (MessageTemplate.company == source.company)
            & (MessageTemplate.code == source.code)
            & (MessageTemplate.language == language)
        ):
            raise InvalidInput.one("language", f"'{source.code}' already exists in {language}")
        copy = MessageTemplate(
            company=source.company,
            code=source.code,
            language=language,
            channel=source.channel,
            name=source.name,
            subject=source.subject,
            body=source.body,
            updated_by=actor.label,
        )
        await copy.save()
        await history.record(
            company_id=source.company,
            actor=actor,
            kind="dunning.template_added",
            details={"template": copy.id, "code": copy.code, "language": language},
        )
    return copy


async def create_template(
    company_id: int, *, code: str, channel: str, name: str, language: str, actor: Actor
) -> MessageTemplate:
    code = code.strip().lower()
    problems = []
    if not code or len(code) > 60 or not all(c.isalnum() or c == "_" for c in code):
        problems.append(FieldProblem("code", "letters, digits and _ (60 at most)"))
    if channel not in (Channel.email.value, Channel.letter.value):
        problems.append(FieldProblem("channel", "email or letter"))
    if language not in LANGUAGES:
        problems.append(FieldProblem("language", "one of " + ", ".join(LANGUAGES)))
    if not problems and await MessageTemplate.exists().where(
        (MessageTemplate.company == company_id) & (MessageTemplate.code == code)
    ):
        problems.append(FieldProblem("code", f"'{code}' already exists"))
    if problems:
        raise InvalidInput(problems)
    async with atomic():
        template = MessageTemplate(
            company=company_id,
            code=code,
            language=language,
            channel=channel,
            name=" ".join(name.split())[:120] or code,
            subject="#CompanyName: ",
            body="Dear #ContactName,\n\n#OpenItemsTable\n\n#CollectorName",
            updated_by=actor.label,
        )
        await template.save()
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="dunning.template_added",
            details={"template": template.id, "code": code, "language": language},
        )
    return template


async def preview_customers(company_id: int, on: date, limit: int = 200) -> list[dict]:
    """Customers to preview with: those with overdue invoices first, then open ones."""
    open_invoice = (
        "SELECT 1 FROM item i WHERE i.customer = c.id AND i.kind = 'invoice' "
        "AND i.open_minor > 0 AND i.status <> 'cancelled'"
    )
    return await Customer.raw(
        "SELECT c.id, c.name, c.ref FROM customer c WHERE c.company = {} ORDER BY CASE "  # noqa: S608
        f"WHEN EXISTS ({open_invoice} AND i.due_date < {{}}) THEN 0 "
        f"WHEN EXISTS ({open_invoice}) THEN 1 ELSE 2 END, c.name LIMIT {{}}",
        company_id,
        on,
        limit,
    )


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str


async def preview_template(
    template: MessageTemplate, subject: str, body: str, customer_id: int, on: date, base_url: str
) -> Preview:
    """The template (as typed, unsaved) filled from one customer's account."""
    problems = check_texts(subject, body, template.channel)
    if problems:
        raise InvalidInput(problems)
    customer = await Customer.objects().get(Customer.id == customer_id)
    if customer is None or customer.company != template.company:
        raise InvalidInput.one("customer", "choose one of this company's customers")
    facts = await load_facts(customer_id, on)
    contact = facts.addressee
    if template.channel == Channel.letter.value:
        page = letter_html(facts, Texts(template.language, subject, body), contact)
        values = hashtag_values(
            facts, language=template.language, contact=contact, portal_url=None, base_url=""
        )
        return Preview(
            hashtags.render_line(subject, values), page, hashtags.render_text(body, values)
        )
    values = hashtag_values(
        facts, language=template.language, contact=contact, portal_url=None, base_url=base_url
    )
    email: ComposedEmail = compose_email(subject, body, values, facts.company, template.language)
    return Preview(email.subject, email.html, email.text)
