"""The portal's words in English and French: pages, PDFs, spreadsheets and emails.

Messages are keyed by their English text (gettext style) so templates read naturally:
`{{ _("Overdue") }}`; placeholders use str.format names: `_("{n} selected", n=2)`.
The language is the contact's, else the customer's, else the company's; English otherwise.
"""

# ruff: noqa: E501  (catalogue lines are whole sentences)
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

LANGUAGES = ("en", "fr")
DEFAULT_LOCALES = {"en": "en_GB", "fr": "fr_FR"}


def normalise(code: str | None) -> str:
    """'fr_BE', 'FR', 'fr-CA' -> 'fr'; unknown or empty -> ''."""
    base = (code or "").strip().lower().replace("-", "_").split("_")[0]
    return base if base in LANGUAGES else ""


def choose_language(*candidates: str | None) -> str:
    """The first supported language among the candidates, in order; English otherwise."""
    for candidate in candidates:
        if language := normalise(candidate):
            return language
    return "en"


def locale_for(language: str, company_locale: str = "") -> str:
    """The Babel locale for dates and amounts: the company's own when it speaks `language`."""
    if normalise(company_locale) == language and "_" in company_locale.replace("-", "_"):
        return company_locale.replace("-", "_")
    return DEFAULT_LOCALES.get(language, "en_GB")


class Translator:
    """`t("Overdue")` -> "En retard" in French; unknown messages stay in English."""

    def __init__(self, language: str):
        self.language = language if language in LANGUAGES else "en"
        self._messages = FR if self.language == "fr" else {}

    def __call__(self, message: str, **values: Any) -> str:
        text = self._messages.get(message, message)
        return text.format(**values) if values else text


def translator(language: str) -> Translator:
    return Translator(language)


def missing(messages: Iterable[str]) -> list[str]:
    """Messages without a French translation (a test keeps this empty for the templates)."""
    return sorted({m for m in messages if m not in FR})


FR: dict[str, str] = {
    # pages
    "Customer portal": "Espace client",
    "Secure customer portal · Relance": "Espace client sécurisé · Relance",
    "Language": "Langue",
    "Statement of account": "Relevé de compte",
    "Statement": "Relevé",
    "Account": "Compte",
    "As of": "Au",
    "As of {date}": "Au {date}",
    "Prepared for {name}": "Préparé pour {name}",
    "Statement PDF": "Relevé PDF",
    "Excel export": "Export Excel",
    "Totals": "Totaux",
    "Overdue": "En retard",
    "Coming due": "À échoir",
    "Not yet due": "Pas encore échu",
    "On hold": "En attente",
    "Being reviewed: not asked for now": "En cours d’examen : non réclamé pour l’instant",
    "Total open": "Total restant dû",
    "Everything still to pay": "Tout ce qui reste à payer",
    "After {amount} of credit notes and payments": "Après déduction de {amount} d’avoirs et de paiements",
    "{n} invoices past their due date": "{n} factures ont dépassé leur échéance",
    "Nothing is open on your account": "Aucun montant n’est ouvert sur votre compte",
    "Thank you: every invoice is settled. New invoices will appear here.": "Merci : toutes vos factures sont réglées. Les nouvelles factures apparaîtront ici.",
    "Late-payment penalties": "Pénalités de retard",
    "Under our terms of sale, late payment makes the following amounts due. They are not included in the totals above.": "Conformément à nos conditions générales de vente, le retard de paiement rend exigibles les montants suivants. Ils ne sont pas inclus dans les totaux ci-dessus.",
    "Interest at {rate} a year": "Intérêts au taux annuel de {rate}",
    "Fixed compensation for recovery costs, per late invoice": "Indemnité forfaitaire pour frais de recouvrement, par facture en retard",
    "Total penalties": "Total des pénalités",
    "Interest at the reference rate may be added to this compensation.": "Des intérêts au taux de référence peuvent s’ajouter à cette indemnité.",
    "Disputed invoices are not counted.": "Les factures contestées ne sont pas comptées.",
    "Interest runs on each amount for the days it stayed unpaid, at the rate of each half-year; invoices paid late are included.": "Les intérêts courent sur chaque montant pour les jours où il est resté impayé, au taux de chaque semestre ; les factures payées en retard sont comprises.",
    "Penalties waived: {numbers}.": "Pénalités abandonnées : {numbers}.",
    "Open invoices": "Factures ouvertes",
    "Overdue first. Tick invoices to answer several at once.": "Les retards d’abord. Cochez des factures pour répondre sur plusieurs à la fois.",
    "Show": "Afficher",
    "All": "Toutes",
    "Select all invoices shown": "Sélectionner toutes les factures affichées",
    "Select invoice {number}": "Sélectionner la facture {number}",
    "Invoice": "Facture",
    "Issued": "Émise le",
    "Due": "Échéance",
    "Days late": "Jours de retard",
    "Amount": "Montant",
    "Open amount": "Reste dû",
    "Status": "Statut",
    "Actions": "Actions",
    "PO": "Bon de commande",
    "Download invoice {number} as PDF": "Télécharger la facture {number} en PDF",
    "Answer": "Répondre",
    "Several invoices in the same situation? Tick them, then:": "Plusieurs factures dans la même situation ? Cochez-les, puis :",
    "Answer for the selected invoices": "Répondre pour les factures cochées",
    "Showing the first {shown} of {total} invoices.": "Affichage des {shown} premières factures sur {total}.",
    "Show all {total}": "Afficher les {total}",
    "No invoice in this view": "Aucune facture dans cette vue",
    "Choose another filter above to see the rest of your account.": "Choisissez un autre filtre ci-dessus pour voir le reste de votre compte.",
    "Credit notes and payments to deduct": "Avoirs et paiements à déduire",
    "Already counted in your total open.": "Déjà pris en compte dans votre total restant dû.",
    "Credit notes and payments": "Avoirs et paiements",
    "Type": "Type",
    "Number": "Numéro",
    "Date": "Date",
    "Still to deduct": "Reste à déduire",
    "Download": "Télécharger",
    "Payment": "Paiement",
    "Received, not yet matched to invoices": "Reçu, pas encore affecté aux factures",
    "Paying and contact": "Paiement et contact",
    "How to pay": "Comment payer",
    "By bank transfer to {company}": "Par virement à {company}",
    "Reference to quote": "Référence à indiquer",
    "followed by the invoice numbers you pay": "suivie des numéros des factures payées",
    "Contact us for our bank details.": "Contactez-nous pour obtenir nos coordonnées bancaires.",
    "Your contact": "Votre contact",
    "Credit controller, {company}": "Chargé(e) de recouvrement, {company}",
    "A question about an invoice? Use “Answer” on its line: your message reaches us with the invoice attached.": "Une question sur une facture ? Utilisez « Répondre » sur sa ligne : votre message nous parvient avec la facture concernée.",
    "Thank you. Your answer was sent to {company} and is awaiting confirmation.": "Merci. Votre réponse a été transmise à {company} et est en attente de confirmation.",
    # statuses
    "Credit note": "Avoir",
    "Deducted from what you owe": "Déduit de ce que vous devez",
    "Your answer is awaiting confirmation": "Votre réponse est en attente de confirmation",
    "Your answer: will pay on {date}": "Votre réponse : paiement le {date}",
    "Your answer: paid on {date}": "Votre réponse : payé le {date}",
    "Your answer: disputed ({reason})": "Votre réponse : contestée ({reason})",
    "Your answer: a question": "Votre réponse : une question",
    "Payment in progress": "Paiement en cours",
    "Payment announced": "Paiement annoncé",
    "We will confirm on receipt": "Nous confirmerons à réception",
    "Promised": "Paiement promis",
    "For {date}": "Pour le {date}",
    "Disputed": "Contestée",
    "Due today": "Échéance aujourd’hui",
    "In {n} days": "Dans {n} jours",
    "Tomorrow": "Demain",
    # answers
    "Your answer": "Votre réponse",
    "Your answer for {n} invoices": "Votre réponse pour {n} factures",
    "Close": "Fermer",
    "Please check your answer:": "Veuillez vérifier votre réponse :",
    "What would you like to tell us?": "Que souhaitez-vous nous dire ?",
    "Already paid": "Déjà payée",
    "Will pay on": "Paiement prévu le",
    "I will pay on a date": "Je paierai à une date",
    "Question": "Question",
    "Date paid": "Date du paiement",
    "How": "Moyen de paiement",
    "Choose…": "Choisir…",
    "Payment reference": "Référence du paiement",
    "As shown on your bank statement, if you have it": "Telle qu’elle figure sur votre relevé bancaire, si vous l’avez",
    "Proof of payment (optional)": "Justificatif de paiement (facultatif)",
    "PDF, PNG or JPEG, up to {n} MB": "PDF, PNG ou JPEG, {n} Mo au maximum",
    "Payment date": "Date de paiement",
    "Today or later": "Aujourd’hui ou plus tard",
    "Reason": "Motif",
    "Message (optional for payments and promises)": "Message (facultatif pour un paiement ou une promesse)",
    "Required for a question, or for a dispute with the reason “Other”": "Obligatoire pour une question, ou pour une contestation avec le motif « Autre »",
    "Send my answer": "Envoyer ma réponse",
    "Cancel": "Annuler",
    "Your answer is sent to {company}; it appears on your statement as awaiting confirmation until they confirm it.": "Votre réponse est transmise à {company} ; elle apparaît sur votre relevé comme en attente de confirmation jusqu’à sa validation.",
    "Back to the statement": "Retour au relevé",
    "Bank transfer": "Virement",
    "Card": "Carte",
    "Cheque": "Chèque",
    "Direct debit": "Prélèvement",
    "Other": "Autre",
    "Price": "Prix",
    "Quantity": "Quantité",
    "Quality": "Qualité",
    "Not received": "Non reçu",
    "Already credited": "Déjà couvert par un avoir",
    # answer errors
    "Choose what you want to tell us.": "Choisissez ce que vous souhaitez nous dire.",
    "Keep your message under 2,000 characters.": "Votre message doit faire moins de 2 000 caractères.",
    "Enter the date you paid.": "Indiquez la date de votre paiement.",
    "Enter a valid date.": "Indiquez une date valide.",
    "The payment date cannot be in the future.": "La date de paiement ne peut pas être dans le futur.",
    "Choose how you paid.": "Choisissez le moyen de paiement.",
    "Keep the reference under 100 characters.": "La référence doit faire moins de 100 caractères.",
    "The file is larger than 5 MB.": "Le fichier dépasse 5 Mo.",
    "Attach a PDF, PNG or JPEG file.": "Joignez un fichier PDF, PNG ou JPEG.",
    "Enter the date you will pay.": "Indiquez la date à laquelle vous paierez.",
    "The date cannot be in the past.": "La date ne peut pas être dans le passé.",
    "Choose a date within a year.": "Choisissez une date dans l’année qui vient.",
    "Choose a reason.": "Choisissez un motif.",
    "Describe the problem.": "Décrivez le problème.",
    "Write your question.": "Écrivez votre question.",
    "Select at least one invoice.": "Sélectionnez au moins une facture.",
    "Select fewer invoices at once.": "Sélectionnez moins de factures à la fois.",
    "One of the selected invoices can no longer be answered.": "Une des factures sélectionnées ne peut plus recevoir de réponse.",
    "say why the answer is rejected": "indiquez pourquoi la réponse est refusée",
    # access pages
    "This link no longer works": "Ce lien ne fonctionne plus",
    "Links to your statement expire after a while, or are replaced by the link in a more recent email.": "Les liens vers votre relevé expirent au bout d’un certain temps, ou sont remplacés par celui d’un e-mail plus récent.",
    "We can email a fresh link to the contacts on file for this account. You will not need to type an address.": "Nous pouvons envoyer un nouveau lien par e-mail aux contacts enregistrés pour ce compte. Vous n’avez aucune adresse à saisir.",
    "Email me a new link": "M’envoyer un nouveau lien",
    "Check your inbox": "Consultez votre messagerie",
    "If this link belongs to an account, its contacts will receive a new link by email within a few minutes.": "Si ce lien correspond à un compte, ses contacts recevront un nouveau lien par e-mail d’ici quelques minutes.",
    "The new link is sent only to the addresses your supplier has on file for the account.": "Le nouveau lien est envoyé uniquement aux adresses que votre fournisseur a enregistrées pour ce compte.",
    "Your visit has ended": "Votre consultation est terminée",
    "For your security, access to your statement lasts a few hours. Open the link in your latest email from your supplier to continue.": "Pour votre sécurité, l’accès à votre relevé dure quelques heures. Ouvrez le lien du dernier e-mail de votre fournisseur pour continuer.",
    "If that link no longer works, the page it opens lets you ask for a fresh one.": "Si ce lien ne fonctionne plus, la page qu’il ouvre vous permet d’en demander un nouveau.",
    "Please try again": "Veuillez réessayer",
    "This form was open for too long or came from another page, so it was not sent. Go back, reload the page and send it again.": "Ce formulaire est resté ouvert trop longtemps ou provient d’une autre page : il n’a pas été envoyé. Revenez en arrière, rechargez la page et envoyez-le à nouveau.",
    "Too many attempts": "Trop de tentatives",
    "Please wait {n} seconds, then try again.": "Veuillez patienter {n} secondes, puis réessayer.",
    # documents
    "{label}: {value}": "{label}\u00a0: {value}",
    "Customer": "Client",
    "Currency": "Devise",
    "Issue date": "Date d’émission",
    "Due date": "Date d’échéance",
    "PO number": "N° de commande",
    "Already paid or credited": "Déjà payé ou couvert par un avoir",
    "Copy produced from our accounts on {date}. The original invoice remains the reference.": "Copie établie à partir de notre comptabilité le {date}. La facture originale fait foi.",
    "Copy produced from our accounts on {date}. The original credit note remains the reference.": "Copie établie à partir de notre comptabilité le {date}. L’avoir original fait foi.",
    "Credit amount": "Montant de l’avoir",
    "Already deducted from invoices": "Déjà déduit de factures",
    "Credit still available": "Avoir encore disponible",
    "Nothing to pay": "Rien à payer",
    "This credit note is in your favour: it is deducted from your open invoices, or refunded on request.": "Cet avoir est en votre faveur : il est déduit de vos factures ouvertes, ou remboursé sur demande.",
    "Reference": "Référence",
    # emails
    "Hello{name},": "Bonjour{name},",
    "A contact": "Un contact",
    "Customer answer to review": "Réponse client à examiner",
    "{contact} of {customer} ({ref}) answered in the customer portal.": "{contact} ({customer}, compte {ref}) a répondu depuis l’espace client.",
    "Message": "Message",
    "A proof of payment is attached to the answer.": "Un justificatif de paiement accompagne la réponse.",
    "due {date}": "échéance {date}",
    "open {amount}": "reste dû {amount}",
    "Review": "Examiner",
    "The answer stays pending, and shows as awaiting confirmation to the customer, until you validate or reject it.": "La réponse reste en attente, et apparaît au client comme en attente de confirmation, jusqu’à ce que vous la validiez ou la refusiez.",
    "Replying to this email writes to {email}.": "Répondre à cet e-mail écrit à {email}.",
    "About your answer on invoice {number}": "Au sujet de votre réponse sur la facture {number}",
    "We could not confirm your answer on invoice {number}.": "Nous n’avons pas pu confirmer votre réponse sur la facture {number}.",
    "The invoice keeps its previous status. You can answer again from the link in our latest email, or reply to this email.": "La facture conserve son statut précédent. Vous pouvez répondre à nouveau depuis le lien de notre dernier e-mail, ou répondre à cet e-mail.",
    "Your new link to your statement": "Votre nouveau lien vers votre relevé",
    "A new link to the statement of account of {customer} was requested from our customer portal.": "Un nouveau lien vers le relevé de compte de {customer} a été demandé depuis notre espace client.",
    "Open my statement": "Ouvrir mon relevé",
    "The link is personal and valid for {days} days. If you did not ask for it, you can ignore this email: nothing changes on your account.": "Ce lien est personnel et valable {days} jours. Si vous ne l’avez pas demandé, ignorez cet e-mail : rien ne change sur votre compte.",
}
