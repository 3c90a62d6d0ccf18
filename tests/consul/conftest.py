"""Fixtures: a Consul emulator on a free loopback port, and real py-consul clients for it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import consul
import pytest

from rotator.sandbox.consul import ConsulCore, ConsulServer

DC = "cn-north-1"
OTHER_DC = "ap-southeast-1"


class ManualClock:
    """A clock moved only by the test (a core's TTLs, session expiry and lock-delay, whose
    timers fire when the test says: ``core.run_due()``; a gate's waits)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.02)


def in_background(call):
    """Run ``call`` on a thread; its answer is ``result[0]`` once the thread is done."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


@pytest.fixture
def core() -> Iterator[ConsulCore]:
    c = ConsulCore([DC, OTHER_DC])
    yield c
    c.close()


@pytest.fixture
def server(core: ConsulCore) -> Iterator[ConsulServer]:
    with ConsulServer(core) as srv:
        yield srv


@pytest.fixture
def client(server: ConsulServer) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=server.port, dc=DC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StatusServer:
    """A tiny loopback HTTP server whose answer code a test sets (target of HTTP checks)."""

    def __init__(self) -> None:
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = f"status {owner.status}".encode()
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/health"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def status_server() -> Iterator[StatusServer]:
    srv = StatusServer()
    yield srv
    srv.close()
