"""Runs the emulator's ASGI app with uvicorn on loopback, in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn

from rotator.sandbox.consul.app import create_app
from rotator.sandbox.consul.core import ConsulCore


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket whose connections send at once: without TCP_NODELAY, a keep-alive
    client waits ~40 ms (Nagle against delayed ACK) for every answer after its first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


class ConsulServer:
    """``with ConsulServer(ConsulCore(["cn-north-1"])) as srv: srv.address``."""

    def __init__(self, core: ConsulCore, host: str = "127.0.0.1", port: int = 0):
        self.core = core
        self.host = host
        self._sock = bind_socket(host, port)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(create_app(core), log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1, backlog=4096)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.stopped = threading.Event()  # set once the server no longer answers
        core.on_leave(self._shut_down)

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ConsulServer:
        self._thread = threading.Thread(target=self._run, name="consul-http", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("consul emulator failed to start")
            self._thread.join(0.01)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        finally:
            self._sock.close()
            self.stopped.set()

    def _shut_down(self) -> None:
        """As ``/v1/agent/leave`` does to a real agent: stop serving."""
        self._server.should_exit = True
        self.core.notifier.close()  # blocked queries answer now instead of at their wait
        self.core.log.close()  # and monitor streams end

    def stop(self) -> None:
        self._shut_down()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> ConsulServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
