"""Logs on stderr: JSON lines (serve, worker), or short lines for the demo's terminal; secrets
and portal tokens kept out of both."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_SECRETS = re.compile(r"(/p/)[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+|(rk_|sk_|whsec_)[A-Za-z0-9_\-]+")
_EXTRA_FIELDS = ("method", "path", "status", "ms", "event", "count")
ACCESS_LOGGER = "relance.access"
_ASSETS = ("/static/", "/favicon.ico", "/health")


def scrub(text: str) -> str:
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for name in _EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class ConsoleFormatter(logging.Formatter):
    """One short line per record, for a person watching the demo's terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        if record.name == ACCESS_LOGGER and hasattr(record, "path"):
            text = f"{getattr(record, 'method', '')} {record.path} {getattr(record, 'status', '')}"
        else:
            text = record.getMessage()
        line = f"{when} {record.levelname.lower():<7} {scrub(text)}"
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


def _not_an_asset(record: logging.LogRecord) -> bool:
    """The demo's access lines: pages and posts, not every stylesheet, script and image."""
    return record.name != ACCESS_LOGGER or not str(getattr(record, "path", "")).startswith(_ASSETS)


def configure_logging(level: str = "INFO", *, demo: bool = False) -> None:
    """JSON lines on stderr; `demo`: short lines, no asset requests, libraries' chatter off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter() if demo else JsonFormatter())
    if demo:
        handler.addFilter(_not_an_asset)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would print the raw path (and so a portal token).
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("aiosqlite", "asyncio", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if demo:
        # WeasyPrint narrates each document and fontTools each font it subsets, at INFO;
        # uvicorn announces its start, which the demo's banner already says.
        for chatty in ("weasyprint", "fontTools", "uvicorn.error"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
