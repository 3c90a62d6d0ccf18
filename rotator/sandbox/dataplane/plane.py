"""The data plane: everything that serves requests in the sandbox world, on one event loop.

- tasks of every slot's Marathon (:mod:`.tasks`), with Marathon's health probes;
- the slots' proxy instances (:mod:`.proxies`);
- every classic ELB and ALB of the AWS emulator (:mod:`.balancers`), with real health
  checks whose results DescribeInstanceHealth/DescribeTargetHealth report;
- their CloudWatch metrics (:mod:`.metrics`).

It follows the AWS emulator: after every request that may change a load balancer, a
registration, an instance or a peering, it reads the emulator's models again and applies
them before that request's answer leaves (so once ``DeregisterTargets`` returns, no new
request goes to the target), and once more every ``RESYNC_SECONDS`` for anything else.

Interfaces for the rest of the sandbox: ``lb_port`` (the port every load balancer
listens on, each at its own loopback address), ``lb_address(dns_name)``, ``lookup.url``
(the address book over HTTP, :mod:`.lookup`),
``slot_tasks(region, vpc_id)`` (a Marathon ``TaskRuntime``) and ``sync()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .addresses import AddressBook
from .balancers import AddressPool, LoadBalancers, pick_port
from .faults import ReleaseFault
from .health import Verdict
from .inventory import Inventory, read_inventory
from .lookup import AddressLookup
from .loop import LoopThread
from .metrics import MetricBook, MetricPublisher
from .probes import probe_session
from .proxies import MarathonFinder, ProxyInstance
from .tasks import AgentFacts, SlotTasks
from .timescale import DEFAULT_TIME_SCALE, metric_period

log = logging.getLogger("rotator.sandbox.dataplane")

RESYNC_SECONDS = 2.0
# While requests flow (one came in within FLOWING seconds), every AWS request waits AWS_GAP
# before moto serves it. The data plane shares the GIL with moto, which serves one request
# at a time and computes while Terraform keeps it busy; the gap between two of them lets
# the event loop serve what queued meanwhile. AWS's own answers take as long or longer;
# bench/data_plane.py: a rotation under load took 77-82 s, and the p99 latency the path
# adds was 6-10 ms, against 11-47 ms when the loop's lag decided when AWS requests waited.
FLOWING = 1.0
AWS_GAP = 0.05
_EC2_CHANGES = {"RunInstances", "TerminateInstances", "StopInstances", "StartInstances",
                "RebootInstances", "CreateTags", "DeleteTags", "CreateVpcPeeringConnection",
                "AcceptVpcPeeringConnection", "DeleteVpcPeeringConnection"}


def _changes_balancers(operation: str | None) -> bool:
    if operation is None or operation == "reset":
        return True
    service, _, name = operation.partition(":")
    if service in ("elb", "elbv2"):
        return not name.startswith("Describe")
    return service == "ec2" and name in _EC2_CHANGES


class DataPlane:
    def __init__(self, aws: Any, *, time_scale: float = DEFAULT_TIME_SCALE,
                 marathons: MarathonFinder | None = None, proxy_health: str = "backends",
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.aws = aws
        self.proxy_health = proxy_health
        self.time_scale = time_scale
        self.metric_period = metric_period(time_scale)
        self._marathons = marathons or (lambda region, group, slot: None)
        self._clock = clock
        self._sleep = sleep
        self.book = AddressBook()
        self.metrics = MetricBook()
        self.loop = LoopThread()
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._board: dict[str, dict[tuple[str, int], Verdict]] = {}
        self._board_dirty = False
        self._proxies: dict[str, ProxyInstance] = {}
        self._facts: dict[tuple[str, str], AgentFacts] = {}
        self._images: dict[tuple[str, str], ReleaseFault | None] = {}
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self.balancers: LoadBalancers | None = None
        self._applied: Inventory | None = None
        self.lb_port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> DataPlane:
        self.loop.start()
        addresses = AddressPool()
        self.lb_port, self._port_holder = pick_port(addresses)
        self.loop.run(self._open_sessions())
        self.lookup = AddressLookup(self.book)
        self.loop.run(self.lookup.server.start())
        self.balancers = LoadBalancers(self.book, self.metrics, self.time_scale, self.lb_port,
                                       addresses, self._health_changed,
                                       lambda: self._sessions["probe"], self._clock)
        self.publisher = MetricPublisher(self.metrics, self.metric_period, self._put_metrics,
                                         before=self._sample_hosts)
        self.loop.call_soon(self.publisher.start)
        self.aws.health_source = self
        self.aws.before_serving = self.give_way
        self.aws.add_observer(self._aws_changed)
        self.sync()
        threading.Thread(target=self._resync, name="dataplane-resync", daemon=True).start()
        return self

    async def _open_sessions(self) -> None:
        self._sessions["probe"] = probe_session()
        self._sessions["proxy"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    def stop(self) -> None:
        self._stop.set()
        self.aws.remove_observer(self._aws_changed)
        if self.aws.health_source is self:
            self.aws.health_source = None
        if self.aws.before_serving == self.give_way:
            self.aws.before_serving = None
        try:
            self.loop.run(self._close(), timeout=10)
        except Exception:
            log.exception("closing the data plane failed")
        self.loop.stop()
        self._port_holder.close()

    async def _close(self) -> None:
        self.publisher.stop()
        self.lookup.server.abort()
        for proxy in self._proxies.values():
            proxy.close()
        self._proxies.clear()
        if self.balancers is not None:
            await self.balancers.close()
        for session in self._sessions.values():
            await session.close()

    # ------------------------------------------------------------------ sharing the GIL

    def requests_flowing(self) -> bool:
        return (self.balancers is not None
                and self._clock() - self.balancers.last_request < FLOWING)

    def give_way(self) -> None:
        """Before moto serves an AWS request: the gap, while requests flow."""
        if self.requests_flowing():
            self._sleep(AWS_GAP)

    # ------------------------------------------------------------------ following AWS

    def _aws_changed(self, operation: str | None) -> None:
        if _changes_balancers(operation) and not self._stop.is_set():
            self.sync()

    def _resync(self) -> None:
        while not self._stop.wait(RESYNC_SECONDS):
            try:
                self.sync()
            except Exception:  # the next round tries again
                log.exception("data plane resync failed")

    def sync(self) -> None:
        """Read the emulator's models and serve what they say, before returning."""
        with self._sync_lock:
            inventory = self.aws.inspect(read_inventory)
            # most changing requests (a Terraform apply's routes, security groups, tags)
            # change nothing served: the event loop is then left to its requests
            if inventory == self._applied:
                return
            self.loop.run(self._apply(inventory), timeout=30)
            self._applied = inventory

    async def _apply(self, inv: Inventory) -> None:
        wanted = {i.id: i for i in inv.proxies()}
        for instance_id in [i for i in self._proxies if i not in wanted]:
            self._proxies.pop(instance_id).close()
        for instance_id, instance in wanted.items():
            proxy = self._proxies.get(instance_id)
            if proxy is not None and proxy.instance != instance:
                proxy.close()
                proxy = None
            if proxy is None:
                proxy = ProxyInstance(instance, self.book, self._marathons,
                                      lambda: self._sessions["proxy"], self.proxy_health)
                await proxy.start()
                self._proxies[instance_id] = proxy
        assert self.balancers is not None
        await self.balancers.apply(inv)
        self._board = self.balancers.board()

    def _health_changed(self) -> None:
        if not self._board_dirty:
            self._board_dirty = True
            self.loop.loop.call_soon(self._rebuild_board)

    def _rebuild_board(self) -> None:
        self._board_dirty = False
        if self.balancers is not None:
            self._board = self.balancers.board()

    # ------------------------------------------------------------------ health source

    def instance_health(self, region: str, lb_name: str) -> dict[str, Verdict]:
        pool = self._board.get(f"elb:{region}:{lb_name}", {})
        return {target_id: verdict for (target_id, _), verdict in pool.items()}

    def target_health(self, region: str, group_arn: str) -> dict[tuple[str, int], Verdict] | None:
        return self._board.get(group_arn)

    # ------------------------------------------------------------------ lookups

    def lb_address(self, dns_name: str) -> str | None:
        """The loopback address where the load balancer named ``dns_name`` (as its
        ``DNSName``; any case, trailing dot or not) listens on ``lb_port``; None when
        there is none (unknown or deleted)."""
        if self.balancers is None:
            return None
        return self.balancers.address_of(dns_name)

    def slot_tasks(self, region: str, network: str) -> SlotTasks:
        return SlotTasks(self.loop, self.book, region, network, self.agent_facts,
                         lambda: self._sessions["probe"], self._clock)

    def agent_facts(self, region: str, instance_id: str) -> AgentFacts:
        key = (region, instance_id)
        if key not in self._facts:
            self._facts[key] = self.aws.inspect(lambda: self._read_facts(region, instance_id))
        return self._facts[key]

    def _read_facts(self, region: str, instance_id: str) -> AgentFacts:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][region]
        instance = ec2.get_instance_by_id(instance_id)
        if instance is None:
            return AgentFacts("", "", None)
        ami = instance.image_id or ""
        if (region, ami) not in self._images:
            self._images[(region, ami)] = ReleaseFault.from_tags(dict(ec2.tags.get(ami, {})))
        tags = dict(ec2.tags.get(instance_id, {}))
        return AgentFacts(tags.get("slot", ""), ami, self._images[(region, ami)],
                          tags.get("group", ""))

    # ------------------------------------------------------------------ metrics

    def _sample_hosts(self) -> None:
        if self.balancers is not None:
            self.loop.run(self._sample_async(), timeout=10)

    async def _sample_async(self) -> None:
        assert self.balancers is not None
        self.balancers.sample_hosts()

    def _put_metrics(self, region: str, namespace: str, data: list[dict[str, Any]]) -> None:
        self.aws.put_metric_data(region, namespace, data)
