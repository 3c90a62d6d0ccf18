"""Helpers for the controller's tests: an engine over the fakes that a controller runs, a
local webhook receiver, and the app served by a real uvicorn on a loopback port."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rotator.engine import Engine
from tests.engine_harness import engine
from tests.fakes import FakeWorld


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02):
    """Poll a condition until it holds, within a bounded deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s")


def back_at_the_approval(store, group: str) -> bool:
    """The controller has resumed the waiting canary (its record notes "resumed"; an
    interactive resume keeps it 'waiting' until the promotion)."""
    record = store.load(group) or {}
    return record.get("status") == "waiting" and any(
        e.get("msg") == "resumed" for e in record.get("events", []))


def fake_engine(world: FakeWorld, store, policy, *, interactive=False, sleep=None,
                on_event=None) -> Engine:
    return engine(world, store, policy, interactive=interactive, sleep=sleep, on_event=on_event)


def fake_runner(world: FakeWorld, store, policy, *, real_pause: float = 0.005, log=None):
    """What a controller runs: the engine over the fakes, interactive, on the world's clock,
    each of its sleeps also a short real wait through the controller's own sleep (so the
    controller can hand over, and the loop does not spin)."""
    def run(group, sleep, on_event):
        def both(seconds):
            world.clock.sleep(seconds)
            sleep(real_pause)
        if log is not None:
            log.append(("run", group))
        return fake_engine(world, store, policy, interactive=True, sleep=both,
                           on_event=on_event).resume()
    return run


class WebhookReceiver:
    """A loopback HTTP server keeping every JSON body POSTed to it; it can fail first."""

    def __init__(self, fail_first: int = 0):
        self.received: list[dict] = []
        self.paths: list[str] = []
        self.fail_first = fail_first
        self.attempts = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.attempts += 1
                if owner.attempts <= owner.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                owner.received.append(json.loads(body or b"{}"))
                owner.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "hook/s3cr3t-hook-token") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def titles(self) -> list[str]:
        return [m.get("title", "") for m in self.received]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """An ASGI app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=15)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
