"""Shared pieces of the portal tests: an app with its own documents folder, an account with
a live link, and a visit opened the way a customer opens one. (No tests here.)"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from receivables.access.portal_links import issue_link
from receivables.access.staff import create_user
from receivables.ledger.tables import Company, Contact, Customer, Item
from tests.conftest import app_client
from tests.factories import make_company, make_contact, make_customer, make_item

TODAY = date.today()
__all__ = ["fresh_limits", "pclient", "portal_settings"]


@pytest.fixture(autouse=True)
def fresh_limits():
    """Nothing left to do: the limits live in the database, which every test starts empty.
    (Kept while test modules import it.)"""
    yield


@pytest.fixture
def portal_settings(settings, tmp_path):
    return dataclasses.replace(settings, documents_dir=str(tmp_path / "documents"))


@pytest.fixture
async def pclient(db, portal_settings, databases):
    """An HTTP client on the real app, with the test's database and documents folder."""
    from app import create_app

    app = create_app(portal_settings, engine=await databases.get(db))
    async with app_client(app) as c:
        yield c


@dataclass
class Account:
    company: Company
    customer: Customer
    contact: Contact
    items: dict[str, Item]
    token: str
    collector_email: str

    @property
    def path(self) -> str:
        return f"/p/{self.token}"


async def make_account(
    settings,
    *,
    policy: str = "none",
    contact_language: str = "",
    with_collector: bool = True,
    company_email: str = "ar@seller.example",
    **company_kw,
) -> Account:
    """A seller, a buyer with one contact, a collector, and a live link for that contact."""
    company = await make_company(
        name="Seller & Co SAS",
        email=company_email,
        phone="+33 1 00 00 00 00",
        penalty_policy=policy,
        **company_kw,
    )
    collector = None
    if with_collector:
        email = f"collector{company.id}@seller.example"
        collector = await create_user(email, "Colette Collector", "collector", "long-password-1")
    customer = await make_customer(
        company, name="Buyer Ltd", collector=collector.id if collector else None
    )
    contact = await make_contact(
        customer,
        name="Ada Payables",
        email=f"ada{customer.id}@buyer.example",
        language=contact_language,
    )
    items = {
        "late": await make_item(
            customer, "1200.00", due=TODAY - timedelta(days=40), number=f"INV-{customer.id}-LATE"
        ),
        "late2": await make_item(
            customer, "300.50", due=TODAY - timedelta(days=5), number=f"INV-{customer.id}-LATE2"
        ),
        "soon": await make_item(
            customer, "800.00", due=TODAY + timedelta(days=20), number=f"INV-{customer.id}-SOON"
        ),
    }
    issued = await issue_link(
        customer=customer,
        contact=contact,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        days=settings.portal_link_days,
        issued_by="test",
        message_ref="<reminder-1@seller.example>",
    )
    return Account(
        company, customer, contact, items, issued.token, collector.email if collector else ""
    )


async def open_visit(client, account: Account):
    """Exchange the link like a browser: returns the statement page response."""
    r = await client.get(account.path)
    assert r.status_code == 303, r.text[:500]
    page = await client.get("/p/statement")
    assert page.status_code == 200, page.text[:500]
    return page


def csrf_of(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def hx(**extra: str) -> dict[str, str]:
    return {"HX-Request": "true", **extra}
