"""Reading HTML forms: raw values kept for re-display, problems keyed by field."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Request

from receivables.errors import FieldProblem, InvalidInput


async def form_values(request: Request) -> dict[str, Any]:
    """The submitted fields as strings (the CSRF field left out); repeated names as lists."""
    form = await request.form()
    values: dict[str, Any] = {}
    for key in form.keys():
        if key == "_csrf_token":
            continue
        items = form.getall(key)
        values[key] = [str(v) for v in items] if len(items) > 1 else str(items[0])
    return values


def text(values: dict[str, Any], name: str) -> str:
    value = values.get(name, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value).strip()


def checked(values: dict[str, Any], name: str) -> bool:
    return text(values, name) in ("1", "on", "true", "yes")


def optional_date(values: dict[str, Any], name: str, problems: list[FieldProblem]) -> date | None:
    raw = text(values, name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append(FieldProblem(name, "a date like 2026-12-31"))
        return None


def optional_int(values: dict[str, Any], name: str) -> int | None:
    raw = text(values, name)
    return int(raw) if raw.isdigit() else None


def errors_of(exc: InvalidInput) -> dict[str, str]:
    """First message per field, for the field macro; the rest joined."""
    errors: dict[str, str] = {}
    for problem in exc.problems:
        if problem.field in errors:
            errors[problem.field] += "; " + problem.message
        else:
            errors[problem.field] = problem.message
    return errors
