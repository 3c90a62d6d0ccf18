"""Every task the Marathon emulator runs is a real HTTP server on 127.0.0.1.

``GET /`` answers 200 with ``{app, task, slot, ami, version}``; the paths the app's
health checks use (and ``/health``) answer by the task's state: 503 while the sandbox's
health control says ``unhealthy`` (every other probe while ``flapping``) or while a
fault baked into the task's AMI says so. The task's identity comes from its agent
instance: ``slot`` from its EC2 tag, ``ami`` from its ImageId (and the AMI's fault from
the image's tags). Each task listens on its own loopback port; the address book maps
the agent's private address and the task's host port to it.

``SlotTasks`` is the :class:`~rotator.sandbox.marathon.model.TaskRuntime` of one slot's
Marathon: it starts and stops endpoints and runs Marathon's health probes against them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from rotator.sandbox.marathon.model import ProbeSpec, TaskInfo, TaskReports

from .addresses import AddressBook, Endpoint
from .faults import ReleaseFault, ShareCounter
from .loop import LoopThread
from .probes import probe_http, probe_tcp
from .serving import SocketServer, bind

log = logging.getLogger("rotator.sandbox.dataplane.tasks")


@dataclass(frozen=True)
class AgentFacts:
    """What a task learns from the instance it runs on."""

    slot: str
    ami: str
    fault: ReleaseFault | None
    group: str = ""


# (region, agent instance id) -> facts; may block (reads the AWS emulator)
AgentLookup = Callable[[str, str], AgentFacts]


class TaskEndpoint:
    def __init__(self, info: TaskInfo, health_paths: set[str], modes: dict[str, str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.info = info
        self.health_paths = health_paths | {"/health"}
        self._modes = modes
        self._clock = clock
        self.server = SocketServer(self._handle, bind())
        self.facts: AgentFacts | None = None
        self._facts_ready: asyncio.Event | None = None  # made in the loop
        self.started_at = clock()
        self._flap = 0
        self._errors: ShareCounter | None = None
        self._slow: ShareCounter | None = None
        self.requests = 0

    @property
    def endpoint(self) -> Endpoint:
        return self.server.endpoint

    def learn(self, facts: AgentFacts) -> None:
        self.facts = facts
        fault = facts.fault
        if fault is not None and fault.kind == "5xx":
            self._errors = ShareCounter(fault.rate)
        if fault is not None and fault.kind == "slow":
            self._slow = ShareCounter(fault.rate)
        if self._facts_ready is not None:
            self._facts_ready.set()

    async def start(self) -> None:
        self._facts_ready = asyncio.Event()
        if self.facts is not None:
            self._facts_ready.set()
        await self.server.start()

    def _fault_active(self, kind: str) -> bool:
        fault = self.facts.fault if self.facts else None
        return (fault is not None and fault.kind == kind
                and self._clock() - self.started_at >= fault.after)

    def healthy(self) -> bool:
        mode = self._modes.get(self.info.app_id, "healthy")
        if mode == "unhealthy":
            return False
        if mode == "flapping":
            self._flap += 1
            if self._flap % 2 == 0:
                return False
        fault = self.facts.fault if self.facts else None
        return not (self._fault_active("unhealthy") and fault is not None
                    and fault.hits_task(self.info.task_id))

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._facts_ready is not None and not self._facts_ready.is_set():
            await self._facts_ready.wait()
        if request.path in self.health_paths:
            if self.healthy():
                return web.json_response({"status": "ok"})
            return web.json_response({"status": "unhealthy"}, status=503)
        self.requests += 1
        facts = self.facts
        if self._slow is not None and self._fault_active("slow") and self._slow.next():
            await asyncio.sleep(facts.fault.latency if facts and facts.fault else 0)
        if self._errors is not None and self._fault_active("5xx") and self._errors.next():
            return web.json_response({"error": "internal error", "task": self.info.task_id},
                                     status=500)
        return web.Response(body=json.dumps(self.identity()).encode(),
                            content_type="application/json")

    def identity(self) -> dict[str, Any]:
        facts = self.facts
        return {"app": self.info.app_id, "task": self.info.task_id,
                "slot": facts.slot if facts else None, "ami": facts.ami if facts else None,
                "group": facts.group if facts else None,
                "version": self.info.version}


class SlotTasks:
    """The tasks of one slot's Marathon, for real (a ``TaskRuntime``)."""

    def __init__(self, loop: LoopThread, book: AddressBook, region: str, network: str,
                 agent_facts: AgentLookup, session: Callable[[], aiohttp.ClientSession],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.loop = loop
        self.book = book
        self.region = region
        self.network = network
        self.agent_facts = agent_facts
        self._session = session
        self._clock = clock
        self.modes: dict[str, str] = {}
        self.endpoints: dict[str, TaskEndpoint] = {}
        self._probers: dict[str, list[asyncio.Task[None]]] = {}

    # -- TaskRuntime (called under the emulator's lock: never block) ---------------------

    def start(self, task: TaskInfo, probes: list[ProbeSpec], reports: TaskReports) -> None:
        paths = {p.path for p in probes if p.protocol == "HTTP"}
        endpoint = TaskEndpoint(task, paths, self.modes, self._clock)
        self.endpoints[task.task_id] = endpoint
        for port in task.ports:
            self.book.add(self.region, self.network, task.host, port, endpoint.endpoint)
        self.loop.spawn(self._run(endpoint, probes, reports))

    def stop(self, task: TaskInfo) -> None:
        endpoint = self.endpoints.pop(task.task_id, None)
        if endpoint is None:
            return
        self._unlist(endpoint)
        self.loop.spawn(self._stop(endpoint))

    def set_health_mode(self, app_id: str, mode: str) -> None:
        self.modes[app_id] = mode

    # -- in the loop ---------------------------------------------------------------------

    def _unlist(self, endpoint: TaskEndpoint) -> None:
        for port in endpoint.info.ports:
            if self.book.lookup(endpoint.info.host, port, region=self.region,
                                networks=[self.network]) == endpoint.endpoint:
                self.book.remove(self.region, self.network, endpoint.info.host, port)

    async def _run(self, endpoint: TaskEndpoint, probes: list[ProbeSpec],
                   reports: TaskReports) -> None:
        await endpoint.start()
        loop = asyncio.get_running_loop()
        try:
            facts = await loop.run_in_executor(None, self.agent_facts, self.region,
                                               endpoint.info.agent_id)
        except Exception:  # an agent gone already: the task is about to go too
            log.exception("no facts for agent %s", endpoint.info.agent_id)
            facts = AgentFacts("", "", None)
        endpoint.learn(facts)
        if endpoint.server.closed:
            return
        task_id = endpoint.info.task_id
        self._probers[task_id] = [
            asyncio.ensure_future(self._probe_loop(endpoint, i, spec, reports))
            for i, spec in enumerate(probes)]
        fault = facts.fault
        if fault is not None and fault.kind == "crash" and fault.hits_task(task_id):
            loop.call_later(max(0.0, fault.after - (self._clock() - endpoint.started_at)),
                            self._crash, endpoint, reports)

    async def _probe_loop(self, endpoint: TaskEndpoint, index: int, spec: ProbeSpec,
                          reports: TaskReports) -> None:
        """Marathon-level checks begin when the task runs, then every interval; a check
        passes on a 200-399 answer within the timeout (Marathon docs, health-checks.md)."""
        loop = asyncio.get_running_loop()
        info = endpoint.info

        def passing(code: int) -> bool:
            return 200 <= code <= 399 or (spec.ignore_1xx and 100 <= code < 200)

        while not endpoint.server.closed:
            started = loop.time()
            target = self.book.lookup(info.host, spec.port, region=self.region,
                                      networks=[self.network])
            if spec.protocol == "TCP":
                outcome = await probe_tcp(target, spec.timeout)
            else:
                outcome = await probe_http(self._session(), target, spec.path, spec.timeout,
                                           passing)
            if endpoint.server.closed:
                return
            cause = outcome.detail or outcome.kind
            await loop.run_in_executor(None, reports.health_result, info.task_id, index,
                                       outcome.ok, cause)
            await asyncio.sleep(max(0.0, spec.interval - (loop.time() - started)))

    def _crash(self, endpoint: TaskEndpoint, reports: TaskReports) -> None:
        if endpoint.server.closed:
            return
        endpoint.server.abort()
        self._unlist(endpoint)
        for prober in self._probers.pop(endpoint.info.task_id, []):
            prober.cancel()
        asyncio.get_running_loop().run_in_executor(
            None, reports.task_exited, endpoint.info.task_id, "process exited (baked fault)")

    async def _stop(self, endpoint: TaskEndpoint) -> None:
        for prober in self._probers.pop(endpoint.info.task_id, []):
            prober.cancel()
        await endpoint.server.close(grace=5.0)

    def close(self) -> None:
        """The slot is gone: every task of it stops serving at once."""
        for endpoint in list(self.endpoints.values()):
            self._unlist(endpoint)
            self.loop.call_soon(endpoint.server.abort)
            for prober in self._probers.pop(endpoint.info.task_id, []):
                self.loop.call_soon(prober.cancel)
        self.endpoints.clear()
