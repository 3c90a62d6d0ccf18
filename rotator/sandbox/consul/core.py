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

from rotator.sandbox.consul.datacenter import Datacenter, Probe
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
        probe_target: Callable[[str, str, str], str | None] | None = None,
    ):
        """``probe_target(datacenter, kind, target)``: where an HTTP/TCP check of ``target``
        really goes (a loopback target), or None when unreachable; default: loopback
        targets only."""
        names = list(datacenters) or ["dc1"]
        self.acl_token = acl_token
        self.notifier = ChangeNotifier()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._clock = clock
        self.default_dc = names[0]
        self._dcs = {
            name: Datacenter(name, node_name or f"consul-{name}", lock=self._lock,
                             notifier=self.notifier, clock=clock, poke=self._poke,
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

    def close(self) -> None:
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
