"""The only URL fetcher PDF rendering uses: `data:` URLs and files under the allowed folders.

WeasyPrint's default fetcher follows any URL a document names (loopback, cloud metadata at
169.254.169.254, `file:///etc/passwd` through `<link rel="attachment">`). Documents are built
from data customers and ERPs typed, so everything else is refused before any I/O.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from weasyprint.urls import URLFetcher, URLFetcherResponse


class FetchRefused(ValueError):
    """A document asked for a URL it may not read."""


class LockedFetcher(URLFetcher):
    """Serves `data:` URLs and regular files under `roots`; refuses and records the rest."""

    def __init__(self, roots: Iterable[Path]):
        super().__init__(timeout=1, allowed_protocols=("data",), allow_redirects=False)
        self.roots = [Path(r).resolve() for r in roots]
        self.attempts: list[str] = []
        self.refused: list[str] = []

    def allowed_path(self, url: str) -> Path | None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            return None
        path = Path(unquote(parts.path)).resolve()
        if not path.is_file():
            return None
        if any(path.is_relative_to(root) for root in self.roots):
            return path
        return None

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        self.attempts.append(url)
        scheme = url.split(":", 1)[0].lower()
        if scheme == "data":
            return super().fetch(url, headers)
        path = self.allowed_path(url)
        if path is None:
            self.refused.append(url)
            raise FetchRefused(f"documents may not fetch {scheme}: URLs outside their folders")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})
