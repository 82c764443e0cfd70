"""The call form, read the same way on an action's page and on the account page."""

from __future__ import annotations

from datetime import date
from typing import Any

from backoffice.forms import optional_date, text
from receivables.dunning.calls import CallInput, CallOutcome, Record, check_call
from receivables.errors import FieldProblem, InvalidInput
from receivables.i18n import N_
from receivables.portal.tables import DisputeReason

OUTCOMES = [
    (CallOutcome.reached.value, N_("Reached")),
    (CallOutcome.no_answer.value, N_("No answer")),
    (CallOutcome.voicemail.value, N_("Left a voicemail")),
    (CallOutcome.wrong_number.value, N_("Wrong number")),
]
RECORDS = [
    ("", N_("Nothing")),
    (Record.promise.value, N_("A promise to pay")),
    (Record.dispute.value, N_("A dispute")),
]
DISPUTE_REASONS = [(r.value, r.value.replace("_", " ").capitalize()) for r in DisputeReason]
CALL_CHOICES = {"outcomes": OUTCOMES, "records": RECORDS, "dispute_reasons": DISPUTE_REASONS}
"""What the call form's selects offer (templates/backoffice/customers/_call_form.html)."""


def listed(values: dict[str, Any], name: str) -> list[str]:
    """A repeated field (checkboxes) as a list, whatever the number of boxes ticked."""
    raw = values.get(name, [])
    return [str(v) for v in (raw if isinstance(raw, list) else [raw])]


def read_call(values: dict[str, Any], today: date) -> CallInput:
    """The call as typed; InvalidInput names every bad field at once (a date that cannot be
    read is named once, not again as missing)."""
    problems: list[FieldProblem] = []
    call = CallInput(
        outcome=text(values, "outcome"),
        notes=str(values.get("notes", "")),
        record=text(values, "record"),
        item_ids=tuple(int(i) for i in listed(values, "items") if i.isdigit()),
        promise_date=optional_date(values, "promise_date", problems),
        dispute_reason=text(values, "dispute_reason"),
        callback_on=optional_date(values, "callback_on", problems),
    )
    if problems:
        unreadable = {p.field for p in problems}
        raise InvalidInput(
            problems + [p for p in check_call(call, today) if p.field not in unreadable]
        )
    return call
