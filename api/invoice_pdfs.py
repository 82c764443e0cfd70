"""Storing the PDF an ERP sends for an invoice: the file in the documents folder, the path
on the item, an event in the history, all or nothing.

No Litestar here on purpose: this is a domain service waiting for its place in
`receivables/` (beside `receivables.documents.storage.save_proof`), where the API's
owner may not write yet.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from receivables import history
from receivables.db import atomic
from receivables.documents import storage
from receivables.errors import Conflict, InvalidInput, NotFound
from receivables.history import Actor
from receivables.ledger.tables import Item

MAX_PDF_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class StoredPdf:
    item_id: int
    number: str
    size: int
    sha256: str
    changed: bool


def _write_new(documents_dir: Path, relative: str, content: bytes) -> None:
    path = documents_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as out:  # names are random: never overwrite
        out.write(content)


def _digest_of(documents_dir: Path, relative: str) -> str | None:
    path = storage.stored_file(documents_dir, relative)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path else None


async def attach_invoice_pdf(
    documents_dir: Path, company_id: int, number: str, content: bytes, actor: Actor
) -> StoredPdf:
    """Store `content` as the PDF of item `number` of the company.

    Sending the file the item already has changes nothing (ERPs re-send on every sync).
    A replaced file stays on disk: a customer may have been shown it, and the history
    event names both.
    """
    if not content:
        raise InvalidInput.one("file", "the file is empty")
    if len(content) > MAX_PDF_BYTES:
        raise InvalidInput.one(
            "file", f"the file is {len(content):,} bytes; at most {MAX_PDF_BYTES:,} (10 MB)"
        )
    if not content.startswith(b"%PDF-"):
        raise InvalidInput.one("file", "not a PDF (a PDF file starts with %PDF-)")
    item = await Item.objects().get((Item.company == company_id) & (Item.number == number))
    if item is None:
        raise NotFound(f"item {number}")
    digest = hashlib.sha256(content).hexdigest()
    old_path = item.pdf_path
    if old_path and await anyio.to_thread.run_sync(_digest_of, documents_dir, old_path) == digest:
        return StoredPdf(item.id, item.number, len(content), digest, changed=False)

    relative = f"invoices/{company_id}/{secrets.token_hex(16)}.pdf"
    await anyio.to_thread.run_sync(_write_new, documents_dir, relative, content)
    try:
        async with atomic():
            moved = (
                await Item.update({Item.pdf_path: relative})
                .where((Item.id == item.id) & (Item.pdf_path == old_path))
                .returning(Item.id)
            )
            if not moved:
                raise Conflict(f"the PDF of {number} changed during this upload; send it again")
            await history.record(
                company_id=company_id,
                actor=actor,
                kind="api.item_pdf",
                customer_id=item.customer,
                item_id=item.id,
                details={
                    "number": item.number,
                    "path": relative,
                    "bytes": len(content),
                    "sha256": digest,
                    "replaced": old_path,
                },
            )
    except BaseException:
        storage.remove(documents_dir, relative)
        raise
    return StoredPdf(item.id, item.number, len(content), digest, changed=True)
