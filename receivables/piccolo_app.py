"""The one Piccolo app of Relance; its migrations live in the top-level migrations/ folder."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from receivables.access.tables import ApiKey, PortalLink, StaffUser
from receivables.history import HistoryEvent
from receivables.ledger.tables import Allocation, Company, Contact, Customer, Item, Payment
from receivables.mail.tables import CapturedMail, OutboxMessage

APP_CONFIG = AppConfig(
    app_name="receivables",
    migrations_folder_path=str(Path(__file__).resolve().parent.parent / "migrations"),
    table_classes=[
        Company,
        StaffUser,
        Customer,
        Contact,
        Item,
        Payment,
        Allocation,
        HistoryEvent,
        ApiKey,
        PortalLink,
        CapturedMail,
        OutboxMessage,
    ],
    migration_dependencies=[],
    commands=[],
)
