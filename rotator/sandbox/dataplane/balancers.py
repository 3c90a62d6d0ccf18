"""Every classic ELB and ALB of the AWS emulator as a real HTTP listener on loopback.

Each load balancer listens on an address of its own in 127.0.0.0/8, all on one port.
Requests go only to healthy registered targets (classic: least outstanding requests;
ALB: round robin), through the address book to whatever serves the target's private
address (a proxy instance, a task). An ALB listener's ``forward`` action splits requests
across its target groups by relative weight, request by request (smooth weighted round
robin); a target group whose registered targets are all unhealthy "fails open" and
routes to all of them (ALB guide, "Health checks for your target groups"). With nothing
to route to, a classic ELB answers 503 (``HTTPCode_ELB_5XX``), as does an ALB whose
target group has no registered target.

Deregistration drains as AWS does: the target gets no new requests; requests in flight
finish, up to the classic ELB's connection-draining timeout or the target group's
``deregistration_delay.timeout_seconds``, after which they are cut; a target with nothing
in flight leaves at once ("If a deregistering target has no in-flight requests and no
active connections, Elastic Load Balancing immediately completes the deregistration
process"). While it drains, DescribeInstanceHealth says ``InService: Instance
deregistration currently in progress`` and DescribeTargetHealth ``draining``
(``Target.DeregistrationInProgress``). A deleted load balancer stops listening at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from .addresses import AddressBook, Endpoint
from .forwarding import forward
from .health import CLASSIC_DRAINING, HealthTracker, Verdict
from .inventory import ApplicationBalancer, ClassicBalancer, Inventory, TargetGroup
from .metrics import ALB_NS, CLASSIC_NS, MetricBook
from .probes import probe_http, probe_tcp, status_matcher
from .serving import SocketServer, bind

log = logging.getLogger("rotator.sandbox.dataplane.balancers")

IDLE_TIMEOUT = 60.0  # seconds: the load balancers' default idle timeout


@dataclass(frozen=True)
class Locator:
    """Where a target's private address is, for address-book lookups."""

    region: str
    ip: str | None
    networks: frozenset[str]

    def endpoint(self, book: AddressBook, port: int) -> Endpoint | None:
        if not self.ip:
            return None
        return book.lookup(self.ip, port, region=self.region, networks=self.networks)


class Target:
    """One registration (instance or ip, port) of a classic ELB or a target group."""

    def __init__(self, target_id: str, port: int, locator: Locator, tracker: HealthTracker):
        self.id = target_id
        self.port = port
        self.locator = locator
        self.tracker = tracker
        self.inflight: set[asyncio.Task[Any]] = set()
        self.draining = False
        self.outstanding = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.id, self.port

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
        return self._session

    async def close(self) -> None:
        self.tracker.stop()
        for task in list(self.inflight):
            task.cancel()
        if self._session is not None:
            await self._session.close()


class Pool:
    """The registered (and draining) targets of one classic ELB or target group."""

    def __init__(self, style: str, on_change: Callable[[], None]) -> None:
        self.style = style
        self.targets: dict[tuple[str, int], Target] = {}
        self.draining: dict[tuple[str, int], Target] = {}
        self._drain_timers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self._on_change = on_change
        self._turn = itertools.count()

    def healthy(self) -> list[Target]:
        return [t for t in self.targets.values() if t.tracker.healthy]

    def routable(self, fail_open: bool) -> list[Target]:
        found = self.healthy()
        if not found and fail_open:
            found = list(self.targets.values())
        return found

    def pick(self, fail_open: bool) -> Target | None:
        candidates = self.routable(fail_open)
        if not candidates:
            return None
        turn = next(self._turn)
        if self.style == "classic":  # least outstanding requests, ties in turn
            least = min(t.outstanding for t in candidates)
            candidates = [t for t in candidates if t.outstanding == least]
        return candidates[turn % len(candidates)]

    def drain(self, target: Target, timeout: float) -> None:
        """No new requests; in-flight ones may finish within ``timeout``."""
        self.targets.pop(target.key, None)
        target.draining = True
        if not target.inflight or timeout <= 0:
            asyncio.ensure_future(target.close())
            self._on_change()
            return
        self.draining[target.key] = target
        loop = asyncio.get_running_loop()
        self._drain_timers[target.key] = loop.call_later(timeout, self._drained, target)
        self._on_change()

    def request_done(self, target: Target) -> None:
        if target.draining and not target.inflight and target.key in self.draining:
            self._drained(target)

    def _drained(self, target: Target) -> None:
        if self.draining.get(target.key) is target:
            del self.draining[target.key]
            timer = self._drain_timers.pop(target.key, None)
            if timer is not None:
                timer.cancel()
            self._on_change()
        asyncio.ensure_future(target.close())

    async def close(self) -> None:
        for target in [*self.targets.values(), *self.draining.values()]:
            await target.close()
        for timer in self._drain_timers.values():
            timer.cancel()
        self.targets.clear()
        self.draining.clear()


class BalancerServer:
    """The HTTP listener of one load balancer."""

    def __init__(self, plane: LoadBalancers, key: str, region: str, address: str,
                 sock_port: int, dns_name: str) -> None:
        self.plane = plane
        self.key = key
        self.region = region
        self.address = address
        self.dns_name = dns_name
        self.server = SocketServer(self._handle, bind(address, sock_port))
        self.spec: Any = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self.plane.route(self, request)


class LoadBalancers:
    def __init__(self, book: AddressBook, metrics: MetricBook, scale: float, port: int,
                 addresses: AddressPool, health_changed: Callable[[], None],
                 probe_session: Callable[[], aiohttp.ClientSession],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.book = book
        self.metrics = metrics
        self.scale = scale
        self.port = port
        self.addresses = addresses
        self._health_changed = health_changed
        self._probe_session = probe_session
        self._clock = clock
        self.servers: dict[str, BalancerServer] = {}
        self.pools: dict[str, Pool] = {}  # classic key or target group arn
        self.groups: dict[str, TargetGroup] = {}
        self.used_groups: set[str] = set()
        self._weights: dict[str, dict[str, float]] = {}  # alb key -> smooth WRR state
        self.last_request = float("-inf")  # when a request last came in, by ``clock``

    # ------------------------------------------------------------------ reconcile

    async def apply(self, inv: Inventory) -> None:
        wanted: dict[str, ClassicBalancer | ApplicationBalancer] = {**inv.classics, **inv.albs}
        for key in [k for k in self.servers if k not in wanted]:
            await self._delete_balancer(key)
        for key, spec in wanted.items():
            server = self.servers.get(key)
            if server is None:
                server = await self._create_balancer(key, spec)
                if server is None:
                    continue
            server.spec = spec
        self.groups = dict(inv.groups)
        self.used_groups = {arn for alb in inv.albs.values() for arn, _ in alb.forward}
        for key, spec in inv.classics.items():
            health = spec.health
            port = health.port or spec.instance_port
            regs = {(i, spec.instance_port): inv.instances.get(i) for i in spec.instances}
            self._sync_pool(key, "classic", health, port, regs, inv,
                            spec.draining_timeout if spec.draining else 0.0, probe=True)
        for arn, tg in inv.groups.items():
            regs = {}
            for target_id, port in tg.targets:
                regs[(target_id, port)] = inv.instances.get(target_id) \
                    if tg.target_type == "instance" else (tg, target_id)
            self._sync_pool(arn, "alb", tg.health, tg.health.port, regs, inv,
                            tg.deregistration_delay,
                            probe=arn in self.used_groups and tg.health.enabled)
        for key in [k for k in self.pools if k not in inv.classics and k not in inv.groups]:
            await self.pools.pop(key).close()
        self._health_changed()

    def _locator(self, reg: Any, inv: Inventory) -> Locator:
        if isinstance(reg, tuple):  # ip target of a target group
            tg, ip = reg
            networks = inv.networks_from(tg.vpc_id)
            try:
                if ipaddress.ip_address(ip).is_loopback:
                    networks = set()
            except ValueError:
                pass
            return Locator(tg.region, ip, frozenset(networks))
        if reg is None or reg.state != "running":
            return Locator("", None, frozenset())
        return Locator(reg.region, reg.private_ip, frozenset({reg.vpc_id or ""}))

    def _sync_pool(self, key: str, style: str, health: Any, health_port: int | None,
                   regs: dict[tuple[str, int], Any], inv: Inventory, drain_timeout: float,
                   probe: bool) -> None:
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = Pool(style, self._health_changed)
        for reg_key, target in list(pool.targets.items()):
            if reg_key not in regs:
                pool.drain(target, drain_timeout)
        for reg_key, reg in regs.items():
            locator = self._locator(reg, inv)
            target = pool.targets.get(reg_key)
            if target is not None and target.tracker.check != health:
                pool.targets.pop(reg_key)
                asyncio.ensure_future(target.close())
                target = None
            if target is None:
                pool.draining.pop(reg_key, None)
                target = self._new_target(reg_key, locator, style, health, health_port)
                pool.targets[reg_key] = target
            target.locator = locator
            if probe:
                target.tracker.start()
            else:
                target.tracker.stop()

    def _new_target(self, reg_key: tuple[str, int], locator: Locator, style: str,
                    health: Any, health_port: int | None) -> Target:
        holder: list[Target] = []
        check_port = health_port or reg_key[1]
        ok = (lambda code: code == 200) if style == "classic" else status_matcher(health.matcher)

        async def probe():
            endpoint = holder[0].locator.endpoint(self.book, check_port)
            if health.protocol == "TCP":
                return await probe_tcp(endpoint, min(health.timeout, health.interval) * self.scale)
            return await probe_http(self._probe_session(), endpoint, health.path,
                                    min(health.timeout, health.interval) * self.scale, ok)

        tracker = HealthTracker(style, health, self.scale, probe, self._health_changed)
        target = Target(reg_key[0], reg_key[1], locator, tracker)
        holder.append(target)
        return target

    async def _create_balancer(self, key: str, spec: Any) -> BalancerServer | None:
        for _ in range(64):
            address = self.addresses.next()
            try:
                server = BalancerServer(self, key, spec.region, address, self.port,
                                        spec.dns_name)
            except OSError:  # taken (another sandbox): the next address
                continue
            await server.server.start()
            self.servers[key] = server
            log.info("load balancer %s listens on %s:%d", spec.name, address, self.port)
            return server
        log.error("no loopback address left for load balancer %s", spec.name)
        return None

    async def _delete_balancer(self, key: str) -> None:
        server = self.servers.pop(key)
        server.server.abort()
        self._weights.pop(key, None)
        if key.startswith("elb:"):
            self.metrics.report_always(server.region, CLASSIC_NS, "HealthyHostCount",
                                       _classic_dims(server.spec), keep=False)
            self.metrics.report_always(server.region, CLASSIC_NS, "UnHealthyHostCount",
                                       _classic_dims(server.spec), keep=False)

    async def close(self) -> None:
        for key in list(self.servers):
            await self._delete_balancer(key)
        for pool in self.pools.values():
            await pool.close()
        self.pools.clear()

    # ------------------------------------------------------------------ lookups

    def address_of(self, dns_name: str) -> str | None:
        name = dns_name.rstrip(".").lower()
        for server in self.servers.values():
            if server.dns_name.rstrip(".").lower() == name:
                return server.address
        return None

    def board(self) -> dict[str, dict[tuple[str, int], Verdict]]:
        """Every target's health as DescribeInstanceHealth/DescribeTargetHealth report it,
        by pool (classic key or target group arn), draining targets included."""
        out: dict[str, dict[tuple[str, int], Verdict]] = {}
        for key, pool in self.pools.items():
            verdicts: dict[tuple[str, int], Verdict] = {}
            tg = self.groups.get(key)
            for target in pool.draining.values():
                verdicts[target.key] = (
                    Verdict("InService", "N/A", CLASSIC_DRAINING) if pool.style == "classic"
                    else Verdict("draining", "Target.DeregistrationInProgress",
                                 "Target deregistration is in progress"))
            for target in pool.targets.values():
                if tg is not None and key not in self.used_groups:
                    verdicts[target.key] = Verdict(
                        "unused", "Target.NotInUse",
                        "Target group is not configured to receive traffic from the load balancer")
                elif tg is not None and not tg.health.enabled:
                    verdicts[target.key] = Verdict("unavailable", "Target.HealthCheckDisabled",
                                                   "Health checks are disabled")
                else:
                    verdicts[target.key] = target.tracker.verdict
            out[key] = verdicts
        return out

    # ------------------------------------------------------------------ routing

    def _choose_group(self, server: BalancerServer) -> str | None:
        forward = [(arn, w) for arn, w in server.spec.forward if w > 0]
        if not forward:
            return None
        state = self._weights.setdefault(server.key, {})
        total = sum(w for _, w in forward)
        for arn, w in forward:  # smooth weighted round robin: exact shares, interleaved
            state[arn] = state.get(arn, 0.0) + w
        best = max(forward, key=lambda f: state[f[0]])[0]
        state[best] -= total
        return best

    async def route(self, server: BalancerServer, request: web.BaseRequest) -> web.StreamResponse:
        self.last_request = self._clock()
        spec = server.spec
        classic = isinstance(spec, ClassicBalancer)
        ns = CLASSIC_NS if classic else ALB_NS
        lb_dims = _classic_dims(spec) if classic else (("LoadBalancer", spec.full_name),)
        dims = [lb_dims]
        if classic:
            pool, fail_open = self.pools.get(spec.key), False
        else:
            arn = self._choose_group(server)
            pool, fail_open = (self.pools.get(arn), True) if arn else (None, True)
            if arn and arn in self.groups:
                dims.append((("LoadBalancer", spec.full_name),
                             ("TargetGroup", self.groups[arn].full_name)))
        for d in dims:
            self.metrics.count(server.region, ns, "RequestCount", d)
        target = pool.pick(fail_open) if pool is not None else None
        if target is None:
            return self._elb_error(server, ns, dims, 503, "Service Unavailable", classic)
        endpoint = target.locator.endpoint(self.book, target.port)
        if endpoint is None:
            return self._elb_error(server, ns, dims, 502, "Bad Gateway", classic)
        body = await request.read()
        peer = request.remote or "127.0.0.1"
        extra = {"X-Forwarded-For": ", ".join(filter(None, [
                     request.headers.get("X-Forwarded-For"), peer])),
                 "X-Forwarded-Proto": "http", "X-Forwarded-Port": str(self.port)}
        started = time.perf_counter()
        job = asyncio.ensure_future(forward(target.session(), endpoint, request, body, extra,
                                            IDLE_TIMEOUT))
        target.inflight.add(job)
        target.outstanding += 1
        try:
            response = await asyncio.shield(job)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # the client went away
                job.cancel()
                raise
            # cut by the load balancer: draining timed out, or the balancer is gone
            return self._elb_error(server, ns, dims, 502, "Bad Gateway", classic)
        except TimeoutError:
            return self._elb_error(server, ns, dims, 504, "Gateway Timeout", classic)
        except (aiohttp.ClientError, OSError):
            return self._elb_error(server, ns, dims, 502, "Bad Gateway", classic)
        finally:
            target.inflight.discard(job)
            target.outstanding -= 1
            pool.request_done(target)
        elapsed = time.perf_counter() - started
        klass = f"{response.status // 100}XX"
        for d in dims:
            if classic:
                self.metrics.latency(server.region, ns, "Latency", d, elapsed)
                self.metrics.count(server.region, ns, f"HTTPCode_Backend_{klass}", d)
            else:
                self.metrics.latency(server.region, ns, "TargetResponseTime", d, elapsed)
                self.metrics.count(server.region, ns, f"HTTPCode_Target_{klass}_Count", d)
        return response

    def _elb_error(self, server: BalancerServer, ns: str, dims: list, status: int, text: str,
                   classic: bool) -> web.Response:
        name = "HTTPCode_ELB_5XX" if classic else "HTTPCode_ELB_5XX_Count"
        self.metrics.count(server.region, ns, name, dims[0])
        return web.Response(status=status, text=f"{status} {text}")

    # ------------------------------------------------------------------ host counts

    def sample_hosts(self) -> None:
        for key, server in list(self.servers.items()):
            spec = server.spec
            if isinstance(spec, ClassicBalancer):
                pool = self.pools.get(key)
                registered = bool(pool and pool.targets)
                dims = _classic_dims(spec)
                for name in ("HealthyHostCount", "UnHealthyHostCount"):
                    self.metrics.report_always(spec.region, CLASSIC_NS, name, dims,
                                               keep=registered)
                if registered:
                    healthy = len(pool.healthy())
                    self.metrics.sample(spec.region, CLASSIC_NS, "HealthyHostCount", dims,
                                        healthy)
                    self.metrics.sample(spec.region, CLASSIC_NS, "UnHealthyHostCount", dims,
                                        len(pool.targets) - healthy)
                continue
            lb_dims = (("LoadBalancer", spec.full_name),)
            self.metrics.report_always(spec.region, ALB_NS, "RequestCount", lb_dims)
            for arn, _ in spec.forward:
                tg = self.groups.get(arn)
                pool = self.pools.get(arn)
                if tg is None or pool is None:
                    continue
                dims = (("LoadBalancer", spec.full_name), ("TargetGroup", tg.full_name))
                self.metrics.report_always(spec.region, ALB_NS, "RequestCount", dims)
                if tg.health.enabled:
                    healthy = len(pool.healthy())
                    self.metrics.sample(spec.region, ALB_NS, "HealthyHostCount", dims, healthy)
                    self.metrics.sample(spec.region, ALB_NS, "UnHealthyHostCount", dims,
                                        len(pool.targets) - healthy)


def _classic_dims(spec: Any) -> tuple[tuple[str, str], ...]:
    return (("LoadBalancerName", spec.name),) if spec is not None else ()


class AddressPool:
    """Loopback addresses for load balancers, from a random start in 127.0.0.0/8 so that
    parallel sandboxes rarely meet (and skip an address another one holds); never
    127.0.0.1, never one address twice (a client's cached answer must not reach another
    load balancer)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self._next = rng.randrange(2**16, 2**24 - 2**16)

    def next(self) -> str:
        while True:
            value = self._next
            self._next = self._next + 1 if self._next + 1 < 2**24 - 1 else 2**16
            if value & 0xFF not in (0, 255):
                return str(ipaddress.IPv4Address((127 << 24) | value))


def pick_port(pool: AddressPool) -> tuple[int, Any]:
    """A port free on a fresh loopback address: the port every load balancer listens on."""
    for _ in range(16):
        address = pool.next()
        with contextlib.suppress(OSError):
            sock = bind(address, 0)
            return sock.getsockname()[1], sock
    raise OSError("no free loopback address for the load balancers")
