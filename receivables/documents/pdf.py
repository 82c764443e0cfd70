"""PDF rendering with WeasyPrint behind the locked fetcher, in a worker thread.

The HTML comes from templates/documents/ (rendered by the caller); generated invoice PDFs
are cached in the documents folder under the hash of their HTML, so a changed amount,
language or template makes a new file and an unchanged one is served as is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from receivables.documents.fetcher import LockedFetcher

# WeasyPrint narrates each step at INFO; a server's log is not the place.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Assets:
    """Folders a document may read from: static assets (logos, fonts) and stored documents."""

    static_dir: Path
    documents_dir: Path

    @property
    def roots(self) -> list[Path]:
        return [self.static_dir, self.documents_dir]

    @property
    def base_url(self) -> str:
        """Relative URLs in documents (img/logo.svg) resolve inside static/."""
        return self.static_dir.resolve().as_uri() + "/"


def render_pdf(html: str, assets: Assets, fetcher: LockedFetcher | None = None) -> bytes:
    """Blocking: call from a thread (see `render_pdf_async`)."""
    from weasyprint import HTML

    fetcher = fetcher or LockedFetcher(assets.roots)
    return HTML(string=html, base_url=assets.base_url, url_fetcher=fetcher).write_pdf()


async def render_pdf_async(html: str, assets: Assets) -> bytes:
    return await anyio.to_thread.run_sync(render_pdf, html, assets)


def _cache_path(assets: Assets, html: str) -> Path:
    digest = hashlib.sha256(html.encode()).hexdigest()
    return assets.documents_dir / "cache" / "pdf" / digest[:2] / f"{digest}.pdf"


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached_or_render(html: str, assets: Assets) -> tuple[bytes, bool]:
    path = _cache_path(assets, html)
    if path.is_file():
        return path.read_bytes(), True
    content = render_pdf(html, assets)
    _write_atomically(path, content)
    return content, False


async def cached_pdf(html: str, assets: Assets) -> tuple[bytes, bool]:
    """The PDF of `html` from the cache, or rendered and kept; says whether it was cached."""
    return await anyio.to_thread.run_sync(_cached_or_render, html, assets)
