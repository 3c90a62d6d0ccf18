"""Simulated clients sending paced HTTP requests to a name, through the sandbox's DNS.

Each client has its own DNS cache (:mod:`.resolving`), its own keep-alive
connection pool and its own timeouts, and sends one request at a time on a
fixed schedule: together the clients send ``rps`` requests per second, spread
evenly. A client that falls behind (a slow answer) skips the ticks it missed
rather than bursting. The run stops by itself after ``duration``.

Requests go to the resolved address at the load balancers' common port, with
the name in ``Host``. The HTTP client is given a resolver that refuses every
name, so no request can leave through the system's DNS, and every address is
checked against 127.0.0.0/8 before it is cached or used.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver

from .loopback import NotLoopback, require_loopback
from .outcomes import Outcome, cause_of_error, cause_of_status, served_by
from .resolving import DEFAULT_OVERSTAY, ClientCache, DnsFailure, Lookup
from .tally import Tally

# Shorter than the idle timeouts of common HTTP servers (uvicorn's is 5 s), so a pooled
# connection is dropped by the client before a server can close it under a new request.
KEEPALIVE_SECONDS = 4.0


@dataclass(frozen=True)
class LoadSettings:
    rps: float = 200.0
    duration: float = 60.0
    clients: int = 50
    ttl_ignoring: float = 0.1  # share of clients that keep answers ``overstay`` beyond the TTL
    overstay: float = DEFAULT_OVERSTAY
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    lb_port: int = 80
    path: str = "/"

    def __post_init__(self) -> None:
        if self.rps <= 0 or self.duration <= 0 or self.clients < 1:
            raise ValueError("rps and duration must be positive, clients at least 1")
        if not 0 <= self.ttl_ignoring <= 1:
            raise ValueError("ttl_ignoring is a share between 0 and 1")

    @property
    def ignoring_clients(self) -> int:
        return round(self.clients * self.ttl_ignoring)


@dataclass
class LoadResult:
    name: str
    settings: LoadSettings
    tally: Tally
    started_at: float  # wall clock, to line the timeline up with rotation records
    elapsed: float = 0.0
    dns_lookups: int = 0
    skipped_ticks: int = 0
    steps: list[dict] = field(default_factory=list)


class _NoNames(AbstractResolver):
    """The HTTP client's resolver: names are resolved by the sandbox's DNS only."""

    async def resolve(self, host: str, port: int = 0, family: int = 0):
        raise OSError(f"refusing to resolve {host!r} outside the sandbox's DNS")

    async def close(self) -> None:
        pass


class SimulatedClient:
    def __init__(self, name: str, cache: ClientCache, settings: LoadSettings,
                 clock: Callable[[], float], origin: float):
        self.name = name
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.origin = origin
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SimulatedClient:
        s = self.settings
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=4, keepalive_timeout=KEEPALIVE_SECONDS,
                                           resolver=_NoNames(), use_dns_cache=False),
            timeout=aiohttp.ClientTimeout(total=s.connect_timeout + s.read_timeout,
                                          sock_connect=s.connect_timeout,
                                          sock_read=s.read_timeout),
            trust_env=False,  # no proxy from the environment: straight to loopback
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def request_once(self) -> Outcome:
        """One request; raises :class:`NotLoopback` instead of sending off loopback."""
        assert self.session is not None, "use the client as an async context manager"
        start = self.clock()
        started = start - self.origin
        honours = self.cache.honours_ttl
        try:
            address = await self.cache.address(self.name)
        except DnsFailure:
            return Outcome(started, self.clock() - start, honours, cause="dns")
        require_loopback(address, self.name)
        url = f"http://{address}:{self.settings.lb_port}{self.settings.path}"
        try:
            async with self.session.get(url, headers={"Host": self.name},
                                        allow_redirects=False) as response:
                body = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Outcome(started, self.clock() - start, honours, cause=cause_of_error(exc),
                           address=address)
        latency = self.clock() - start
        cause = cause_of_status(status)
        if cause is not None:
            return Outcome(started, latency, honours, cause=cause, status=status, address=address)
        return Outcome(started, latency, honours, status=status, address=address,
                       **served_by(body))


Observer = Callable[[Outcome], None]


async def run_load(name: str, settings: LoadSettings, lookup: Lookup, *,
                   clock: Callable[[], float] = time.monotonic,
                   wall: Callable[[], float] = time.time,
                   sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                   observers: tuple[Observer, ...] = (),
                   stop: asyncio.Event | None = None) -> LoadResult:
    """Run the clients until ``settings.duration`` has passed, or ``stop`` is set (each
    client sends no request after it); raises NotLoopback."""
    origin = clock()
    result = LoadResult(name, settings, Tally(), started_at=wall())
    interval = settings.clients / settings.rps
    end = origin + settings.duration

    def record(outcome: Outcome) -> None:
        result.tally.add(outcome)
        for observe in observers:
            observe(outcome)

    async def drive(index: int, client: SimulatedClient) -> None:
        first = origin + index / settings.rps  # clients take turns: requests spread evenly
        tick = 0
        while (due := first + tick * interval) < end and not (stop and stop.is_set()):
            now = clock()
            if due > now:
                await sleep(due - now)
            elif now - due >= interval:
                missed = math.floor((now - first) / interval) - tick
                result.skipped_ticks += missed
                tick += missed
                continue
            record(await client.request_once())
            tick += 1

    caches = [ClientCache(lookup, clock, settings.overstay if i < settings.ignoring_clients else 0.0)
              for i in range(settings.clients)]
    clients = [SimulatedClient(name, cache, settings, clock, origin) for cache in caches]
    try:
        for client in clients:
            await client.__aenter__()
        async with asyncio.TaskGroup() as group:
            for index, client in enumerate(clients):
                group.create_task(drive(index, client))
    except* NotLoopback as refused:
        raise refused.exceptions[0] from None
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
        result.elapsed = clock() - origin
        result.dns_lookups = sum(c.lookups for c in caches)
    return result
