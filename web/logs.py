"""Structured logs: one JSON object per line, secrets and portal tokens kept out."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_SECRETS = re.compile(r"(/p/)[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+|(rk_|sk_|whsec_)[A-Za-z0-9_\-]+")
_EXTRA_FIELDS = ("method", "path", "status", "ms", "event", "count")


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


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would print the raw path (and so a portal token).
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("aiosqlite", "asyncio", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
