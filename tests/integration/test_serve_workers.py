"""`relance serve --workers 2` behind a proxy: one limit for both processes, clients told
apart by the X-Forwarded-For of the trusted proxy only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
RELANCE = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'relance.sqlite3'}",
        "SECRET_KEY": TEST_SECRET,
        "BASE_URL": f"http://127.0.0.1:{port}",
        "TRUSTED_PROXIES": "127.0.0.1",  # the test plays the proxy
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run([*RELANCE, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    process = subprocess.Popen(
        [*RELANCE, "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "relance serve did not answer within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_two_server_processes_share_the_link_limit(server):
    one = {"X-Forwarded-For": "198.51.100.1"}
    # New connections each time: the requests spread over both processes.
    statuses = [
        httpx.get(f"{server}/p/no-such-link", headers=one, timeout=10).status_code
        for _ in range(31)
    ]
    assert statuses == [404] * 30 + [429]
    other = {"X-Forwarded-For": "198.51.100.2"}
    assert httpx.get(f"{server}/p/no-such-link", headers=other, timeout=10).status_code == 404
