"""localstripe, the local Stripe emulator, for the demo and the tests (never in production).

It runs in a child process bound to 127.0.0.1 only. Its state stays in memory: localstripe
pickles every change to one fixed file in the system's temp folder, which two emulators
(a test run and a demo) would share and corrupt, so that dump is switched off in the child.
The child also exits when its parent dies, so an interrupted demo never leaves it behind.

localstripe has no Dispute API. The child adds the one call Relance makes, the retrieve
(`GET /v1/disputes/{id}`, answered in Stripe's shape, 404 `resource_missing` when unknown),
served from disputes a test or the demo stores with `POST /_config/disputes` (a JSON
dispute object): Relance reads a dispute's state from Stripe, never from an event's body.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Emulator:
    """A running localstripe: its address and its process."""

    api_base: str
    process: subprocess.Popen

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        """Have localstripe sign and deliver every event it emits to `url`."""
        response = httpx.post(
            f"{self.api_base}/_config/webhooks/{name}",
            data={"url": url, "secret": secret},
            timeout=5,
        )
        response.raise_for_status()

    def put_dispute(self, dispute: dict) -> None:
        """Store (or replace) a dispute the emulator then answers `GET /v1/disputes/{id}`
        with: what Stripe would say about it now."""
        response = httpx.post(f"{self.api_base}/_config/disputes", json=dispute, timeout=5)
        response.raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_emulator(port: int | None = None, *, timeout: float = 20.0) -> Emulator:
    """Start localstripe on 127.0.0.1:`port` (a free one when None) and wait until it answers."""
    port = port or free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "receivables.payments.emulator", str(port), str(os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    api_base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{api_base}/js.stripe.com/v3/", timeout=1).status_code == 200:
                return Emulator(api_base, process)
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"localstripe did not start on port {port}")
        time.sleep(0.1)


def _serve(port: int, parent_pid: int) -> None:
    import asyncio

    from aiohttp import web
    from localstripe import server
    from localstripe.resources import store

    store.dump_to_disk = lambda: None  # memory only: see the module docstring

    async def watch_parent(app: web.Application) -> None:
        async def watch() -> None:
            while os.getppid() == parent_pid:  # noqa: ASYNC110 - polling another process
                await asyncio.sleep(1)
            os._exit(0)

        app["watch_parent"] = asyncio.get_running_loop().create_task(watch())

    server.app.on_startup.append(watch_parent)
    _add_disputes(server.app, web)
    web.run_app(server.app, host="127.0.0.1", port=port, print=None, access_log=None)


def _add_disputes(app, web) -> None:  # noqa: ANN001 - aiohttp's, imported in the child only
    """GET /v1/disputes/{id} from what POST /_config/disputes stored (see the docstring)."""
    disputes: dict[str, dict] = {}

    async def put(request):  # noqa: ANN001, ANN202
        dispute = await request.json()
        disputes[str(dispute["id"])] = dispute
        return web.json_response(dispute)

    async def get(request):  # noqa: ANN001, ANN202
        dispute = disputes.get(request.match_info["id"])
        if dispute is None:
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": f"No such dispute: '{request.match_info['id']}'",
            }
            return web.json_response({"error": error}, status=404)
        return web.json_response(dispute)

    app.router.add_post("/_config/disputes", put)
    app.router.add_get("/v1/disputes/{id}", get)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
