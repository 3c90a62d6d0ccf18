"""In-memory fakes of the engine's narrow interfaces, sharing one fake world.

The fakes only record: the traffic is moved by the real routers and refused by the real
traffic guard, over fake AWS clients (``tests/fake_aws.py``) that apply whatever they are
sent. Every side effect on the world is logged with the rotation record written last before
it and the traffic before and after it; ``tests/promises.py`` judges DESIGN §4's promises
from that log.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotator.config import Project
from rotator.errors import StepFailed, TransientError
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
    Verdict,
)
from rotator.state.control import with_request
from rotator.wiring import edge_spec, record_specs
from tests.fake_aws import FakeAws

ROOT = Path(__file__).resolve().parent.parent
GROUP = Project(ROOT).group("prd-cn")


class Crash(BaseException):
    """The process died (kill -9): nothing after this point runs."""


@dataclass
class FakeClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


@dataclass(frozen=True)
class Effect:
    """One change to the world, as it happened."""

    label: str  # "provision", "destroy", "deploy", "cancel", or the AWS operation
    detail: Any
    at: float
    record: dict[str, Any] | None  # the rotation record written last before it
    before: dict[str, Any]  # the traffic before and after it (FakeWorld.traffic)
    after: dict[str, Any]


@dataclass
class FakeWorld:
    clock: FakeClock = field(default_factory=FakeClock)
    group: str = GROUP.name
    slots: dict[str, SlotOutputs] = field(default_factory=dict)  # provisioned
    healthy: dict[str, bool] = field(default_factory=dict)  # services passing, per slot
    deploy_ticks: int = 2  # checks before a deployment finishes
    # op -> errors to raise: "provision", "deploy", "destroy", or an AWS operation such as
    # "route53:ChangeResourceRecordSets" (tests.fake_aws.Lost: applied, its answer lost)
    faults: dict[str, list[BaseException]] = field(default_factory=dict)
    fail_health_after: dict[str, int] = field(default_factory=dict)  # slot -> polls then FAILED
    # slot -> polls answering INCONCLUSIVE first, each after a change 0.1 s into its wait
    settling_polls: dict[str, int] = field(default_factory=dict)
    half_built: set[str] = field(default_factory=set)  # slots with resources but no outputs
    out_of_service: set[str] = field(default_factory=set)  # slots whose own ELB lags
    calls: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    last_record: dict[str, Any] | None = None
    _pending: dict[str, int] = field(default_factory=dict)
    _polls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.aws = FakeAws(self, record_specs(GROUP.traffic.records), edge_spec(GROUP),
                           drain=float(GROUP.traffic.edge.deregistration_delay))

    def hit(self, op: str) -> None:
        self.calls.append(op)
        queue = self.faults.get(op)
        if queue:
            raise queue.pop(0)

    def effect(self, label: str, apply, detail: Any = None) -> Any:
        before = self.traffic()
        result = apply()
        self.effects.append(Effect(label, detail, self.clock(), copy.deepcopy(self.last_record),
                                   before, self.traffic()))
        return result

    def saved(self, record: dict[str, Any]) -> None:
        self.last_record = copy.deepcopy(record)

    def can_serve(self, slot: str, elb: bool = True) -> bool:
        """The slot's services pass (and, with ``elb``, its own ELB has it InService)."""
        return (slot in self.slots and bool(self.healthy.get(slot))
                and not (elb and slot in self.out_of_service))

    def services_passing(self, slot: str) -> bool | None:
        """What the traffic guard asks Consul (None: a slot it knows nothing of)."""
        return self.healthy.get(slot) if slot in self.slots else None

    def traffic(self) -> dict[str, Any]:
        """What clients may reach now: weights by record and slot, the listener's weights,
        each target group's targets and their states, which slots can serve."""
        prefix = f"{self.group}-"
        dns = {f"{name}/{rtype}": {i.removeprefix(prefix): int(r.get("Weight", 0))
                                   for i, r in sets.items() if i.startswith(prefix)}
               for (_, name, rtype), sets in self.aws.sets.items()}
        return {
            "dns": {k: v for k, v in dns.items() if v},
            "ttl": max((r.ttl for r in self.aws.records), default=0),
            "edge": {self.aws.slot_of_arn[a]: w for a, w in self.aws.listener.items()},
            "targets": {slot: self.aws.states(slot) for slot in self.aws.arns},
            "serving": {slot: self.can_serve(slot) for slot in (*self.slots, *self.half_built)},
            "slots": sorted({*self.slots, *self.half_built}),
        }

    @property
    def weights(self) -> dict[str, int]:
        """Slot -> weight in the group's first record (the test's usual question)."""
        first = self.aws.records[0]
        sets = self.aws.sets.get(self.aws.key(first.zone_name, first.fqdn, first.type), {})
        prefix = f"{self.group}-"
        return {i.removeprefix(prefix): int(r["Weight"]) for i, r in sets.items()
                if i.startswith(prefix)}

    @property
    def registered(self) -> dict[str, list[str]]:
        """Slot -> its targets at the edge (registered or draining)."""
        return {slot: sorted(states) for slot in self.aws.arns
                if (states := self.aws.states(slot))}

    def serving(self) -> str | None:
        live = [s for s, w in self.weights.items() if w > 0]
        return live[0] if len(live) == 1 else None

    def seed_live(self, slot: str, ami: str = "ami-00000001") -> None:
        self.slots[slot] = _outputs(slot, ami)
        self.healthy[slot] = True
        self.aws.seed(slot, self.slots[slot])


def _outputs(slot: str, ami: str) -> SlotOutputs:
    n = 1 if slot == "blue" else 2
    return SlotOutputs(
        marathon_url=f"http://marathon.{slot}:8080",
        elb_name=f"prd-cn-{slot}",
        elb_dns=f"prd-cn-{slot}.elb.example",
        instances={"proxy": [f"i-{slot}-p1", f"i-{slot}-p2"], "mesos-agent": [f"i-{slot}-a1"]},
        ami=ami,
        private_ips={"proxy": [f"10.{n}.0.11", f"10.{n}.0.12"], "mesos-agent": [f"10.{n}.0.21"]},
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
        def apply() -> SlotOutputs:
            self.w.slots[slot] = _outputs(slot, ami)
            self.w.healthy.setdefault(slot, True)
            return self.w.slots[slot]
        return self.w.effect("provision", apply, slot)

    def read_outputs(self, slot: str) -> SlotOutputs | None:
        if slot in self.w.half_built:
            raise OutputsIncomplete(f"{slot}: the group defines no output 'elb_name'")
        return self.w.slots.get(slot)

    def destroy(self, slot: str) -> None:
        self.w.hit("destroy")

        def apply() -> None:
            self.w.slots.pop(slot, None)
            self.w.healthy.pop(slot, None)
            self.w.half_built.discard(slot)
        self.w.effect("destroy", apply, slot)

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
        self.w.effect("deploy", lambda: self.w._pending.__setitem__(dep, self.w.deploy_ticks),
                      self._slot(marathon_url))
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
        def apply() -> None:
            for d in deployment_ids:
                self.w._pending.pop(d, None)
        self.w.effect("cancel", apply, list(deployment_ids))

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
            if record.get("kind", "rotation") == "rotation":
                self.world.saved(record)
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
