"""The one Piccolo app of Relance; its migrations live in the top-level migrations/ folder."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from receivables.access.login_throttle import LoginFailure
from receivables.access.tables import ApiKey, PortalLink, StaffUser
from receivables.dunning.tables import (
    DunningAction,
    DunningActionMessage,
    DunningRun,
    DunningStep,
    MessageTemplate,
    ReferenceRate,
    Scenario,
)
from receivables.history import HistoryEvent
from receivables.ledger.tables import (
    Allocation,
    Company,
    Contact,
    Customer,
    Item,
    Payment,
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
        HistoryEvent,
        ApiKey,
        PortalLink,
        CapturedMail,
        OutboxMessage,
        PortalSession,
        Feedback,
        LoginFailure,
        Scenario,
        DunningStep,
        MessageTemplate,
        DunningAction,
        DunningActionMessage,
        ReferenceRate,
        DunningRun,
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
    ],
    migration_dependencies=[],
    commands=[],
)
