"""A small HTTP server on a socket of its own, in the data plane's event loop.

Every task, proxy and load balancer is one: aiohttp's low-level server (one handler
coroutine per request) on a socket bound before serving starts, so the address is known
(and taken) at once. ``close(grace)`` stops listening at once and lets requests in flight
finish for ``grace`` seconds; ``abort()`` also drops every open connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from .addresses import Endpoint

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class SocketServer:
    def __init__(self, handler: Handler, sock: socket.socket) -> None:
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self.endpoint = Endpoint(host, port)
        self._handler = handler
        self._web: web.Server | None = None  # made in the loop
        self._server: asyncio.base_events.Server | None = None
        self.closed = False

    async def start(self) -> None:
        if self.closed:
            self._sock.close()
            return
        loop = asyncio.get_running_loop()
        self._web = web.Server(self._handler, access_log=None)
        self._server = await loop.create_server(self._web, sock=self._sock)

    def _stop_listening(self) -> None:
        self.closed = True
        if self._server is not None:
            self._server.close()
        else:
            self._sock.close()

    async def close(self, grace: float = 0.0) -> None:
        self._stop_listening()
        if self._web is not None:
            with contextlib.suppress(Exception):
                await self._web.shutdown(grace)

    def abort(self) -> None:
        """Connections refused from now on, open ones reset."""
        self._stop_listening()
        for conn in list(self._web.connections if self._web is not None else []):
            if conn.transport is not None:
                conn.transport.abort()
