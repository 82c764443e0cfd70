"""The demo: a company with realistic receivables and the weeks before today replayed, so
the back office opens on the work a team meets on an ordinary morning."""

from receivables.demo.data import (
    DEMO_PASSWORD,
    HISTORY_DAYS,
    STAFF,
    DemoSummary,
    make_plan,
    seed,
)
from receivables.demo.replay import agenda_counts, build

__all__ = [
    "DEMO_PASSWORD",
    "HISTORY_DAYS",
    "STAFF",
    "DemoSummary",
    "agenda_counts",
    "build",
    "make_plan",
    "seed",
]
