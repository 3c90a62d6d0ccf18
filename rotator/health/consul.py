"""Consul health gate: counts passing instances of each service in one slot.

One follower thread per watched service keeps a blocking query open on
``/v1/health/service/<name>?tag=<group>-<slot>&index=…&wait=…`` (py-consul),
so a check change reaches ``poll`` within milliseconds and an idle watch
costs no CPU: every thread sleeps in a socket read.

Evaluation rules (one evaluation per ``poll``; ``poll`` returns early only
when an answer changed, so thresholds count real time, not call rate):

* an instance is *passing* when every check (its own and its node's) passes;
* a service is *ok* with ``passing >= required``;
* it has *failed* when it is short and an instance this watch once saw
  passing is no longer passing (a check went critical, or it vanished);
* otherwise it is short only of instances that never came up yet (none
  registered, or registered but not yet passing): that is *no data*,
  INCONCLUSIVE, and turns FAILED after ``GateSpec.no_data_seconds``;
* any error talking to Consul is ERROR, which is never counted as success.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import consul
import requests

from rotator.health.consul_client import ConsulEndpoint, consul_client
from rotator.ports import GateResult, GateSpec, ServiceRequirement, Verdict
from rotator.tls import DEFAULT_TLS, TlsSettings

log = logging.getLogger(__name__)

_OK, _FAIL, _NO_DATA, _ERROR = "ok", "fail", "no-data", "error"


@dataclass(frozen=True)
class _Instance:
    passing: bool
    detail: str  # e.g. "service:api-2 critical" when not passing


@dataclass(frozen=True)
class _Observation:
    instances: dict[str, _Instance] = field(default_factory=dict)
    error: str | None = None


class ConsulHealthSource:
    """``HealthSource`` over a Consul agent. The token is sent as a header, never logged."""

    def __init__(
        self,
        address: str,
        datacenter: str | None = None,
        token: str | None = None,
        *,
        tls: TlsSettings = DEFAULT_TLS,
        request_timeout: float = 10.0,
        block_seconds: float = 30.0,
        error_backoff: float = 0.5,
        max_error_backoff: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._endpoint = ConsulEndpoint(address, datacenter, token, tls)
        self.address = self._endpoint.url
        self.datacenter = datacenter
        self.request_timeout = request_timeout
        self.block_seconds = block_seconds
        self.error_backoff = error_backoff
        self.max_error_backoff = max_error_backoff
        self.clock = clock

    def __repr__(self) -> str:
        return f"ConsulHealthSource({self.address!r}, datacenter={self.datacenter!r})"

    def client(self) -> consul.Consul:
        return consul_client(self._endpoint, self.request_timeout)

    def watch(self, requirements: list[ServiceRequirement], spec: GateSpec) -> ConsulGateWatch:
        return ConsulGateWatch(self, requirements, spec)

    def passing_now(self, requirements: list[ServiceRequirement]) -> list[int] | None:
        """One non-blocking query per requirement, a few at a time; None if any fails.

        For one-off questions (the traffic guard): a watch would start a follower per
        service and could judge before every follower has answered."""
        client = self.client()

        def count(req: ServiceRequirement) -> int:
            _, entries = client.health.service(req.service, tag=req.tag)
            return sum(1 for inst in _instances(entries or []).values() if inst.passing)

        try:
            with ThreadPoolExecutor(max_workers=min(8, max(1, len(requirements)))) as pool:
                return list(pool.map(count, requirements))
        except (requests.RequestException, consul.ConsulException) as exc:
            log.warning("%s", _describe_error(self.address, exc))
            return None
        finally:
            client.http.session.close()


class ConsulGateWatch:
    def __init__(self, source: ConsulHealthSource, requirements: list[ServiceRequirement],
                 spec: GateSpec):
        if not requirements:
            raise ValueError("a Consul gate needs at least one service requirement")
        self._source = source
        self._reqs = list(requirements)
        self._spec = spec
        self._clock = source.clock
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._observations: list[_Observation | None] = [None] * len(self._reqs)
        self._generation = 0
        self._seen_generation = 0
        self._known_passing: list[set[str]] = [set() for _ in self._reqs]
        self._successes = 0
        self._failures = 0
        self._no_data_since: float | None = None  # set by the first poll
        self._polled = False
        self._threads = [
            threading.Thread(target=self._follow, args=(i,), daemon=True,
                             name=f"consul-gate-{req.service}")
            for i, req in enumerate(self._reqs)
        ]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ followers

    def _follow(self, slot: int) -> None:
        req = self._reqs[slot]
        src = self._source
        client = src.client()
        index: int | None = None
        backoff = src.error_backoff
        bucket = _TokenBucket(rate=10.0, burst=2)
        wait = f"{max(1, int(src.block_seconds))}s"
        spurious = False
        while not self._stop.is_set():
            # Only answers that changed nothing are throttled: a real change is re-queried at
            # once (detection latency), a storm of spurious wake-ups cannot spin the loop.
            pause = bucket.take() if spurious else 0.0
            if pause and self._stop.wait(pause):
                break
            try:
                raw_index, entries = client.health.service(
                    req.service, tag=req.tag, index=str(index) if index else None, wait=wait)
            except Exception as exc:  # every failure to ask is an ERROR verdict
                self._deliver(slot, _Observation(error=_describe_error(src.address, exc)))
                index = None
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, src.max_error_backoff)
                continue
            backoff = src.error_backoff
            new_index = int(raw_index)
            # Consul's rule: an index that goes backwards means start over from 0.
            index = new_index if (index is None or new_index >= index) and new_index > 0 else None
            spurious = not self._deliver(slot, _Observation(instances=_instances(entries or [])))
        client.http.session.close()

    def _deliver(self, slot: int, obs: _Observation) -> bool:
        """Store an answer; False when it changed nothing (a spurious wake-up)."""
        with self._cond:
            if self._observations[slot] == obs:
                return False
            self._observations[slot] = obs
            self._generation += 1
            self._cond.notify_all()
            return True

    # ------------------------------------------------------------------ GateWatch

    def poll(self, wait: float) -> GateResult:
        end = self._clock() + max(wait, 0.0)
        with self._cond:
            if not self._polled:
                # The no-data period counts from the first judgement, not from creation: a
                # watch may be started early so that its followers are warm when asked.
                self._polled = True
                self._no_data_since = self._clock()
            while not self._stop.is_set():
                answered = all(o is not None for o in self._observations)
                if answered and self._generation != self._seen_generation:
                    break
                remaining = end - self._clock()
                if self._no_data_since is not None and answered:
                    remaining = min(remaining, self._no_data_since + self._spec.no_data_seconds
                                    - self._clock())
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._seen_generation = self._generation
            observations = list(self._observations)
            return self._evaluate(observations)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> ConsulGateWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, observations: list[_Observation | None]) -> GateResult:
        states: list[tuple[str, str]] = []
        passing: dict[str, int] = {}
        for i, (req, obs) in enumerate(zip(self._reqs, observations, strict=True)):
            state, reason, count = self._judge(i, req, obs)
            states.append((state, reason))
            if count is not None:
                passing[req.service] = count
        kinds = {s for s, _ in states}

        def reasons(*wanted: str) -> str:
            return "; ".join(r for s, r in states if s in wanted)

        if _ERROR in kinds:
            self._successes = 0
            return GateResult(Verdict.ERROR, reasons(_ERROR), passing)
        now = self._clock()
        if _FAIL in kinds:
            self._successes, self._failures = 0, self._failures + 1
            self._no_data_since = None
            reason = reasons(_FAIL, _NO_DATA)
            if self._failures >= self._spec.failure_threshold:
                return GateResult(Verdict.FAILED, reason, passing)
            return GateResult(Verdict.INCONCLUSIVE, f"{reason} (failure {self._failures}/"
                              f"{self._spec.failure_threshold})", passing)
        if _NO_DATA in kinds:
            self._successes = self._failures = 0
            if self._no_data_since is None:
                self._no_data_since = now
            waited = now - self._no_data_since
            reason = reasons(_NO_DATA)
            if waited >= self._spec.no_data_seconds:
                return GateResult(Verdict.FAILED, f"{reason}, still after {waited:.0f}s", passing)
            return GateResult(Verdict.INCONCLUSIVE, reason, passing)
        self._failures = 0
        self._no_data_since = None
        self._successes += 1
        reason = reasons(_OK)
        if self._successes >= self._spec.consecutive_successes:
            return GateResult(Verdict.SUCCESSFUL, reason, passing)
        return GateResult(Verdict.INCONCLUSIVE, f"{reason} (success {self._successes}/"
                          f"{self._spec.consecutive_successes})", passing)

    def _judge(self, i: int, req: ServiceRequirement,
               obs: _Observation | None) -> tuple[str, str, int | None]:
        where = f" in {req.tag}" if req.tag else ""
        if obs is None:
            return _NO_DATA, f"{req.service}: no answer from consul yet", None
        if obs.error is not None:
            return _ERROR, obs.error, None
        up = {k for k, inst in obs.instances.items() if inst.passing}
        count = len(up)
        known = self._known_passing[i]
        known |= up
        summary = f"{req.service}: {count}/{req.required} passing{where}"
        if count >= req.required:
            known &= set(obs.instances)  # forget replaced instances once healthy again
            return _OK, summary, count
        fallen = sorted(known - up)
        if fallen:
            details = [obs.instances[k].detail if k in obs.instances else f"{k} deregistered"
                       for k in fallen[:3]]
            return _FAIL, f"{summary} ({'; '.join(details)})", count
        if not obs.instances:
            return _NO_DATA, f"{req.service}: no instance registered{where}", count
        waiting = len(obs.instances) - count
        return _NO_DATA, f"{summary} ({waiting} not yet healthy)", count


def _instances(entries: list[dict]) -> dict[str, _Instance]:
    out: dict[str, _Instance] = {}
    for entry in entries:
        svc = entry.get("Service") or {}
        node = (entry.get("Node") or {}).get("Node", "")
        key = f"{node}/{svc.get('ID', '')}"
        bad = [c for c in entry.get("Checks") or [] if c.get("Status") != "passing"]
        detail = ""
        if bad:
            first = bad[0]
            output = (first.get("Output") or "").strip().splitlines()
            detail = f"{svc.get('ID', '')} {first.get('CheckID', '')} {first.get('Status', '')}"
            if output:
                detail += f": {output[0][:80]}"
        out[key] = _Instance(passing=not bad, detail=detail)
    return out


def _describe_error(address: str, exc: Exception) -> str:
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
        why = found.group(0) if found else type(exc).__name__
        return f"consul at {address} unreachable: {why}"
    if isinstance(exc, consul.ACLPermissionDenied):
        return f"consul at {address} refused the request (403: check the token)"
    if isinstance(exc, consul.ConsulException):
        return f"consul at {address} answered an error: {str(exc)[:200]}"
    return f"consul at {address}: {type(exc).__name__}: {str(exc)[:200]}"


class _TokenBucket:
    """Caps a follower's query rate (Consul's advice against hot loops on spurious wake-ups)."""

    def __init__(self, rate: float, burst: int):
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> float:
        """Seconds to pause before the next query (0 when a token is available)."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        need = (1 - self._tokens) / self._rate
        self._tokens = 0.0
        self._last = now + need
        return need
