"""PDF rendering fetches nothing it was not meant to: a real HTTP server counts the hits."""

from __future__ import annotations

import http.server
import io
import threading
from pathlib import Path

import pytest
from pypdf import PdfReader

from receivables.documents.fetcher import FetchRefused, LockedFetcher
from receivables.documents.pdf import Assets, render_pdf

STATIC = Path(__file__).resolve().parents[2] / "static"


@pytest.fixture
def counting_server():
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def test_fetcher_allows_data_and_files_under_its_roots_only(tmp_path):
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "a.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "secret.txt").write_text("secret")
    fetcher = LockedFetcher([STATIC, docs])
    assert fetcher.fetch((docs / "a.pdf").as_uri()).read() == b"%PDF-1.4"
    assert fetcher.fetch((STATIC / "img" / "favicon.svg").as_uri()).read().startswith(b"<svg")
    assert fetcher.fetch("data:text/plain;base64,aGk=").read() == b"hi"
    for url in (
        "file:///etc/passwd",
        (tmp_path / "secret.txt").as_uri(),
        (docs / ".." / "secret.txt").as_uri(),
        "http://169.254.169.254/latest/meta-data/",
        "https://example.com/logo.png",
        "ftp://example.com/x",
        "file://evil.example/etc/passwd",
    ):
        with pytest.raises(FetchRefused):
            fetcher.fetch(url)
    assert len(fetcher.refused) == 7


def test_hostile_html_makes_the_renderer_fetch_nothing(tmp_path, counting_server):
    base, hits = counting_server
    html = f"""<html><head>
      <link rel="stylesheet" href="{base}/style.css">
      <link rel="attachment" href="file:///etc/passwd">
      <style>@import url("{base}/import.css"); body {{ background: url("{base}/bg.png"); }}</style>
    </head><body>
      <img src="{base}/pixel.png"><img src="http://169.254.169.254/latest/meta-data/">
      <img src="file:///etc/passwd"><object data="{base}/object"></object>
      <iframe src="{base}/frame"></iframe><p>INV-1</p>
    </body></html>"""
    fetcher = LockedFetcher([STATIC, tmp_path])
    pdf = render_pdf(html, Assets(STATIC, tmp_path), fetcher)
    assert hits == []
    assert fetcher.attempts and fetcher.attempts == fetcher.refused
    reader = PdfReader(io.BytesIO(pdf))
    assert "INV-1" in reader.pages[0].extract_text()
    assert reader.attachments == {}
    assert b"root:" not in pdf
