"""Stand-ins for the serving half of the sandbox: load balancers at their own loopback
addresses on one common port, each answering as a task would, or failing on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass

from rotator.sandbox.dns.answers import EvenDraws  # noqa: F401 (used by the tests)


@dataclass(frozen=True)
class Behaviour:
    kind: str = "serve"  # serve | 5xx | reset (closes mid-answer) | silent (never answers)
    slot: str = "blue"
    ami: str = "ami-0000000000000000a"
    app: str = "/prd/web"


class StandInBalancers:
    """HTTP listeners on ``address:port`` (one port for all), in a thread of their own."""

    def __init__(self, behaviours: dict[str, Behaviour]):
        self.behaviours = behaviours
        self.hits: Counter = Counter()  # address -> requests seen
        self.connections: Counter = Counter()  # address -> connections accepted
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stand-in-lbs",
                                        daemon=True)

    def __enter__(self) -> StandInBalancers:
        self._thread.start()
        for _ in range(20):
            self.port = _free_port(next(iter(self.behaviours)))
            try:
                for address in self.behaviours:
                    self._servers.append(self._call(asyncio.start_server(
                        self._handler(address), address, self.port)))
                return self
            except OSError:
                self._close_servers()
        raise OSError("no common free port for the stand-in balancers")

    def __exit__(self, *exc: object) -> None:
        self._close_servers()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _close_servers(self) -> None:
        async def close():
            for server in self._servers:
                server.close()
            for writer in list(self._writers):
                writer.transport.abort()  # connections a "silent" balancer holds open
        self._call(close())
        self._servers.clear()

    def _handler(self, address: str):
        behaviour = self.behaviours[address]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            self.connections[address] += 1
            try:
                while True:
                    try:
                        await reader.readuntil(b"\r\n\r\n")
                    except (asyncio.IncompleteReadError, ConnectionError):
                        return
                    self.hits[address] += 1
                    if behaviour.kind == "silent":
                        await reader.read()  # until the client gives up and closes
                        return
                    if behaviour.kind == "5xx":
                        _respond(writer, 503, b'{"message": "no healthy target"}')
                    elif behaviour.kind == "reset":
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 200\r\n\r\n{\"app\": \"/prd")
                        await writer.drain()
                        writer.transport.abort()
                        return
                    else:
                        body = json.dumps({"app": behaviour.app, "task": f"{address}.task",
                                           "slot": behaviour.slot, "ami": behaviour.ami,
                                           "version": "1"}).encode()
                        _respond(writer, 200, body)
                    await writer.drain()
            finally:
                self._writers.discard(writer)
                with contextlib.suppress(Exception):
                    writer.close()

        return handle


def _respond(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {200: "OK", 503: "Service Unavailable"}[status]
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
