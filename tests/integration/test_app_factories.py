"""create_app(settings) builds every face from a settings object alone, and handlers receive
the settings, the Stripe gateway and the database engine through Litestar's dependency
injection (issue 12, point 4): a fake gateway given to create_app is the one a portal
payment reaches. SQLite only: the wiring does not depend on the engine."""

from __future__ import annotations

import re
from datetime import date, timedelta

from receivables.access.portal_links import issue_link
from receivables.payments.gateway import PaymentServiceUnavailable, StripeGateway
from receivables.settings import load_settings
from tests.conftest import TEST_SECRET, app_client
from tests.factories import make_company, make_contact, make_customer, make_item


class DownGateway(StripeGateway):
    """Stripe unreachable, and every call the app made to it remembered."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.asked: list[str] = []

    async def create_setup_intent(self, *args, **kwargs):
        self.asked.append("create_setup_intent")
        raise PaymentServiceUnavailable("the fake Stripe is down")


async def test_faces_from_settings_services_by_injection(
    sqlite_db, databases, tmp_path, monkeypatch
):
    import receivables.settings
    from app import create_app

    def no_environment():
        raise AssertionError("create_app read the environment")

    monkeypatch.setattr(receivables.settings, "get_settings", no_environment)
    settings = load_settings(
        {
            "SECRET_KEY": TEST_SECRET,
            "BASE_URL": "http://testserver.local",
            "DOCUMENTS_DIR": str(tmp_path / "documents"),
            "STRIPE_SECRET_KEY": "sk_test_fake",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_from_these_settings",
            "STRIPE_WEBHOOK_SECRET": "whsec_" + "0" * 32,
        }
    )
    gateway = DownGateway(settings)
    app = create_app(settings, engine=await databases.get(sqlite_db), gateway=gateway)
    paths = {route.path for route in app.routes}
    for face in ("/p/pay/start", "/backoffice/login", "/api/v1/items/{number:str}/pdf"):
        assert face in paths
    assert "/webhooks/stripe" in paths

    company = await make_company()
    customer = await make_customer(company)
    contact = await make_contact(customer)
    item = await make_item(customer, "120.00", due=date(2026, 1, 1) - timedelta(days=30))
    issued = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        days=30,
        issued_by="test",
    )
    async with app_client(app) as http:
        health = await http.get("/health")
        assert health.json() == {"status": "ok", "database": "sqlite"}  # the engine, injected
        # The webhook face checks the signature with these settings' secret (503 without one).
        assert (await http.post("/webhooks/stripe", content=b"{}")).status_code == 400
        assert (await http.get("/backoffice/login")).status_code == 200

        assert (await http.get(issued.url.removeprefix(settings.base_url))).status_code == 303
        page = await http.get("/p/pay")
        assert page.status_code == 200
        assert "pk_test_from_these_settings" in page.text  # the settings, injected
        csrf = re.search(r'data-csrf="([^"]+)"', page.text)
        assert csrf is not None
        started = await http.post(
            "/p/pay/start", data={"item": [str(item.id)]}, headers={"x-csrftoken": csrf.group(1)}
        )
    assert started.status_code == 503, started.text
    assert started.json() == {"error": "unavailable"}
    assert gateway.asked == ["create_setup_intent"]  # the gateway given to create_app
