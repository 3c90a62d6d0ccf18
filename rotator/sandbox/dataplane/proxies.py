"""The slot's front proxies (EC2 instances tagged ``role=proxy``), marathon-lb style.

Each proxy instance is an HTTP proxy at its private address, port 80 (through the
address book). It forwards to the running tasks of its own slot's Marathon that are
healthy (when the app has health checks), choosing the app by the request's Host header
against the app label ``HAPROXY_0_VHOST`` (comma-separated names, marathon-lb's
convention); a Host no vhost names goes to the first app (by id) that has one. A
connection refused by a task is retried on another (marathon-lb's haproxy template:
``retries 3`` with ``option redispatch``). ``/health`` is the proxy's own: with
``health="backends"`` it answers 200 while the proxy has a healthy backend, 503 otherwise;
with ``health="proxy"`` it answers 200 while the proxy runs (an haproxy's own health
endpoint), so a slot's ELB sees its proxies in service before the apps are deployed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from .addresses import AddressBook
from .forwarding import forward
from .inventory import Instance
from .serving import SocketServer, bind

log = logging.getLogger("rotator.sandbox.dataplane.proxies")

VHOST_LABEL = "HAPROXY_0_VHOST"
RETRIES = 3
PROXY_PORT = 80
HEALTH_MODES = ("backends", "proxy")


@dataclass(frozen=True)
class Backend:
    task_id: str
    host: str
    port: int


@dataclass(frozen=True)
class Table:
    generation: int
    by_vhost: dict[str, tuple[str, ...]]  # vhost -> app ids
    default_app: str | None
    backends: dict[str, tuple[Backend, ...]]  # app id -> healthy backends

    def backends_for(self, host: str) -> tuple[Backend, ...]:
        name = host.rsplit(":", 1)[0].rstrip(".").lower() if host else ""
        for app in self.by_vhost.get(name, ()) or ((self.default_app,) if self.default_app else ()):
            found = self.backends.get(app)
            if found:
                return found
        return ()

    @property
    def healthy(self) -> int:
        return sum(len(b) for b in self.backends.values())


EMPTY = Table(-1, {}, None, {})


def build_table(generation: int, tasks: list[tuple]) -> Table:
    by_vhost: dict[str, list[str]] = {}
    backends: dict[str, list[Backend]] = {}
    apps_with_vhost = set()
    for app_id, task_id, host, _agent, ports, labels, healthy in tasks:
        vhosts = [v.strip().lower() for v in labels.get(VHOST_LABEL, "").split(",") if v.strip()]
        if vhosts:
            apps_with_vhost.add(app_id)
            for v in vhosts:
                if app_id not in by_vhost.setdefault(v, []):
                    by_vhost[v].append(app_id)
        if healthy and ports:
            backends.setdefault(app_id, []).append(Backend(task_id, host, ports[0]))
    return Table(generation, {k: tuple(v) for k, v in by_vhost.items()},
                 min(apps_with_vhost) if apps_with_vhost else None,
                 {k: tuple(sorted(v, key=lambda b: b.task_id)) for k, v in backends.items()})


# (region, group, slot) -> the slot's Marathon emulator, or None
MarathonFinder = Callable[[str, str, str], Any]


class ProxyInstance:
    def __init__(self, instance: Instance, book: AddressBook, marathons: MarathonFinder,
                 session: Callable[[], aiohttp.ClientSession], health: str = "backends") -> None:
        if health not in HEALTH_MODES:
            raise ValueError(f"proxy health must be one of {HEALTH_MODES}, not {health!r}")
        self.instance = instance
        self.health = health
        self.book = book
        self._marathons = marathons
        self._session = session
        self.server = SocketServer(self._handle, bind())
        self._table = EMPTY
        self._refreshing: asyncio.Future[None] | None = None
        self._turn = itertools.count()

    @property
    def slot_key(self) -> tuple[str, str, str]:
        i = self.instance
        return i.region, i.tag("group") or "", i.tag("slot") or ""

    async def start(self) -> None:
        await self.server.start()
        self.book.add(self.instance.region, self.instance.vpc_id or "", self.instance.private_ip
                      or "", PROXY_PORT, self.server.endpoint)

    def close(self) -> None:
        i = self.instance
        if self.book.lookup(i.private_ip or "", PROXY_PORT, region=i.region,
                            networks=[i.vpc_id or ""]) == self.server.endpoint:
            self.book.remove(i.region, i.vpc_id or "", i.private_ip or "", PROXY_PORT)
        self.server.abort()

    async def table(self) -> Table:
        """The backends as Marathon says now; read again (off the loop) when tasks moved."""
        marathon = self._marathons(*self.slot_key)
        if marathon is None:
            return EMPTY
        if marathon.task_generation != self._table.generation:
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.ensure_future(self._refresh(marathon))
            if self._table is EMPTY:
                await asyncio.shield(self._refreshing)
        return self._table

    async def _refresh(self, marathon: Any) -> None:
        generation = marathon.task_generation
        tasks = await asyncio.get_running_loop().run_in_executor(None, marathon.serving_tasks)
        self._table = build_table(generation, tasks)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        table = await self.table()
        if request.path == "/health":
            status = 200 if table.healthy or self.health == "proxy" else 503
            return web.json_response({"healthy_backends": table.healthy}, status=status)
        backends = table.backends_for(request.host)
        if not backends:
            return web.Response(status=503, text="503 Service Unavailable: no server is available")
        body = await request.read()
        start = next(self._turn)
        for attempt in range(min(RETRIES + 1, len(backends) + RETRIES)):
            backend = backends[(start + attempt) % len(backends)]
            target = self.book.lookup(backend.host, backend.port, region=self.instance.region,
                                      networks=[self.instance.vpc_id or ""])
            if target is None:
                continue
            try:
                return await forward(self._session(), target, request, body)
            except aiohttp.ClientConnectorError:
                continue  # refused before anything was sent: redispatch
            except (aiohttp.ClientError, OSError, TimeoutError):
                return web.Response(status=502, text="502 Bad Gateway")
        return web.Response(status=503, text="503 Service Unavailable: no server is available")
