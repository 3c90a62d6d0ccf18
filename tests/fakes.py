"""In-memory fakes of the engine's narrow interfaces, sharing one fake world.

The world checks DESIGN §4's promises on every change, so a test fails the
moment the engine (or a fault) breaks one, not only at the end.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from rotator.errors import Refused, StepFailed, TransientError
from rotator.ports import (
    AppHealth,
    GateResult,
    GateSpec,
    LockHeld,
    LockInfo,
    OutputsIncomplete,
    PlanSummary,
    ServiceRequirement,
    SlotOutputs,
    TrafficState,
    Verdict,
)
from rotator.state.control import with_request

RECORD_KEY = "rotator-demo.cn./www.rotator-demo.cn./CNAME"
EDGE = "prd-cn-edge"


class Crash(BaseException):
    """The process died (kill -9): nothing after this point runs."""


@dataclass
class FakeClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


@dataclass
class FakeWorld:
    clock: FakeClock = field(default_factory=FakeClock)
    slots: dict[str, SlotOutputs] = field(default_factory=dict)  # provisioned
    weights: dict[str, int] = field(default_factory=dict)
    registered: dict[str, list[str]] = field(default_factory=dict)
    healthy: dict[str, bool] = field(default_factory=dict)  # services passing, per slot
    deploy_ticks: int = 2  # checks before a deployment finishes
    faults: dict[str, list[Exception]] = field(default_factory=dict)  # op -> errors to raise
    fail_health_after: dict[str, int] = field(default_factory=dict)  # slot -> polls then FAILED
    # slot -> polls answering INCONCLUSIVE first, each after a change 0.1 s into its wait
    settling_polls: dict[str, int] = field(default_factory=dict)
    half_built: set[str] = field(default_factory=set)  # slots with resources but no outputs
    out_of_service: set[str] = field(default_factory=set)  # slots whose own ELB lags
    violations: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    _pending: dict[str, int] = field(default_factory=dict)
    _polls: dict[str, int] = field(default_factory=dict)

    def hit(self, op: str) -> None:
        self.calls.append(op)
        queue = self.faults.get(op)
        if queue:
            raise queue.pop(0)

    def violate(self, msg: str) -> None:
        self.violations.append(msg)

    def check(self) -> None:
        """Invariants that must hold at every recorded moment."""
        total = sum(self.weights.values())
        if self.weights and total not in (0, 100):
            self.violate(f"weights add up to {total}: {self.weights}")
        for slot, w in self.weights.items():
            if w > 0 and slot not in self.slots:
                self.violate(f"weight {w} on {slot}, which has no resources")
            if w > 0 and not self.registered.get(slot):
                self.violate(f"weight {w} on {slot}, which has no registered instances")

    def serving(self) -> str | None:
        live = [s for s, w in self.weights.items() if w > 0]
        return live[0] if len(live) == 1 else None

    def seed_live(self, slot: str, ami: str = "ami-00000001") -> None:
        self.slots[slot] = _outputs(slot, ami)
        self.weights = {slot: 100}
        self.registered = {slot: list(self.slots[slot].instances["proxy"])}
        self.healthy[slot] = True


def _outputs(slot: str, ami: str) -> SlotOutputs:
    return SlotOutputs(
        marathon_url=f"http://marathon.{slot}:8080",
        elb_name=f"prd-cn-{slot}",
        elb_dns=f"prd-cn-{slot}.elb.example",
        instances={"proxy": [f"i-{slot}-p1", f"i-{slot}-p2"], "mesos-agent": [f"i-{slot}-a1"]},
        ami=ami,
    )


class FakeInfra:
    def __init__(self, world: FakeWorld):
        self.w = world

    def provision(self, slot: str, ami: str) -> SlotOutputs:
        self.w.hit("provision")
        if ami == "ami-deadbeef":
            raise StepFailed(f"InvalidAMIID.NotFound: {ami}")
        if ami == "ami-halfbuilt":  # the apply failed half-way: resources, no outputs
            self.w.half_built.add(slot)
            raise StepFailed("terraform apply failed: DuplicateLoadBalancerName")
        self.w.slots[slot] = _outputs(slot, ami)
        self.w.healthy.setdefault(slot, True)
        return self.w.slots[slot]

    def read_outputs(self, slot: str) -> SlotOutputs | None:
        if slot in self.w.half_built:
            raise OutputsIncomplete(f"{slot}: the group defines no output 'elb_name'")
        return self.w.slots.get(slot)

    def destroy(self, slot: str) -> None:
        self.w.hit("destroy")
        if self.w.weights.get(slot, 0) > 0 or self.w.registered.get(slot):
            self.w.violate(f"destroyed {slot} while it carried traffic")
        self.w.slots.pop(slot, None)
        self.w.healthy.pop(slot, None)
        self.w.half_built.discard(slot)

    def plan(self, slot: str, ami: str) -> PlanSummary:
        return PlanSummary(add=10, change=0, destroy=0)

    def slots_with_resources(self) -> list[str]:
        return sorted(set(self.w.slots) | self.w.half_built)


class FakeApps:
    def __init__(self, world: FakeWorld):
        self.w = world
        self.n = 0
        self.sent: list[list[dict[str, Any]]] = []  # the definitions of every deploy

    def _slot(self, url: str) -> str:
        return url.split("marathon.")[1].split(":")[0]

    def start(self, marathon_url: str, apps: list[dict[str, Any]]) -> list[str]:
        self.w.hit("deploy")
        self.sent.append(apps)
        self.n += 1
        dep = f"dep-{self._slot(marathon_url)}-{self.n}"
        self.w._pending[dep] = self.w.deploy_ticks
        return [dep]

    def pending(self, marathon_url: str, deployment_ids: list[str], wait: float) -> list[str]:
        out = []
        for d in deployment_ids:
            left = self.w._pending.get(d, 0)
            if left > 0:
                self.w._pending[d] = left - 1
                out.append(d)
        return out

    def cancel(self, marathon_url: str, deployment_ids: list[str]) -> None:
        for d in deployment_ids:
            self.w._pending.pop(d, None)

    def health(self, marathon_url: str, app_ids: list[str]) -> list[AppHealth]:
        ok = self.w.healthy.get(self._slot(marathon_url), False)
        return [AppHealth(a, 2, 2, 2 if ok else 0, True) for a in app_ids]


class FakeWatch:
    def __init__(self, world: FakeWorld, slot: str):
        self.w = world
        self.slot = slot

    def poll(self, wait: float) -> GateResult:
        self.w.hit("health")
        n = self.w._polls.get(self.slot, 0) + 1
        self.w._polls[self.slot] = n
        limit = self.w.fail_health_after.get(self.slot)
        if limit is not None and n > limit:
            self.w.healthy[self.slot] = False
        if self.w.settling_polls.get(self.slot, 0) > 0 and self.w.healthy.get(self.slot):
            self.w.settling_polls[self.slot] -= 1
            self.w.clock.now += 0.1
            return GateResult(Verdict.INCONCLUSIVE, "web: 1/2 passing")
        if self.w.healthy.get(self.slot):
            return GateResult(Verdict.SUCCESSFUL, "all passing")
        return GateResult(Verdict.FAILED, f"web: 0/2 passing in prd-cn-{self.slot}")

    def close(self) -> None:
        pass


class FakeHealth:
    def __init__(self, world: FakeWorld):
        self.w = world

    def watch(self, requirements: list[ServiceRequirement], spec: GateSpec) -> FakeWatch:
        slot = requirements[0].tag.rsplit("-", 1)[1] if requirements else "blue"
        return FakeWatch(self.w, slot)

    def passing_now(self, requirements: list[ServiceRequirement]) -> list[int] | None:
        return [r.required if self.w.healthy.get(r.tag.rsplit("-", 1)[1]) else 0
                for r in requirements]


class FakeTraffic:
    def __init__(self, world: FakeWorld):
        self.w = world

    def read(self) -> TrafficState:
        return TrafficState(
            weights={RECORD_KEY: dict(self.w.weights)} if self.w.weights else {},
            registrations={EDGE: {s: list(i) for s, i in self.w.registered.items() if i}},
        )

    def set_weights(self, weights, slots, expected=None, *, journal=None) -> None:
        self.w.hit("set_weights")
        current = {k: v for k, v in self.w.weights.items() if v}
        if expected is not None and current != {k: v for k, v in expected.items() if v}:
            raise StepFailed(f"{RECORD_KEY} changed by hand: expected {expected}, found {current}")
        if sum(weights.values()) != 100:
            raise Refused(f"weights {weights} do not add up to 100")
        for slot, w in weights.items():
            if w > 0 and (slot not in self.w.slots or not self.w.healthy.get(slot)):
                raise Refused(f"traffic guard: {slot} is not healthy")
        # register first, then move weight, then deregister what carries none
        for slot, w in weights.items():
            if w > 0:
                self.w.registered[slot] = list(self.w.slots[slot].instances["proxy"])
        self.w.weights = dict(weights)
        for slot, w in weights.items():
            if w == 0:
                self.w.registered.pop(slot, None)
        self.w.check()

    def settled(self, weights, slots, wait) -> bool:
        return True

    def drained(self, slot: str) -> bool:
        return not self.w.registered.get(slot)

    def in_service(self, outputs: SlotOutputs) -> tuple[int, int]:
        slot = outputs.elb_name.rsplit("-", 1)[1]
        proxies = len(outputs.instances.get("proxy", []))
        return (proxies if self.w.healthy.get(slot) and slot not in self.w.out_of_service
                else 0), proxies

    def remove_slot(self, slot: str, outputs: SlotOutputs | None, *, journal=None) -> float:
        self.w.hit("remove_slot")
        if self.w.weights.get(slot, 0) > 0:
            raise Refused(f"traffic guard: {slot} still carries weight")
        self.w.weights.pop(slot, None)
        self.w.registered.pop(slot, None)
        return 5.0


class FakeMetrics:
    """What each slot's load balancers served: ``rates[slot](t) -> (requests/s, error share)``;
    a slot without a rate served nothing, nor does one without weight now (unless
    ``follow_weights`` is off: clients that ignore the weights). Whole periods only."""

    def __init__(self, world: FakeWorld, period: float = 10.0, follow_weights: bool = True):
        self.w = world
        self.period = period
        self.follow_weights = follow_weights
        self.rates: dict[str, Any] = {}
        self.asked: list[tuple[str, float, float]] = []

    def load(self, slot, outputs, start, end):
        from rotator.ports import SlotLoad

        self.asked.append((slot, start, end))
        rate = self.rates.get(slot)
        if self.follow_weights and not self.w.weights.get(slot):
            rate = None
        requests = errors = 0.0
        t = start
        while rate is not None and t < end:
            per_second, share = rate(t)
            requests += per_second * self.period
            errors += per_second * self.period * share
            t += self.period
        return SlotLoad(requests, errors, 0.05 if requests else None)


class FakeGuard:
    def check_destroy(self, slot: str, state: TrafficState) -> None:
        if state.slot_weight(slot) or state.slot_registered(slot):
            raise Refused(f"traffic guard: refusing to destroy {slot}")

    def check_quiet(self, slot, load, rules) -> None:
        from rotator.traffic.guard import TrafficGuard

        TrafficGuard.check_quiet(self, slot, load, rules)


class MemLock:
    def __init__(self, store: MemoryStore, group: str):
        self.store, self.group = store, group

    def lost(self) -> bool:
        return self.store.lose_lock

    def release(self) -> None:
        self.store.locks.pop(self.group, None)


class MemoryStore:
    """Record store whose ``save`` can crash the 'process' at a chosen write."""

    def __init__(self, world: FakeWorld | None = None):
        self.records: dict[str, dict[str, Any]] = {}
        self.all: dict[str, dict[str, Any]] = {}
        self.control: dict[str, dict[str, Any]] = {}
        self.locks: dict[str, LockInfo] = {}
        self.world = world
        self.saves = 0
        self.crash_at: int | None = None
        self.crash_before_write = False
        self.lose_lock = False
        self.snapshots: list[dict[str, Any]] = []

    def load(self, group):
        r = self.records.get(group)
        return copy.deepcopy(r) if r else None

    def save(self, record):
        self.saves += 1
        if self.crash_at == self.saves and self.crash_before_write:
            self.crash_at = None
            raise Crash()
        if record.get("kind", "rotation") == "rotation":
            self.records[record["group"]] = copy.deepcopy(record)
        self.all[record["id"]] = copy.deepcopy(record)
        if self.world is not None:
            self.world.check()
            self.snapshots.append({"weights": dict(self.world.weights),
                                   "slots": sorted(self.world.slots)})
        if self.crash_at == self.saves:
            self.crash_at = None
            raise Crash()

    def history(self, group):
        return sorted((r for r in self.all.values() if r["group"] == group),
                      key=lambda r: r["created_at"])

    def acquire(self, group, rotation_id, break_stale=False):
        if group in self.locks:
            raise LockHeld(self.locks[group])
        self.locks[group] = LockInfo(group, "ops@bastion", 4242, "bastion", 1.0, rotation_id)
        return MemLock(self, group)

    def lock_info(self, group):
        return self.locks.get(group)

    def read_control(self, group):
        return dict(self.control.get(group, {}))

    def write_control(self, group, rotation_id, request):
        self.control[group] = with_request(self.control.get(group, {}), rotation_id, request)
        return dict(self.control[group])

    def died(self) -> None:
        """What a kill -9 leaves: the lock file of a dead process (broken on resume)."""
        self.locks.clear()


def transient(op: str) -> TransientError:
    return TransientError(f"{op}: Throttling: Rate exceeded")
