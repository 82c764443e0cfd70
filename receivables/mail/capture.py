"""The demo's mail catcher: an aiosmtpd handler that keeps every message in the database,
its portal links redacted (the customer's access is not for the staff who read it)."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy

from aiosmtpd.smtp import SMTP, Envelope, Session

from receivables.mail.captured import redacted_copy
from receivables.mail.sealed_links import redact
from receivables.mail.tables import CapturedMail


class CaptureHandler:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        message = message_from_bytes(raw, policy=policy.default)
        await CapturedMail.insert(
            CapturedMail(
                mail_from=envelope.mail_from or "",
                rcpt_to=", ".join(envelope.rcpt_tos),
                subject=redact(str(message.get("Subject", ""))),
                raw=redacted_copy(raw),
            )
        )
        return "250 Message accepted for delivery"


async def start_capture_server(host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """An SMTP server on this event loop; port 0 picks a free one (see server.sockets)."""
    loop = asyncio.get_running_loop()
    handler = CaptureHandler()
    return await loop.create_server(lambda: SMTP(handler, hostname="relance-demo"), host, port)
