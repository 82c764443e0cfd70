"""The default scenario of each payer profile and the English and French templates they use,
as data. `install_defaults` writes whatever a company is missing (it never overwrites)."""

# ruff: noqa: E501  (template texts are whole sentences)
from __future__ import annotations

from dataclasses import dataclass

from receivables import history
from receivables.db import atomic
from receivables.dunning.tables import Channel, DunningStep, Level, MessageTemplate, Mode, Scenario
from receivables.history import Actor
from receivables.ledger.tables import PayerProfile


@dataclass(frozen=True)
class StepData:
    name: str
    level: Level
    offset_days: int
    channel: Channel
    mode: Mode
    template_code: str = ""
    attach_statement: bool = False
    attach_invoices: bool = False


@dataclass(frozen=True)
class ScenarioData:
    name: str
    description: str
    steps: tuple[StepData, ...]


E, L, P = Channel.email, Channel.letter, Channel.phone
AUTO, CONFIRM, MANUAL = Mode.automatic, Mode.confirm, Mode.manual
PRE, L1, L2, L3, LIT = Level

SCENARIOS: dict[PayerProfile, ScenarioData] = {
    PayerProfile.good_payer: ScenarioData(
        "Good payer: statement before due",
        "Pays on time: a statement a week before the due date, and nothing more.",
        (
            StepData(
                "Statement before the due date", PRE, -7, E, AUTO, "statement_before_due", True
            ),
        ),
    ),
    PayerProfile.automatic: ScenarioData(
        "Direct debit: statement before due",
        "Pays by direct debit: a statement before the debit, and nothing more.",
        (StepData("Statement before the debit", PRE, -5, E, AUTO, "statement_before_due", True),),
    ),
    PayerProfile.negligent: ScenarioData(
        "Negligent payer: early friendly reminders",
        "Forgets rather than refuses: a friendly word before the due date, then gentle reminders.",
        (
            StepData("Friendly reminder before due", PRE, -5, E, AUTO, "friendly_before_due"),
            StepData("First reminder", L1, 3, E, AUTO, "reminder_1"),
            StepData("Second reminder", L2, 15, E, CONFIRM, "reminder_2", True),
            StepData("Phone call", L2, 22, P, MANUAL),
            StepData("Formal notice", L3, 35, L, MANUAL, "formal_notice"),
            StepData("Hand over to litigation", LIT, 60, P, MANUAL),
        ),
    ),
    PayerProfile.bad_payer: ScenarioData(
        "Bad payer: short intervals, early formal notice",
        "Pays late on purpose: reminders the day after the due date and a formal notice after two weeks.",
        (
            StepData("First reminder", L1, 1, E, AUTO, "reminder_1"),
            StepData("Second reminder", L2, 7, E, CONFIRM, "reminder_2", True),
            StepData("Phone call", L2, 10, P, MANUAL),
            StepData("Formal notice", L3, 15, L, MANUAL, "formal_notice"),
            StepData("Hand over to litigation", LIT, 30, P, MANUAL),
        ),
    ),
    PayerProfile.dispute_prone: ScenarioData(
        "Dispute-prone: formal evidence early",
        "Contests invoices: the invoices themselves go out before the due date and with every reminder.",
        (
            StepData(
                "Statement and invoices before due",
                PRE,
                -10,
                E,
                AUTO,
                "statement_before_due",
                True,
                True,
            ),
            StepData(
                "Reminder with invoice copies", L1, 3, E, AUTO, "evidence_reminder", False, True
            ),
            StepData("Second reminder with evidence", L2, 10, E, CONFIRM, "reminder_2", True, True),
            StepData("Formal notice", L3, 20, L, MANUAL, "formal_notice"),
            StepData("Hand over to litigation", LIT, 45, P, MANUAL),
        ),
    ),
    PayerProfile.administrative: ScenarioData(
        "Administrative payer: check before due",
        "Slow approval circuits: make sure the right people have what they need well before the due date.",
        (
            StepData("Check before due", PRE, -15, E, AUTO, "admin_check_before_due", False, True),
            StepData("First reminder", L1, 5, E, AUTO, "reminder_1"),
            StepData("Call accounts payable", L1, 12, P, MANUAL),
            StepData("Second reminder", L2, 20, E, CONFIRM, "reminder_2", True),
            StepData("Formal notice", L3, 40, L, MANUAL, "formal_notice"),
            StepData("Hand over to litigation", LIT, 75, P, MANUAL),
        ),
    ),
    PayerProfile.insolvent: ScenarioData(
        "Insolvent: firm, with a payment plan",
        "Cannot pay: firm from the first day, a payment plan offered early.",
        (
            StepData("Firm reminder", L1, 1, E, AUTO, "firm_reminder"),
            StepData("Payment plan proposal", L2, 5, E, CONFIRM, "payment_plan_proposal", True),
            StepData("Phone call", L2, 8, P, MANUAL),
            StepData("Formal notice", L3, 12, L, MANUAL, "formal_notice"),
            StepData("Hand over to litigation", LIT, 20, P, MANUAL),
        ),
    ),
}


@dataclass(frozen=True)
class TemplateText:
    name: str
    subject: str
    body: str


@dataclass(frozen=True)
class TemplateData:
    channel: Channel
    texts: dict[str, TemplateText]


TEMPLATES: dict[str, TemplateData] = {
    "statement_before_due": TemplateData(
        E,
        {
            "en": TemplateText(
                "Statement before the due date",
                "#CompanyName: your statement of account",
                """#CompanyLogo
Dear #ContactName,

Please find below the statement of account of #CustomerName with #CompanyName. #NotDueAmount will fall due shortly, the first on #OldestDueDate.

#OpenItemsTable

If anything could hold up payment (a missing purchase order, a wrong address, a question about an invoice), tell us now and we will sort it out before the due date. You can check each invoice, download it and answer us online:
#PortalLink

Kind regards,
#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
            "fr": TemplateText(
                "Relevé avant échéance",
                "#CompanyName : votre relevé de compte",
                """#CompanyLogo
Bonjour #ContactName,

Voici le relevé de compte de #CustomerName chez #CompanyName. #NotDueAmount arrive prochainement à échéance, la première le #OldestDueDate.

#OpenItemsTable

Si quelque chose pouvait retarder le paiement (bon de commande manquant, adresse erronée, question sur une facture), dites-le-nous dès maintenant : nous le réglerons avant l'échéance. Vous pouvez consulter chaque facture, la télécharger et nous répondre en ligne :
#PortalLink

Bien cordialement,
#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
        },
    ),
    "friendly_before_due": TemplateData(
        E,
        {
            "en": TemplateText(
                "Friendly reminder before due",
                "Coming due on #OldestDueDate: #NotDueAmount",
                """Dear #ContactName,

A quick note: #NotDueAmount falls due on #OldestDueDate. Here is where the account of #CustomerName stands today:

#OpenItemsTable

Nothing to do if payment is already scheduled. Otherwise the invoices and our bank details are one click away:
#PortalLink

Thank you,
#CollectorName
#CollectorEmail · #CollectorPhone""",
            ),
            "fr": TemplateText(
                "Rappel amical avant échéance",
                "Échéance du #OldestDueDate : #NotDueAmount",
                """Bonjour #ContactName,

Un petit mot : #NotDueAmount arrive à échéance le #OldestDueDate. Voici où en est le compte de #CustomerName aujourd'hui :

#OpenItemsTable

Rien à faire si le paiement est déjà programmé. Sinon, les factures et nos coordonnées bancaires sont à portée de clic :
#PortalLink

Merci,
#CollectorName
#CollectorEmail · #CollectorPhone""",
            ),
        },
    ),
    "admin_check_before_due": TemplateData(
        E,
        {
            "en": TemplateText(
                "Check before the due date",
                "Invoices due on #OldestDueDate: is anything missing for approval?",
                """Dear #ContactName,

The invoices below fall due from #OldestDueDate (#NotDueAmount in all). Copies are attached. If your approval circuit needs anything else (purchase order number, delivery note, a different addressee), please tell us today so that payment goes through on time.

#OpenItemsTable

You can also answer invoice by invoice online:
#PortalLink

Kind regards,
#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
            "fr": TemplateText(
                "Vérification avant échéance",
                "Factures à échéance du #OldestDueDate : manque-t-il quelque chose pour leur validation ?",
                """Bonjour #ContactName,

Les factures ci-dessous arrivent à échéance à partir du #OldestDueDate (#NotDueAmount au total). Vous en trouverez les copies en pièces jointes. Si votre circuit de validation a besoin d'autre chose (numéro de bon de commande, bon de livraison, autre destinataire), merci de nous le dire dès aujourd'hui pour que le paiement parte à temps.

#OpenItemsTable

Vous pouvez aussi répondre facture par facture en ligne :
#PortalLink

Bien cordialement,
#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
        },
    ),
    "reminder_1": TemplateData(
        E,
        {
            "en": TemplateText(
                "First reminder",
                "Overdue invoices: #OverdueAmount",
                """Dear #ContactName,

Unless we are mistaken, we have not yet received payment of #OverdueAmount, due since #OldestDueDate. It has probably slipped through; here is the account of #CustomerName:

#OpenItemsTable

You can pay, download the invoices or tell us about any problem here:
#PortalLink

If payment has just been made, please disregard this message.

Kind regards,
#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
            "fr": TemplateText(
                "Première relance",
                "Factures échues : #OverdueAmount",
                """Bonjour #ContactName,

Sauf erreur de notre part, nous n'avons pas encore reçu le règlement de #OverdueAmount, échu depuis le #OldestDueDate. Il s'agit sans doute d'un oubli ; voici le compte de #CustomerName :

#OpenItemsTable

Vous pouvez régler, télécharger les factures ou nous signaler un problème ici :
#PortalLink

Si le règlement vient d'être effectué, merci de ne pas tenir compte de ce message.

Bien cordialement,
#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
        },
    ),
    "reminder_2": TemplateData(
        E,
        {
            "en": TemplateText(
                "Second reminder",
                "Second reminder: #OverdueAmount overdue for #DaysLate days",
                """Dear #ContactName,

Despite our first reminder, #OverdueAmount remains unpaid, the oldest invoice #DaysLate days after its due date (#OldestDueDate). Your statement of account is attached.

#OpenItemsTable

Please pay without delay, or tell us today what prevents payment:
#PortalLink

Under our terms of sale, late payment gives rise to penalties. As of #Today: #Penalties

#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
            "fr": TemplateText(
                "Deuxième relance",
                "Deuxième relance : #OverdueAmount échus depuis #DaysLate jours",
                """Bonjour #ContactName,

Malgré notre première relance, #OverdueAmount reste impayé, la plus ancienne facture ayant #DaysLate jours de retard (échéance du #OldestDueDate). Votre relevé de compte est joint.

#OpenItemsTable

Merci de régler sans délai, ou de nous indiquer dès aujourd'hui ce qui empêche le paiement :
#PortalLink

Conformément à nos conditions générales de vente, tout retard de paiement donne lieu à des pénalités. Au #Today : #Penalties

#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
        },
    ),
    "evidence_reminder": TemplateData(
        E,
        {
            "en": TemplateText(
                "Reminder with invoice copies",
                "Overdue invoices and their copies: #OverdueAmount",
                """Dear #ContactName,

#OverdueAmount is overdue since #OldestDueDate. So that nothing stands in the way, copies of the invoices concerned are attached.

#OpenItemsTable

If you contest an invoice, please tell us which one and why, online, so we can look into it at once:
#PortalLink

Kind regards,
#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
            "fr": TemplateText(
                "Relance avec copies des factures",
                "Factures échues et leurs copies : #OverdueAmount",
                """Bonjour #ContactName,

#OverdueAmount est échu depuis le #OldestDueDate. Pour que rien ne fasse obstacle au paiement, vous trouverez en pièces jointes les copies des factures concernées.

#OpenItemsTable

Si vous contestez une facture, indiquez-nous laquelle et pourquoi, en ligne, afin que nous l'examinions aussitôt :
#PortalLink

Bien cordialement,
#CollectorName
#CompanyName · #CollectorEmail · #CollectorPhone""",
            ),
        },
    ),
    "firm_reminder": TemplateData(
        E,
        {
            "en": TemplateText(
                "Firm reminder",
                "Payment required: #OverdueAmount overdue",
                """Dear #ContactName,

#OverdueAmount was due on #OldestDueDate and remains unpaid.

#OpenItemsTable

We ask you to pay this amount now. If you cannot pay it in full, contact us at once so that we can agree on a schedule: #CollectorPhone, #CollectorEmail, or online:
#PortalLink

#CollectorName
#CompanyName""",
            ),
            "fr": TemplateText(
                "Relance ferme",
                "Règlement exigé : #OverdueAmount échus",
                """Bonjour #ContactName,

#OverdueAmount était dû le #OldestDueDate et reste impayé.

#OpenItemsTable

Nous vous demandons de régler ce montant dès maintenant. Si vous ne pouvez pas le régler en totalité, contactez-nous immédiatement afin de convenir d'un échéancier : #CollectorPhone, #CollectorEmail, ou en ligne :
#PortalLink

#CollectorName
#CompanyName""",
            ),
        },
    ),
    "payment_plan_proposal": TemplateData(
        E,
        {
            "en": TemplateText(
                "Payment plan proposal",
                "A payment plan for #OverdueAmount",
                """Dear #ContactName,

#OverdueAmount is still unpaid (#DaysLate days late). We would rather find a solution with you than go further.

We propose a payment plan: a first payment now, then monthly instalments, with no further reminder while the plan is kept. Reply to this email or call #CollectorPhone within eight days to agree on the amounts. Your statement is attached.

#OpenItemsTable

Late-payment penalties so far: #Penalties

#PortalLink

#CollectorName
#CompanyName · #CollectorEmail""",
            ),
            "fr": TemplateText(
                "Proposition d'échéancier",
                "Un échéancier pour #OverdueAmount",
                """Bonjour #ContactName,

#OverdueAmount reste impayé (#DaysLate jours de retard). Nous préférons trouver une solution avec vous plutôt que d'aller plus loin.

Nous vous proposons un échéancier : un premier versement dès maintenant, puis des mensualités, sans nouvelle relance tant qu'il est respecté. Répondez à ce message ou appelez le #CollectorPhone sous huit jours pour en convenir des montants. Votre relevé est joint.

#OpenItemsTable

Pénalités de retard à ce jour : #Penalties

#PortalLink

#CollectorName
#CompanyName · #CollectorEmail""",
            ),
        },
    ),
    "formal_notice": TemplateData(
        L,
        {
            "en": TemplateText(
                "Formal notice (letter)",
                "Formal notice to pay",
                """Dear #ContactName,

Despite our reminders, #CustomerName has not paid the sums below, the oldest of which fell due on #OldestDueDate.

#OverdueItemsTable

We hereby give you formal notice to pay #OverdueAmount within eight days of receipt of this letter.

Late-payment penalties as of #Today: #Penalties

Failing payment within that time, we will hand the matter over for legal recovery without further notice, at your expense.

Yours faithfully,

#CollectorName
#CompanyName""",
            ),
            "fr": TemplateText(
                "Mise en demeure (courrier)",
                "Mise en demeure de payer",
                """Madame, Monsieur,

Malgré nos relances, #CustomerName ne nous a pas réglé les sommes ci-dessous, dont la plus ancienne était échue le #OldestDueDate.

#OverdueItemsTable

Par la présente, nous vous mettons en demeure de nous régler la somme de #OverdueAmount dans un délai de huit jours à compter de la réception de ce courrier.

Pénalités de retard au #Today : #Penalties

À défaut de paiement dans ce délai, nous engagerons sans autre avis une procédure de recouvrement judiciaire, à vos frais.

Veuillez agréer, Madame, Monsieur, nos salutations distinguées.

#CollectorName
#CompanyName""",
            ),
        },
    ),
}


async def install_defaults(company_id: int, actor: Actor | None = None) -> tuple[int, int]:
    """Write the default scenarios and templates the company does not have yet.

    Returns (scenarios created, templates created). Idempotent; an admin's edits stay.
    """
    actor = actor or Actor.system("dunning defaults")
    created_scenarios = created_templates = 0
    async with atomic():
        have_profiles = {
            r["payer_profile"]
            for r in await Scenario.select(Scenario.payer_profile).where(
                (Scenario.company == company_id) & Scenario.payer_profile.is_not_null()
            )
        }
        for profile, data in SCENARIOS.items():
            if profile.value in have_profiles:
                continue
            scenario = Scenario(
                company=company_id,
                name=data.name,
                payer_profile=profile.value,
                description=data.description,
            )
            await scenario.save()
            await DunningStep.insert(
                *[
                    DunningStep(
                        scenario=scenario.id,
                        position=i,
                        name=s.name,
                        level=s.level.value,
                        offset_days=s.offset_days,
                        channel=s.channel.value,
                        mode=s.mode.value,
                        template_code=s.template_code,
                        attach_statement=s.attach_statement,
                        attach_invoices=s.attach_invoices,
                    )
                    for i, s in enumerate(data.steps)
                ]
            )
            created_scenarios += 1
        have_templates = {
            (r["code"], r["language"])
            for r in await MessageTemplate.select(
                MessageTemplate.code, MessageTemplate.language
            ).where(MessageTemplate.company == company_id)
        }
        rows = [
            MessageTemplate(
                company=company_id,
                code=code,
                language=language,
                channel=data.channel.value,
                name=text.name,
                subject=text.subject,
                body=text.body,
                updated_by="relance",
            )
            for code, data in TEMPLATES.items()
            for language, text in data.texts.items()
            if (code, language) not in have_templates
        ]
        if rows:
            await MessageTemplate.insert(*rows)
        created_templates = len(rows)
        if created_scenarios or created_templates:
            await history.record(
                company_id=company_id,
                actor=actor,
                kind="dunning.defaults_installed",
                details={"scenarios": created_scenarios, "templates": created_templates},
            )
    return created_scenarios, created_templates
