"""Batches: many records in one call, all or nothing, every problem reported by position.

A problem's `field` is the record's place in the body and the field, `items[3].due_date`
(positions count from 0, like Litestar's own type errors), so a bad record in a batch of
thousands is found at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Struct

from api.auth import Caller
from api.schemas import (
    BatchResult,
    ContactsBatch,
    CustomersBatch,
    ItemsBatch,
    LedgerBatch,
    PaymentsBatch,
    carried,
)
from receivables.db import atomic
from receivables.errors import FieldProblem, InvalidInput
from receivables.ledger.records import KINDS, Changeset, UpsertResult, parse_rows

_SOURCE = "api/{kind}"
_SOURCE_RE = re.compile(r"api/(?P<kind>[a-z]+)")

ALL_OR_NOTHING = (
    "All or nothing: when any record has a problem, nothing is written and the 400 lists "
    "every problem, its `field` giving the record's position, like `items[3].due_date` "
    "(from 0). Records are matched by their key as in the single-record calls, so sending "
    "a batch twice changes nothing the second time. At most 10,000 records per kind."
)


def _placed(problem: FieldProblem) -> FieldProblem:
    """`items[3].due_date` for the problem of the 4th item (records count lines from 1)."""
    m = _SOURCE_RE.fullmatch(getattr(problem, "source", "") or "")
    if m is None or not problem.line:
        return FieldProblem(problem.field, problem.message)
    return FieldProblem(f"{m['kind']}[{problem.line - 1}].{problem.field}", problem.message)


async def upsert_batch(
    caller: Caller, bodies: Mapping[str, Sequence[Struct]]
) -> dict[str, BatchResult]:
    """Parse and check every record of every kind, then write them all in one transaction."""
    changes = Changeset(caller.actor, company_code=caller.company_code, source="api", channel="api")
    problems: list[FieldProblem] = []
    for kind in KINDS:
        rows = bodies.get(kind) or []
        if not rows:
            continue
        parsed = parse_rows(
            kind,
            [(n, carried(row)) for n, row in enumerate(rows, start=1)],
            source=_SOURCE.format(kind=kind),
        )
        changes.add(parsed.records)
        changes.mention(kind, parsed.bad_keys)
        problems.extend(parsed.problems)
    async with atomic():
        problems.extend(await changes.check())
        if problems:
            raise InvalidInput([_placed(p) for p in problems])
        try:
            results = await changes.apply()
        except InvalidInput as exc:  # an allocation refused while writing: all rolled back
            raise InvalidInput([_placed(p) for p in exc.problems]) from None
    return {kind: _counts(result) for kind, result in results.items()}


def _counts(result: UpsertResult) -> BatchResult:
    return BatchResult(created=result.created, updated=result.updated, unchanged=result.unchanged)


def _batch(path: str, summary: str) -> Any:
    return post(path, summary=summary, description=ALL_OR_NOTHING, status_code=200)


@_batch("/customers:batch", "Create or update many customers")
async def batch_customers(
    caller: NamedDependency[Caller], data: JSONBody[CustomersBatch]
) -> BatchResult:
    return (await upsert_batch(caller, {"customers": data.customers}))["customers"]


@_batch("/contacts:batch", "Create or update many contacts")
async def batch_contacts(
    caller: NamedDependency[Caller], data: JSONBody[ContactsBatch]
) -> BatchResult:
    return (await upsert_batch(caller, {"contacts": data.contacts}))["contacts"]


@_batch("/items:batch", "Create or update many invoices and credit notes")
async def batch_items(caller: NamedDependency[Caller], data: JSONBody[ItemsBatch]) -> BatchResult:
    return (await upsert_batch(caller, {"items": data.items}))["items"]


@_batch("/payments:batch", "Record many payments")
async def batch_payments(
    caller: NamedDependency[Caller], data: JSONBody[PaymentsBatch]
) -> BatchResult:
    return (await upsert_batch(caller, {"payments": data.payments}))["payments"]


@post(
    "/ledger:batch",
    summary="Push customers, contacts, items and payments together",
    description="Written in that order in one transaction, so a contact or an item may name "
    "a customer, and a payment an invoice, of the same call. The answer gives the counts "
    f"of each kind sent. {ALL_OR_NOTHING}",
    status_code=200,
)
async def batch_ledger(
    caller: NamedDependency[Caller], data: JSONBody[LedgerBatch]
) -> dict[str, BatchResult]:
    bodies = {
        "customers": data.customers,
        "contacts": data.contacts,
        "items": data.items,
        "payments": data.payments,
    }
    if not any(bodies.values()):
        raise InvalidInput.one("body", "send at least one of customers, contacts, items, payments")
    return await upsert_batch(caller, bodies)
