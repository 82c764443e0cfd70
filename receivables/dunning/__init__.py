"""Dunning: payer profiles, scenarios and steps, the daily run, the agenda, #hashtags, letters.

Importing the package tells the outbox how to treat dunning emails when it sends them:
check they are still wanted, and render the attachments their step chose.
"""

from __future__ import annotations

from receivables.mail.outbox import Attachment, MessageKind, register_kind
from receivables.settings import Settings

DUNNING_KIND = "dunning"


async def _cancel_reason(row: dict) -> str | None:
    from receivables.dunning.sending import cancel_reason

    return await cancel_reason(row)


async def _attachments(row: dict, settings: Settings) -> list[Attachment]:
    from receivables.dunning.letters import render_attachments

    return await render_attachments(row, settings)


register_kind(DUNNING_KIND, MessageKind(cancel_reason=_cancel_reason, attachments=_attachments))
