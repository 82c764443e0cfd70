"""Mail tables."""

from __future__ import annotations

from piccolo.columns import Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class CapturedMail(Table, tablename="captured_mail"):
    """A message received by the demo's local SMTP server, to read in the back office."""

    received_at = Timestamptz(default=TimestamptzNow())
    mail_from = Varchar(length=254)
    rcpt_to = Text(help_text="Recipients, comma separated.")
    subject = Text(default="")
    raw = Text(help_text="The whole message as received.")
