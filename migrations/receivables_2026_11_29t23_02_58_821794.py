from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from enum import Enum
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import BigInt
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Serial
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.table import Table


class Item(Table, tablename="item", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name="id",
        secret=False,
    )


ID = "2026-11-29T23:02:58:821794"
VERSION = "1.38.0"
DESCRIPTION = "Cash application: write-off tolerance, written_off status, non-cash payment methods, credit note carrier"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="receivables", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Company",
        tablename="company",
        column_name="writeoff_tolerance_minor",
        db_column_name="writeoff_tolerance_minor",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="Payment",
        tablename="payment",
        column_name="credit_note",
        db_column_name="credit_note",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Item,
            "on_delete": OnDelete.restrict,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.alter_column(
        table_class_name="Item",
        tablename="item",
        column_name="status",
        db_column_name="status",
        params={
            "choices": Enum(
                "ItemStatus",
                {
                    "open": "open",
                    "promised": "promised",
                    "disputed": "disputed",
                    "paid_pending": "paid_pending",
                    "payment_in_progress": "payment_in_progress",
                    "paid": "paid",
                    "written_off": "written_off",
                    "cancelled": "cancelled",
                },
            )
        },
        old_params={
            "choices": Enum(
                "ItemStatus",
                {
                    "open": "open",
                    "promised": "promised",
                    "disputed": "disputed",
                    "paid_pending": "paid_pending",
                    "payment_in_progress": "payment_in_progress",
                    "paid": "paid",
                    "cancelled": "cancelled",
                },
            )
        },
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Payment",
        tablename="payment",
        column_name="method",
        db_column_name="method",
        params={
            "choices": Enum(
                "Method",
                {
                    "transfer": "transfer",
                    "card": "card",
                    "direct_debit": "direct_debit",
                    "cheque": "cheque",
                    "other": "other",
                    "credit_note": "credit_note",
                    "write_off": "write_off",
                },
            )
        },
        old_params={
            "choices": Enum(
                "Method",
                {
                    "transfer": "transfer",
                    "card": "card",
                    "direct_debit": "direct_debit",
                    "cheque": "cheque",
                    "other": "other",
                },
            )
        },
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    return manager
