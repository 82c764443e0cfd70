"""Piccolo's own configuration, so `piccolo migrations ...` works; engine from DATABASE_URL."""

import os

from piccolo.conf.apps import AppRegistry

from receivables.db import make_engine

DB = make_engine(os.environ.get("DATABASE_URL") or "sqlite:///relance.sqlite3")

APP_REGISTRY = AppRegistry(apps=["receivables.piccolo_app"])
