"""The emulator's core: several datacenters in one process, plus the timer thread.

``ConsulCore`` is usable without any HTTP server: a caller in the same process
(for instance a Marathon emulator's task listener acting as registrator) calls
``core.dc("cn-north-1").register_service({...})`` directly, and blocked HTTP
queries wake up exactly as they would for an HTTP write.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from rotator.sandbox.consul.acl import AgentTokens
from rotator.sandbox.consul.agent_log import AgentLog
from rotator.sandbox.consul.datacenter import Datacenter, Probe
from rotator.sandbox.consul.members import LEFT
from rotator.sandbox.consul.metrics import Metrics
from rotator.sandbox.consul.model import ConsulError
from rotator.sandbox.consul.notifier import ChangeNotifier
from rotator.sandbox.consul.probes import run_probe


class ConsulCore:
    def __init__(
        self,
        datacenters: Iterable[str] = ("dc1",),
        *,
        node_name: str | None = None,
        acl_token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        run_timers: bool = True,
        prometheus: bool = False,
        probe_target: Callable[[str, str, str], str | None] | None = None,
    ):
        """``clock`` drives TTLs, session expiry and lock-delay (inject one to test them);
        ``prometheus`` stands for a positive ``telemetry.prometheus_retention_time``;
        ``probe_target(datacenter, kind, target)``: where an HTTP/TCP check of ``target``
        really goes (a loopback target), or None when unreachable; default: loopback
        targets only."""
        names = list(datacenters) or ["dc1"]
        self.acl_token = acl_token
        self.tokens = AgentTokens(acl_token)
        self.log = AgentLog()
        self.metrics = Metrics()
        self.prometheus = prometheus
        self._on_leave: list[Callable[[], None]] = []
        self.notifier = ChangeNotifier()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._clock = clock
        self.default_dc = names[0]
        self._dcs = {
            name: Datacenter(name, node_name or f"consul-{name}", lock=self._lock,
                             notifier=self.notifier, clock=clock, poke=self._poke,
                             log=self.log.emit,
                             probe_target=None if probe_target is None else
                             functools.partial(probe_target, name))
            for name in names
        }
        self._closed = False
        self._probes = ThreadPoolExecutor(max_workers=16, thread_name_prefix="consul-check")
        self._thread: threading.Thread | None = None
        if run_timers:
            self._thread = threading.Thread(target=self._timer_loop, name="consul-timers", daemon=True)
            self._thread.start()

    @property
    def datacenters(self) -> list[str]:
        return list(self._dcs)

    def dc(self, name: str | None = None) -> Datacenter:
        found = self._dcs.get(name or self.default_dc)
        if found is None:
            raise ConsulError(500, "No path to datacenter")
        return found

    def on_leave(self, callback: Callable[[], None]) -> None:
        """Called after ``/v1/agent/leave`` has answered: whoever serves this core stops."""
        self._on_leave.append(callback)

    def leave(self) -> None:
        for dc in self._dcs.values():
            dc.membership.local.status = LEFT
        self.log.emit("INFO", "agent", "Requesting shutdown")
        for callback in list(self._on_leave):
            callback()

    def reload(self) -> None:
        self.log.emit("INFO", "agent", "Reloading configuration...")

    def gauges(self) -> dict[str, float]:
        with self._lock:
            dcs = list(self._dcs.values())
            return {
                "consul.consul.state.nodes": sum(len(dc.nodes) for dc in dcs),
                "consul.consul.state.services": sum(len({s.name for s in dc.services.values()})
                                                    for dc in dcs),
                "consul.consul.state.service_instances": sum(len(dc.services) for dc in dcs),
                "consul.consul.state.kv_entries": sum(len(dc.kv) for dc in dcs),
                "consul.consul.state.config_entries": sum(len(dc.config.entries) for dc in dcs),
                "consul.session_ttl.active": sum(len(dc.sessions) for dc in dcs),
                "consul.runtime.num_goroutines": threading.active_count(),
                "consul.rpc.queries_blocking": self.notifier.blocked,
            }

    def close(self) -> None:
        self.log.close()
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._probes.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ timers

    def _poke(self) -> None:
        with self._lock:
            self._wake.notify_all()

    def run_due(self) -> None:
        """Fire every timer that is due (TTL expiry, session expiry, check probes)."""
        for dc in self._dcs.values():
            for probe in dc.run_due():
                self._submit(dc, probe)

    def _submit(self, dc: Datacenter, probe: Probe) -> None:
        key, *args = probe

        def work() -> None:
            status, output = run_probe(*args)
            dc.record_probe(key, status, output)

        try:
            self._probes.submit(work)
        except RuntimeError:  # shutting down
            pass

    def _timer_loop(self) -> None:
        while True:
            self.run_due()
            with self._lock:
                if self._closed:
                    return
                deadlines = [d for d in (dc.next_deadline() for dc in self._dcs.values()) if d]
                timeout = max(0.0, min(deadlines) - self._clock()) if deadlines else None
                if timeout is None or timeout > 0:
                    self._wake.wait(timeout)
