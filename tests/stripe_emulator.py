"""localstripe for the tests: one emulator per session, an app served on a real port for its
webhooks, and the helpers that make the events localstripe does not emit (refunds, disputes,
async methods) as real events signed with the webhook secret.

Its fixtures (`stripe_emulator`, `live_app`) are a plugin of tests/conftest.py: one emulator
for the session. Test modules import only the helpers (`card`, `signed_event`, ...); importing
a fixture would give that module its own emulator.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe

from receivables.payments.emulator import Emulator, free_port, start_emulator
from receivables.payments.gateway import StripeGateway, make_gateway
from receivables.settings import Settings, load_settings

SECRET_KEY = "test-secret-key-" + "x" * 32
WEBHOOK_NAME = "relance-tests"
NOWHERE = "http://127.0.0.1:9/"  # deliveries sent here are lost: the test delivers itself


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[Emulator]:
    emulator = start_emulator()
    try:
        yield emulator
    finally:
        emulator.stop()


def stripe_settings(emulator: Emulator, base_url: str, webhook_secret: str) -> Settings:
    return load_settings(
        {
            "SECRET_KEY": SECRET_KEY,
            "BASE_URL": base_url,
            "STRIPE_SECRET_KEY": "sk_test_relance",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_relance",
            "STRIPE_WEBHOOK_SECRET": webhook_secret,
            "STRIPE_API_BASE": emulator.api_base,
        }
    )


@dataclass
class LiveApp:
    """The real app on 127.0.0.1:port, its settings, the Stripe gateway its handlers are given
    (the same one the test's worker steps use), and a Stripe SDK client for the test."""

    url: str
    app: Any
    settings: Settings
    emulator: Emulator
    stripe: stripe.StripeClient
    gateway: StripeGateway

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/stripe"

    @property
    def secret(self) -> str:
        return self.settings.stripe_webhook_secret

    def webhooks_to_app(self) -> None:
        self.emulator.register_webhook(WEBHOOK_NAME, self.webhook_url, self.secret)

    def webhooks_to_nowhere(self) -> None:
        """The test delivers events itself (duplicates, concurrency, injected failures)."""
        self.emulator.register_webhook(WEBHOOK_NAME, NOWHERE, self.secret)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    async def deliver(self, payload: bytes, header: str | None) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if header is not None:
            headers["stripe-signature"] = header
        async with self.http() as client:
            return await client.post("/webhooks/stripe", content=payload, headers=headers)

    def event(
        self, kind: str, obj: dict[str, Any], *, event_id: str | None = None
    ) -> tuple[bytes, str]:
        return signed_event(kind, obj, self.secret, event_id=event_id)


async def serve(app: Any, port: int) -> tuple[Any, asyncio.Task]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            return server, task
        await asyncio.sleep(0.02)
    raise RuntimeError("the test server did not start")


@pytest.fixture
async def live_app(db, databases, stripe_emulator) -> AsyncIterator[LiveApp]:
    """The app on a free port of 127.0.0.1, localstripe delivering its webhooks to it."""
    from app import create_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = stripe_settings(stripe_emulator, url, "whsec_" + secrets.token_hex(16))
    gateway = make_gateway(settings)
    app = create_app(settings, engine=await databases.get(db), gateway=gateway)
    server, task = await serve(app, port)
    client = stripe.StripeClient(
        settings.stripe_secret_key, base_addresses={"api": stripe_emulator.api_base}
    )
    live = LiveApp(url, app, settings, stripe_emulator, client, gateway)
    live.webhooks_to_app()
    try:
        yield live
    finally:
        stripe_emulator.register_webhook(WEBHOOK_NAME, NOWHERE, "whsec_closed")
        server.should_exit = True
        await task


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload`, made by the SDK's own helper for tests."""
    return stripe.WebhookSignature.generate_signature_header(
        payload.decode("utf-8"), secret, timestamp
    )


def signed_event(
    kind: str,
    obj: dict[str, Any],
    secret: str,
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> tuple[bytes, str]:
    """A Stripe event as Stripe sends it: the JSON body and its Stripe-Signature header."""
    created = int(time.time()) if created is None else created
    body = {
        "id": event_id or "evt_test_" + secrets.token_hex(8),
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "type": kind,
        "data": {"object": obj},
    }
    payload = json.dumps(body).encode()
    return payload, sign(payload, secret, created)


async def wait_for(
    check: Callable[[], Awaitable[Any]], within: float = 15.0, interval: float = 0.1
) -> Any:
    """Poll until `check` returns something truthy (a webhook's effect); fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {within} s")
        await asyncio.sleep(interval)


async def card(client: stripe.StripeClient, number: str) -> str:
    """A PaymentMethod for a test card (what confirmCardSetup makes in the browser)."""
    method = await client.v1.payment_methods.create_async(
        {
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return method.id


async def sepa(client: stripe.StripeClient, iban: str) -> str:
    method = await client.v1.payment_methods.create_async(
        {"type": "sepa_debit", "sepa_debit": {"iban": iban}}
    )
    return method.id


def plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


__all__ = [
    "LiveApp",
    "card",
    "live_app",
    "plain",
    "sepa",
    "sign",
    "signed_event",
    "stripe_emulator",
    "stripe_settings",
    "wait_for",
]
