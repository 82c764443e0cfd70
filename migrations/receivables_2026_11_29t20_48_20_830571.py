"""Outbox: the thread key (threading per recipient), the sealed portal token, the SHA-256 and
size of the bytes sent, the sent event waiting to be written; portal links redacted in the
stored copy of messages already done.

Messages still queued keep their link until the worker has sent them (it redacts them then):
redacting them here would send dead links, and sealing needs SECRET_KEY.
"""

import re

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import Text
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.engine import engine_finder
from piccolo.querystring import QueryString

ID = "2026-11-29T20:48:20:830571"
VERSION = "1.38.0"
DESCRIPTION = "outbox: thread key, sealed portal token, SHA-256 and size of the bytes sent"

# As receivables/mail/sealed_links.py at the time of this migration.
PORTAL_TOKEN = re.compile(r"(/p/)[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{8,}")
REDACTED = "…redacted…"


async def redact_done_messages():
    engine = engine_finder()
    last = 0
    while True:
        rows = await engine.run_querystring(
            QueryString(
                "SELECT id, subject, text_body, html_body FROM outbox_message "
                "WHERE id > {} AND status IN ('sent', 'failed', 'cancelled') "
                "ORDER BY id LIMIT 500",
                last,
            )
        )
        if not rows:
            return
        for row in rows:
            last = row["id"]
            texts = [row["subject"], row["text_body"], row["html_body"]]
            redacted = [PORTAL_TOKEN.sub(lambda m: m.group(1) + REDACTED, t or "") for t in texts]
            if redacted != [t or "" for t in texts]:
                await engine.run_querystring(
                    QueryString(
                        "UPDATE outbox_message SET subject = {}, text_body = {}, html_body = {} "
                        "WHERE id = {}",
                        *redacted,
                        row["id"],
                    )
                )


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="receivables", description=DESCRIPTION
    )
    manager.add_raw(redact_done_messages)

    manager.add_column(
        table_class_name="OutboxMessage",
        tablename="outbox_message",
        column_name="sealed_token",
        db_column_name="sealed_token",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
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
        table_class_name="OutboxMessage",
        tablename="outbox_message",
        column_name="sent_event",
        db_column_name="sent_event",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
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
        table_class_name="OutboxMessage",
        tablename="outbox_message",
        column_name="sent_event_pending",
        db_column_name="sent_event_pending",
        column_class_name="Boolean",
        column_class=Boolean,
        params={
            "default": False,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="OutboxMessage",
        tablename="outbox_message",
        column_name="sent_sha256",
        db_column_name="sent_sha256",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 64,
            "default": "",
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
        table_class_name="OutboxMessage",
        tablename="outbox_message",
        column_name="sent_size",
        db_column_name="sent_size",
        column_class_name="Integer",
        column_class=Integer,
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
        table_class_name="OutboxMessage",
        tablename="outbox_message",
        column_name="thread_key",
        db_column_name="thread_key",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 64,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
