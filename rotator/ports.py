"""Narrow interfaces between the engine and the outside world.

The engine only talks to these; the real adapters (Terraform, Marathon,
Consul, Route53/ELB, record stores) implement them, and in-memory fakes
implement them for the engine's tests. Adapters never import the engine.

Waiting methods take ``wait``: they may block up to that many seconds for
the world to change (a Consul blocking query, Marathon's event stream) and
must return early when it does. Implementations without such a mechanism
return at once; the engine then sleeps the rest of the poll interval.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rotator.errors import RotatorError, StepFailed

# --------------------------------------------------------------------------
# Infrastructure (Terraform: one workspace per slot)


@dataclass(frozen=True)
class SlotOutputs:
    """What a provisioned slot exposes, read from ``terraform output -json``."""

    marathon_url: str
    elb_name: str
    elb_dns: str
    instances: dict[str, list[str]] = field(default_factory=dict)  # role -> instance ids
    ami: str = ""
    private_ips: dict[str, list[str]] = field(default_factory=dict)  # role -> private IPs

    def to_dict(self) -> dict[str, Any]:
        return {
            "marathon_url": self.marathon_url,
            "elb_name": self.elb_name,
            "elb_dns": self.elb_dns,
            "instances": {k: list(v) for k, v in self.instances.items()},
            "ami": self.ami,
            "private_ips": {k: list(v) for k, v in self.private_ips.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlotOutputs:
        return cls(
            marathon_url=data["marathon_url"],
            elb_name=data["elb_name"],
            elb_dns=data["elb_dns"],
            instances={k: list(v) for k, v in data.get("instances", {}).items()},
            ami=data.get("ami", ""),
            private_ips={k: list(v) for k, v in data.get("private_ips", {}).items()},
        )


@dataclass(frozen=True)
class PlanSummary:
    add: int
    change: int
    destroy: int
    resources: list[str] = field(default_factory=list)  # "+ aws_instance.agent[0]" style lines


class OutputsIncomplete(StepFailed):
    """The slot holds resources but not all its outputs: an apply that did not finish."""


class Infrastructure(Protocol):
    """One group's Terraform, one workspace per slot."""

    def provision(self, slot: str, ami: str) -> SlotOutputs:
        """Apply the group into ``slot`` with ``ami``; idempotent (re-apply converges)."""

    def read_outputs(self, slot: str) -> SlotOutputs | None:
        """The slot's outputs, or None when the slot holds no resources.

        Raises OutputsIncomplete for a half-built slot."""

    def destroy(self, slot: str) -> None:
        """Destroy everything in the slot's workspace; idempotent."""

    def plan(self, slot: str, ami: str) -> PlanSummary: ...

    def slots_with_resources(self) -> list[str]:
        """Workspaces (slots) whose state holds at least one resource."""


# --------------------------------------------------------------------------
# Apps (Marathon)


@dataclass(frozen=True)
class AppHealth:
    app_id: str
    wanted: int
    running: int
    healthy: int
    has_health_checks: bool

    @property
    def ok(self) -> bool:
        if self.running < self.wanted:
            return False
        return not self.has_health_checks or self.healthy >= self.wanted


class AppDeployer(Protocol):
    """Deploys a group's Marathon apps onto one slot's Marathon."""

    def start(self, marathon_url: str, apps: list[dict[str, Any]]) -> list[str]:
        """Send the app definitions; return the deployment ids (possibly empty)."""

    def pending(self, marathon_url: str, deployment_ids: list[str], wait: float) -> list[str]:
        """The ids among ``deployment_ids`` still running (blocks ≤ wait for a change)."""

    def cancel(self, marathon_url: str, deployment_ids: list[str]) -> None: ...

    def health(self, marathon_url: str, app_ids: list[str]) -> list[AppHealth]: ...


# --------------------------------------------------------------------------
# Health gates (Consul)


class Verdict(enum.StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"  # no data yet
    ERROR = "error"  # the source could not be asked


@dataclass(frozen=True)
class ServiceRequirement:
    service: str  # Consul service name
    required: int  # passing instances needed in the slot
    tag: str | None = None  # e.g. the slot tag


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    reason: str
    passing: dict[str, int] = field(default_factory=dict)  # service -> passing in slot


@dataclass(frozen=True)
class GateSpec:
    """Thresholds applied by a watch (copied from the policy's gate)."""

    consecutive_successes: int = 1
    failure_threshold: int = 1
    no_data_seconds: float = 60.0


class GateWatch(Protocol):
    def poll(self, wait: float) -> GateResult:
        """Current verdict, thresholds applied; blocks ≤ wait for a change."""

    def close(self) -> None: ...


class HealthSource(Protocol):
    def watch(self, requirements: list[ServiceRequirement], spec: GateSpec) -> GateWatch: ...

    def passing_now(self, requirements: list[ServiceRequirement]) -> list[int] | None:
        """Passing instances of each requirement right now; None when that is unknown."""


# --------------------------------------------------------------------------
# Traffic (Route53 weights + the edge listener's weights)


@dataclass
class TrafficState:
    """What the world says now."""

    # record key ("zone/name/type") -> slot -> weight
    weights: dict[str, dict[str, int]] = field(default_factory=dict)
    # edge load balancer -> slot -> targets registered (or draining) in its target group
    registrations: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # edge load balancer -> target -> "healthy" / "initial" / "draining" / ...
    health: dict[str, dict[str, str]] = field(default_factory=dict)
    # edge load balancer -> slot -> weight on its listener
    edge_weights: dict[str, dict[str, int]] = field(default_factory=dict)
    # record key -> the largest TTL of its sets (what a client caches an answer for)
    ttls: dict[str, int] = field(default_factory=dict)
    # record key -> SetIdentifier -> weight, of the sets of *other* groups in the same
    # records (a master/slave pair shares its records)
    others: dict[str, dict[str, int]] = field(default_factory=dict)

    def others_weight(self) -> int:
        return sum(sum(w.values()) for w in self.others.values())

    def slot_weight(self, slot: str) -> int:
        """The slot's weight summed over every record and edge listener."""
        return sum(w.get(slot, 0) for w in [*self.weights.values(), *self.edge_weights.values()])

    def slot_registered(self, slot: str) -> int:
        return sum(len(r.get(slot, [])) for r in self.registrations.values())

    def slot_healthy(self, slot: str) -> int:
        """How many of the slot's registered edge targets are healthy."""
        return sum(self.health.get(edge, {}).get(ip) == "healthy"
                   for edge, by_slot in self.registrations.items() for ip in by_slot.get(slot, []))


class ChangeJournal(Protocol):
    """Where a router notes the DNS changes it is waiting for, durably, so that a process
    restarted after a crash waits for them too (a change is only in effect once INSYNC)."""

    def pending(self) -> list[str]:
        """Change ids submitted and not yet seen INSYNC."""

    def submitted(self, change_ids: list[str]) -> None:
        """Note these ids (durably, before returning): they are being waited for."""

    def in_sync(self) -> None:
        """Every noted change is INSYNC (the journal may note when)."""


class TrafficRouter(Protocol):
    """Moves a group's traffic between its slots."""

    def read(self) -> TrafficState: ...

    def set_weights(
        self,
        weights: dict[str, int],
        slots: dict[str, SlotOutputs],
        expected: dict[str, int] | None = None,
        *,
        journal: ChangeJournal | None = None,
        fence: bool = False,
    ) -> None:
        """Make every record of the group carry ``weights`` (slot -> weight, summing to the
        total), registering/deregistering ELB instances to match; verify by reading back.

        ``expected`` is what the rotation last set: when the world differs (a record changed
        by hand), refuse with StepFailed rather than overwrite it. Changes noted in
        ``journal`` by an earlier attempt are waited for first. ``fence``: send the records
        even when they already hold ``weights`` and wait until that change is INSYNC (an
        attempt that died between its change and noting it leaves a change whose id is
        lost and which may still be propagating; GetChange's INSYNC says "the changes have
        propagated to all Route 53 DNS servers managing the hosted zone", so once the
        re-sent change is INSYNC every server answers these weights)."""

    def settled(self, weights: dict[str, int], slots: dict[str, SlotOutputs], wait: float) -> bool:
        """True once the change is in sync and the registered instances are InService."""

    def in_service(self, outputs: SlotOutputs) -> tuple[int, int]:
        """(InService, registered) instances of the slot's own load balancer."""

    def drained(self, slot: str) -> bool:
        """True once no target of the slot is registered or draining at the edge."""

    def remove_slot(self, slot: str, outputs: SlotOutputs | None, *,
                    journal: ChangeJournal | None = None) -> float:
        """Take the slot out entirely (weight 0, deregistered); return the seconds of
        connection draining to wait before its instances may be destroyed."""


# --------------------------------------------------------------------------
# Metrics (CloudWatch: what the slot's load balancers served)


@dataclass(frozen=True)
class SlotLoad:
    """What a slot's load balancers (its own, and its edge target group) served in a window."""

    requests: float
    errors: float  # 5XX answered by the slot's targets
    p99: float | None = None  # seconds; None when no request was timed

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None


class Metrics(Protocol):
    period: float  # seconds per data point (60 on AWS)

    def load(self, slot: str, outputs: SlotOutputs, start: float, end: float) -> SlotLoad | None:
        """The slot's load in [start, end) (epoch seconds); None when it cannot be read."""


# --------------------------------------------------------------------------
# Record store and lock


@dataclass(frozen=True)
class LockInfo:
    group: str
    holder: str  # user@host
    pid: int
    host: str
    started_at: float  # epoch seconds
    rotation_id: str = ""


class LockHeld(RotatorError):
    exit_code = 3

    def __init__(self, info: LockInfo, stale: bool = False):
        self.info = info
        self.stale = stale
        import datetime as _dt

        since = _dt.datetime.fromtimestamp(info.started_at, _dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        extra = " (its process is gone: break it with --break-lock)" if stale else ""
        super().__init__(
            f"group {info.group!r} is locked by {info.holder} (pid {info.pid} on {info.host}, "
            f"since {since}, rotation {info.rotation_id or '-'}){extra}"
        )


class Lock(Protocol):
    def release(self) -> None: ...

    def lost(self) -> bool:
        """True when the lock can no longer be trusted (expired, taken over)."""


@runtime_checkable
class RecordStore(Protocol):
    """Durable rotation records and the per-group lock."""

    def load(self, group: str) -> dict[str, Any] | None:
        """The group's current (latest) rotation record, or None."""

    def save(self, record: dict[str, Any]) -> None:
        """Write the record durably (atomically) before returning."""

    def history(self, group: str) -> list[dict[str, Any]]:
        """Every rotation record of the group, oldest first."""

    def acquire(self, group: str, rotation_id: str, break_stale: bool = False) -> Lock:
        """Take the group's lock or raise LockHeld."""

    def lock_info(self, group: str) -> LockInfo | None: ...

    def read_control(self, group: str) -> dict[str, Any]:
        """Operator requests for the group's rotation: ``{"rotation_id", "requests": [...]}``
        (see ``rotator.state.control``)."""

    def write_control(self, group: str, rotation_id: str,
                      request: dict[str, Any]) -> dict[str, Any]:
        """Add one operator request (abort, promote) for ``rotation_id``; return the result.

        Kept apart from the record so that a running engine's writes never erase it."""
