"""The names staff and customers read for the domain's codes, defined once here and marked
for the catalogs (N_): pages translate them where they show them (`_(label)`).

Item statuses, answer kinds, dispute reasons and dunning levels, channels and modes; a code
missing here reads as itself, capitalised."""

from __future__ import annotations

from receivables.dunning.scenarios import CHANNEL_LABELS, LEVEL_LABELS, MODE_LABELS
from receivables.i18n import N_
from receivables.portal.tables import DISPUTE_REASONS

ITEM_STATUSES = {
    "open": N_("Open"),
    "overdue": N_("Overdue"),
    "promised": N_("Promise to pay"),
    "disputed": N_("Disputed"),
    "paid_pending": N_("Paid, to confirm"),
    "payment_in_progress": N_("Payment in progress"),
    "paid": N_("Paid"),
    "written_off": N_("Written off"),
    "cancelled": N_("Cancelled"),
}
"""An item's collection status; an open item past its due date reads 'overdue'."""

ANSWER_KINDS = {
    "paid": N_("Already paid"),
    "promise": N_("Will pay on"),
    "dispute": N_("Dispute"),
    "question": N_("Question"),
}
"""What a customer answered in the portal."""

ROLES = {
    "viewer": N_("Viewer"),
    "collector": N_("Collector"),
    "finance": N_("Finance"),
    "admin": N_("Admin"),
}

PAYER_PROFILES = {
    "negligent": N_("Negligent"),
    "bad_payer": N_("Bad payer"),
    "insolvent": N_("Insolvent"),
    "administrative": N_("Administrative"),
    "dispute_prone": N_("Dispute prone"),
    "automatic": N_("Automatic"),
    "good_payer": N_("Good payer"),
}

LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
"""Each language in its own words (never translated)."""

LABELS = {
    "item_status": ITEM_STATUSES,
    "answer_kind": ANSWER_KINDS,
    "dispute_reason": DISPUTE_REASONS,
    "level": LEVEL_LABELS,
    "channel": CHANNEL_LABELS,
    "mode": MODE_LABELS,
    "role": ROLES,
    "payer_profile": PAYER_PROFILES,
}


def label(kind: str, code: str | None) -> str:
    """The English label (a catalog msgid) of `code`; the code itself when unknown."""
    value = code or ""
    return LABELS.get(kind, {}).get(value) or value.replace("_", " ").capitalize()
