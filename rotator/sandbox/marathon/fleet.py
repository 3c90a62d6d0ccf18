"""One ASGI app serving many Marathon emulators, chosen by the requested host.

The sandbox gives every group slot its own Marathon at a private VPC address
(from Terraform outputs). Clients reach it through an HTTP proxy on loopback:
``requests`` then sends absolute-form targets (``GET http://10.0.3.7:8080/v2/apps``)
with ``Host: 10.0.3.7:8080``. The fleet reads the address from either, rewrites
the request to origin form and hands it to that address's emulator; no packet
ever goes to the private address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send

from .emulator import MarathonEmulator
from .http import create_app, run_ticker

Resolver = Callable[[str], MarathonEmulator | None]


class MarathonFleet:
    def __init__(self, resolve: Resolver,
                 emulators: Callable[[], Iterable[MarathonEmulator]] | None = None):
        """``resolve("10.0.3.7:8080")`` names the emulator behind an address (None: none);
        ``emulators()`` lists those to advance in the background (default: those seen)."""
        self.resolve = resolve
        self._seen: dict[int, tuple[MarathonEmulator, Any]] = {}
        self._emulators = emulators or (lambda: [em for em, _ in self._seen.values()])

    def _app_for(self, em: MarathonEmulator) -> Any:
        entry = self._seen.get(id(em))
        if entry is None or entry[0] is not em:
            entry = (em, create_app(em, ticker=False))
            self._seen[id(em)] = entry
        return entry[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        scope = dict(scope)
        host_port = _host_header(scope)
        path = scope["path"]
        if "://" in path:  # absolute-form request target (sent to a proxy)
            parts = urlsplit(path)
            host_port = parts.netloc
            scope["path"] = parts.path or "/"
            scope["raw_path"] = scope["path"].encode()
        if host_port and ":" not in host_port:
            host_port += ":80"
        em = self.resolve(host_port) if host_port else None
        if em is None:
            body = json.dumps({"message": f"no Marathon is served at '{host_port}'"}).encode()
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self._app_for(em)(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        task: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                task = asyncio.create_task(run_ticker(self._emulators))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if task:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await send({"type": "lifespan.shutdown.complete"})
                return


def _host_header(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            return value.decode("latin-1")
    return ""
