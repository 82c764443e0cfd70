"""PDF rendering with WeasyPrint behind the locked fetcher, in a small pool of processes.

WeasyPrint holds the GIL for seconds on a long statement: in a thread of the web process
it stalls every other request. Documents are rendered in child processes instead (spawned,
not forked: nothing of the server's sockets, pools or threads is copied), started on the
first PDF and stopped with the app (`stop_renderers`). Each child builds its own
`LockedFetcher`, so the same folders, and only those, may be read.

The HTML comes from templates/documents/ (rendered by the caller). Generated PDFs (invoices
without a stored file, statements) are cached in the documents folder under the hash of
their HTML: a changed amount, status, language or template makes a new file, an unchanged
document is served as is, and one being rendered is awaited rather than rendered twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import os
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from receivables.documents.fetcher import LockedFetcher

# WeasyPrint narrates each step at INFO; a server's log is not the place.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
log = logging.getLogger("relance.documents")

RENDERERS = 2
"""Child processes per server process: each holds WeasyPrint (~100 MB) once started."""
TASKS_PER_RENDERER = 200
"""A child is replaced after this many documents, so whatever it leaks is given back."""


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
    """Blocking, in the calling process: servers use `render_pdf_async`."""
    from weasyprint import HTML

    fetcher = fetcher or LockedFetcher(assets.roots)
    return HTML(string=html, base_url=assets.base_url, url_fetcher=fetcher).write_pdf()


@dataclass(frozen=True)
class Rendered:
    """A child's answer: the PDF and what the document asked its fetcher for."""

    content: bytes
    fetched: tuple[str, ...]
    refused: tuple[str, ...]


def _render_in_child(html: str, assets: Assets) -> Rendered:
    fetcher = LockedFetcher(assets.roots)
    content = render_pdf(html, assets, fetcher)
    return Rendered(content, tuple(fetcher.attempts), tuple(fetcher.refused))


def _report(rendered: Rendered) -> None:
    """Refused fetches are worth a look: someone typed markup into a document's data."""
    for url in rendered.refused:
        log.warning("a document asked for a URL it may not read: %s", url[:200])


_renderers: ProcessPoolExecutor | None = None
_renderers_lock = threading.Lock()


def _pool() -> ProcessPoolExecutor:
    global _renderers
    with _renderers_lock:
        if _renderers is None:
            _renderers = ProcessPoolExecutor(
                max_workers=RENDERERS,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=TASKS_PER_RENDERER,
            )
        return _renderers


def _discard(pool: ProcessPoolExecutor) -> None:
    global _renderers
    with _renderers_lock:
        if _renderers is pool:
            _renderers = None
    pool.shutdown(wait=False, cancel_futures=True)


async def render_pdf_async(html: str, assets: Assets) -> bytes:
    """The PDF of `html`, rendered in a child process; the event loop stays free meanwhile."""
    loop = asyncio.get_running_loop()
    for last_try in (False, True):
        pool = _pool()
        try:
            rendered = await loop.run_in_executor(pool, _render_in_child, html, assets)
        except BrokenProcessPool:
            # A child died (killed, out of memory): a new pool, and one more try.
            log.warning("a PDF renderer process died; starting new ones")
            _discard(pool)
            if last_try:
                raise
            continue
        _report(rendered)
        return rendered.content
    raise AssertionError("unreachable")


def stop_renderers() -> None:
    """Stop the child processes (the app's and the worker's shutdown); blocks until they end."""
    global _renderers
    with _renderers_lock:
        pool, _renderers = _renderers, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


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


def _read_cached(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


_rendering: dict[Path, asyncio.Future[bytes]] = {}


async def _render_and_keep(html: str, assets: Assets, path: Path) -> bytes:
    content = await render_pdf_async(html, assets)
    await anyio.to_thread.run_sync(_write_atomically, path, content)
    return content


async def cached_pdf(html: str, assets: Assets) -> tuple[bytes, bool]:
    """The PDF of `html` from the cache, or rendered and kept; says whether it was cached."""
    path = _cache_path(assets, html)
    content = await anyio.to_thread.run_sync(_read_cached, path)
    if content is not None:
        return content, True
    rendering = _rendering.get(path)
    if rendering is None:
        rendering = asyncio.ensure_future(_render_and_keep(html, assets, path))
        _rendering[path] = rendering
        rendering.add_done_callback(lambda _done: _rendering.pop(path, None))
    # Shielded: a visitor who leaves does not cancel the rendering others wait for.
    return await asyncio.shield(rendering), False
