"""A real SMTP server (aiosmtpd) for tests, with scriptable answers."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP


class Recorder:
    """Keeps every accepted message; `answers` are returned (once each) before accepting."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.answers: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.answers:
            return self.answers.pop(0)
        self.messages.append(
            message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        )
        return "250 OK"


async def start_smtp() -> tuple[asyncio.Server, Recorder, int]:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(recorder, hostname="test-smtp"), "127.0.0.1", 0)
    return server, recorder, server.sockets[0].getsockname()[1]
