"""The stored-documents folder: invoice PDFs sent by ERPs and proofs uploaded by customers.

Paths kept in the database are relative to the folder; every read resolves them inside it,
so a row holding `../../etc/passwd` serves nothing.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import anyio.to_thread

MAX_PROOF_BYTES = 5 * 1024 * 1024
_MAGIC = (
    (b"%PDF-", "application/pdf", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
)


def sniff(content: bytes) -> tuple[str, str] | None:
    """(media type, extension) of a PDF, PNG or JPEG judged by its first bytes; else None."""
    for magic, media_type, ext in _MAGIC:
        if content.startswith(magic):
            return media_type, ext
    return None


def stored_file(documents_dir: Path, relative: str) -> Path | None:
    """The file a stored relative path names, only if it is a file inside the folder."""
    if not relative:
        return None
    root = documents_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _save(documents_dir: Path, relative: str, content: bytes) -> None:
    path = documents_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as out:
        out.write(content)


async def save_proof(documents_dir: Path, company_id: int, content: bytes, ext: str) -> str:
    """Write an uploaded proof under a random name; returns its path relative to the folder."""
    relative = f"proofs/{company_id}/{secrets.token_hex(16)}.{ext}"
    await anyio.to_thread.run_sync(_save, documents_dir, relative, content)
    return relative


def remove(documents_dir: Path, relative: str) -> None:
    path = stored_file(documents_dir, relative)
    if path is not None:
        path.unlink(missing_ok=True)


async def read_bytes(path: Path) -> bytes:
    return await anyio.to_thread.run_sync(path.read_bytes)
