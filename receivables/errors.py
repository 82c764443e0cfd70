"""The domain's own exceptions; app.py maps them to HTTP answers and friendly pages."""

from __future__ import annotations

from dataclasses import dataclass, field


class ReceivablesError(Exception):
    """Base of every error the domain raises on purpose."""


class NotFound(ReceivablesError):
    """A row the caller named does not exist (or is not theirs to see)."""


@dataclass
class FieldProblem:
    """One bad value: where it is and why it is refused."""

    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.field}" if self.line else self.field
        return f"{where}: {self.message}"


@dataclass
class InvalidInput(ReceivablesError):
    """Input refused as a whole; every problem is listed, nothing was written."""

    problems: list[FieldProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)

    @classmethod
    def one(cls, field_name: str, message: str) -> InvalidInput:
        return cls([FieldProblem(field_name, message)])


class AllocationRefused(ReceivablesError):
    """An allocation would overdraw an item or a payment, or mix currencies."""


class Conflict(ReceivablesError):
    """The change was already applied, or the row changed under the caller."""
