"""Access tables: staff users, API keys (hashed), portal links (hashed)."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import Boolean, ForeignKey, OnDelete, Serial, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from receivables.ledger.tables import Company, Contact, Customer


class Role(str, Enum):
    admin = "admin"
    collector = "collector"
    finance = "finance"
    viewer = "viewer"


class StaffUser(Table, tablename="staff_user"):
    """A person of the selling company working in the back office."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    email = Varchar(length=254, unique=True)
    name = Varchar(length=200)
    phone = Varchar(length=40, default="")
    role = Varchar(length=12, choices=Role, default=Role.viewer)
    password_hash = Varchar(length=200, secret=True)
    active = Boolean(default=True)
    language = Varchar(
        length=5, default="en", help_text="The language of their pages and notifications."
    )
    created_at = Timestamptz(default=TimestamptzNow())


class ApiKey(Table, tablename="api_key"):
    """A key an ERP sends as a bearer token; only its SHA-256 is stored."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    company = ForeignKey(Company, on_delete=OnDelete.cascade)
    name = Varchar(length=100)
    prefix = Varchar(length=16, help_text="First characters, to recognise a key in lists.")
    key_hash = Varchar(length=64, unique=True, secret=True)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class PortalLink(Table, tablename="portal_link"):
    """A signed link to one customer's portal, for one contact; stored as a hash."""

    id: Serial  # the primary key Piccolo adds, declared for type checkers

    customer = ForeignKey(Customer, on_delete=OnDelete.cascade, index=True)
    contact = ForeignKey(Contact, null=True, on_delete=OnDelete.set_null)
    token_hash = Varchar(length=64, unique=True, secret=True)
    issued_by = Varchar(length=200, help_text="Who issued it: a staff email, 'system', 'cli'.")
    message_ref = Varchar(length=200, default="", help_text="The message it was issued for.")
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    last_used_at = Timestamptz(null=True, default=None)
