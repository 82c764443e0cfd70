"""The one Piccolo app of Relance; its migrations live in the top-level migrations/ folder."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from receivables.access.rate_limits import RateLimitWindow
from receivables.access.tables import ApiKey, PortalLink, StaffUser
from receivables.dunning.schedule import DunningSchedule
from receivables.dunning.tables import (
    DunningAction,
    DunningActionMessage,
    DunningRun,
    DunningStep,
    MessageTemplate,
    ReferenceRate,
    Scenario,
)
from receivables.history import HistoryCheckpoint, HistoryCheckpointHead, HistoryEvent
from receivables.insight.tables import ForecastSnapshot, InsightSnapshot
from receivables.ledger.tables import (
    Allocation,
    Company,
    Contact,
    Customer,
    Item,
    Payment,
    PenaltyClaim,
    PromiseToPay,
)
from receivables.mail.tables import CapturedMail, OutboxMessage
from receivables.payments.tables import (
    BankLine,
    BankLineMatch,
    BankStatement,
    FinanceException,
    OnlinePayment,
    OnlinePaymentItem,
    PayoutTransaction,
    StripeDispute,
    StripeEvent,
    StripePayout,
)
from receivables.portal.tables import Feedback, PortalSession

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
        PromiseToPay,
        PenaltyClaim,
        HistoryEvent,
        HistoryCheckpoint,
        HistoryCheckpointHead,
        ApiKey,
        PortalLink,
        CapturedMail,
        OutboxMessage,
        PortalSession,
        Feedback,
        RateLimitWindow,
        Scenario,
        DunningStep,
        MessageTemplate,
        DunningAction,
        DunningActionMessage,
        ReferenceRate,
        DunningRun,
        DunningSchedule,
        # Payments (Stripe, reconciliation, bank statements)
        StripeEvent,
        StripePayout,
        OnlinePayment,
        OnlinePaymentItem,
        StripeDispute,
        PayoutTransaction,
        FinanceException,
        BankStatement,
        BankLine,
        BankLineMatch,
        # Dashboard snapshots
        InsightSnapshot,
        ForecastSnapshot,
    ],
    migration_dependencies=[],
    commands=[],
)
