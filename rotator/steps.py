"""Step logic: what each kind of step does and how it knows it is finished.

A step is an idempotent action (run once, re-run after a crash that hit it
mid-way) plus a check that the engine calls until it reports done, failed or
waiting. Steps never sleep or loop: the engine owns time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rotator.analysis import judge
from rotator.apps.slot_identity import slot_tag, with_slot_identity
from rotator.config import GateConfig, GateStep, GroupConfig, Policy
from rotator.errors import StepFailed
from rotator.model import RotationRecord, StepState
from rotator.ports import (
    AppDeployer,
    GateSpec,
    GateWatch,
    HealthSource,
    Infrastructure,
    Metrics,
    OutputsIncomplete,
    ServiceRequirement,
    SlotLoad,
    SlotOutputs,
    TrafficRouter,
    TrafficState,
    Verdict,
)


@dataclass(frozen=True)
class Progress:
    state: str  # "running" | "done" | "failed" | "waiting"
    reason: str = ""
    # running, and the check blocks until something changes: it may be asked again at once
    recheck: bool = False

    @classmethod
    def running(cls, reason: str = "", *, recheck: bool = False) -> Progress:
        return cls("running", reason, recheck)

    @classmethod
    def done(cls, reason: str = "") -> Progress:
        return cls("done", reason)

    @classmethod
    def failed(cls, reason: str) -> Progress:
        return cls("failed", reason)


def service_name(group: GroupConfig, app: dict[str, Any]) -> str:
    """The Consul service an app registers as: its own SERVICE_NAME (registrator's
    convention, environment or label), else the group's ``consul.service_name``."""
    given = (app.get("env") or {}).get("SERVICE_NAME") or (app.get("labels") or {}).get(
        "SERVICE_NAME")
    if given:
        return given
    path = app["id"].strip("/")
    return group.consul.service_name.format(name=path.rsplit("/", 1)[-1], path=path.replace("/", "-"))


def requirements(group: GroupConfig, apps: list[dict[str, Any]], slot: str,
                 gate: GateConfig) -> list[ServiceRequirement]:
    ratio = gate.consul.min_passing_ratio if gate.consul else 1.0
    out = []
    for app in apps:
        wanted = int(app.get("instances", 1))
        if wanted <= 0:
            continue
        out.append(ServiceRequirement(
            service=service_name(group, app),
            required=max(1, math.ceil(wanted * ratio)),
            tag=slot_tag(group.name, slot),
        ))
    return out


def gate_spec(gate: GateConfig) -> GateSpec:
    return GateSpec(
        consecutive_successes=gate.consecutive_successes,
        failure_threshold=gate.failure_threshold,
        no_data_seconds=gate.no_data,
    )


@dataclass
class StepContext:
    group: GroupConfig
    policy: Policy
    record: RotationRecord
    infra: Infrastructure
    apps: AppDeployer
    health: HealthSource
    traffic: TrafficRouter
    app_definitions: list[dict[str, Any]]
    clock: Any
    guard: Any  # rotator.traffic.guard.TrafficGuard: check_destroy(slot, state)
    interactive: bool = False
    save: Callable[[], None] = lambda: None  # writes the record (the engine's)
    metrics: Metrics | None = None  # what the slots' load balancers served (CloudWatch)
    metrics_delay: float = 0.0  # how long after a period ends its data point is published
    # live health watches, keyed by purpose; rebuilt after a restart
    watches: dict[str, GateWatch] = field(default_factory=dict)

    def journal(self, state: StepState) -> StepJournal:
        return StepJournal(state, self.save, self.clock)

    # -- helpers shared by steps
    def outputs(self, slot: str) -> SlotOutputs:
        data = self.record.slots.get(slot)
        if data is None:
            found = self.infra.read_outputs(slot)
            if found is None:
                raise StepFailed(f"slot {slot} has no resources (nothing provisioned)")
            self.record.slots[slot] = found.to_dict()
            return found
        return SlotOutputs.from_dict(data)

    def live_slots(self) -> dict[str, SlotOutputs]:
        return {s: self.outputs(s) for s in self.record.slots}

    def watch(self, key: str, gate: GateConfig) -> GateWatch | None:
        if gate.consul is None:
            return None
        if key not in self.watches:
            slot = self.record.candidate
            reqs = requirements(self.group, self.app_definitions, slot, gate)
            self.watches[key] = self.health.watch(reqs, gate_spec(gate))
        return self.watches[key]

    def close_watches(self) -> None:
        for w in self.watches.values():
            w.close()
        self.watches.clear()

    def marathon_unhealthy(self, slot: str) -> list[str]:
        url = self.outputs(slot).marathon_url
        ids = [a["id"] for a in self.app_definitions]
        return [h.app_id for h in self.apps.health(url, ids) if not h.ok]

    # -- metrics -------------------------------------------------------------------------

    def carries_traffic(self) -> bool:
        """The candidate serves part of the traffic beside a stable slot: there is something
        to analyse (before its first shift there is not)."""
        return (self.metrics is not None and self.record.stable is not None
                and self.record.weights.get(self.record.candidate, 0) > 0)

    def published_until(self) -> float:
        """The end of the last period whose data point CloudWatch has (whole periods)."""
        period = self.metrics.period if self.metrics else 60.0
        return math.floor((self.clock() - self.metrics_delay) / period) * period

    def until_next_period(self, gate: GateConfig) -> float:
        """Seconds until CloudWatch publishes the next period the analysis would judge
        (infinite when there is nothing to analyse): waits end there, not a poll later."""
        if gate.metrics is None or not self.carries_traffic():
            return math.inf
        next_published = self.published_until() + self.metrics.period + self.metrics_delay
        return max(0.0, next_published + 0.01 - self.clock())  # just past it: whole floats

    def load(self, slot: str, start: float, end: float) -> SlotLoad | None:
        if self.metrics is None or slot not in self.record.slots:
            return None
        return self.metrics.load(slot, self.outputs(slot), start, end)

    def analyse(self, gate: GateConfig) -> Progress | None:
        """Canary analysis, evaluated once per newly published period while the candidate
        carries traffic; Progress.failed once ``failure_limit`` evaluations in a row failed,
        None otherwise (the verdicts are in ``record.analysis``)."""
        rules = gate.metrics
        if rules is None or not self.carries_traffic():
            return None
        state = self.record.analysis
        end = self.published_until()
        if end <= state.get("evaluated_until", 0.0):
            return self._analysis_progress(rules)
        start = end - rules.window
        evaluation = judge(rules, self.load(self.record.candidate, start, end),
                           self.load(self.record.stable, start, end),
                           at=self.clock(), window=(start, end))
        if evaluation.verdict is Verdict.FAILED:
            state["failures"] = state.get("failures", 0) + 1
        elif evaluation.verdict is Verdict.SUCCESSFUL:
            state["failures"] = 0
        state["evaluated_until"] = end
        state["last"] = evaluation.to_dict()
        state.setdefault("history", []).append(state["last"])
        del state["history"][:-50]
        self.record.note(self.clock(), f"metrics {evaluation.verdict.value}: "
                                       f"{evaluation.summary()}")
        return self._analysis_progress(rules)

    def _analysis_progress(self, rules: Any) -> Progress | None:
        state = self.record.analysis
        if state.get("failures", 0) >= rules.failure_limit:
            return Progress.failed("metric analysis failed: " + "; ".join(
                state.get("last", {}).get("failures", [])))
        return None

    def judge_wait(self, gate: GateConfig, since: float) -> Progress | None:
        """The metrics of a whole wait nobody watched; Progress.failed naming the failing
        metric, None when it passed (or there is nothing to judge)."""
        rules = gate.metrics
        if rules is None or self.metrics is None or self.record.stable is None:
            return None
        end = self.published_until()
        evaluation = judge(rules, self.load(self.record.candidate, since, end),
                           self.load(self.record.stable, since, end),
                           at=self.clock(), window=(since, end))
        self.record.analysis["unwatched"] = evaluation.to_dict()
        if evaluation.verdict is Verdict.FAILED:
            return Progress.failed("metric analysis of the wait nobody watched failed: "
                                   + evaluation.summary())
        return None


class StepJournal:
    """A step's DNS changes, kept in its params and written with the record before they are
    waited for: a process killed while waiting leaves their ids for the next one to wait on."""

    def __init__(self, state: StepState, save: Callable[[], None], clock: Callable[[], float]):
        self.state, self.save, self.clock = state, save, clock

    def pending(self) -> list[str]:
        return list(self.state.params.get("changes", []))

    def submitted(self, change_ids: list[str]) -> None:
        self.state.params["changes"] = list(dict.fromkeys([*self.pending(), *change_ids]))
        self.save()

    def in_sync(self) -> None:
        self.state.params["changes"] = []
        self.state.params["insync_at"] = self.clock()
        self.save()


class Step:
    kind = ""
    poll_interval = 2.0
    phase = ""

    def timeout(self, ctx: StepContext, state: StepState) -> float:
        return float(getattr(ctx.policy.deadlines, self.phase, 600.0))

    def act(self, ctx: StepContext, state: StepState) -> None:
        """The side effect; idempotent."""

    def check(self, ctx: StepContext, state: StepState, wait: float) -> Progress:
        return Progress.done()

    def on_deadline(self, ctx: StepContext, state: StepState) -> str:
        """Clean up after a missed deadline; return what to tell the user."""
        return f"{state.name}: deadline passed"


class Provision(Step):
    kind, phase = "provision", "provision"

    def act(self, ctx, state):
        out = ctx.infra.provision(state.params["slot"], ctx.record.ami)
        ctx.record.slots[state.params["slot"]] = out.to_dict()


class Deploy(Step):
    kind, phase = "deploy", "deploy"
    poll_interval = 1.0

    def act(self, ctx, state):
        slot = state.params["slot"]
        url = ctx.outputs(slot).marathon_url
        tag = slot_tag(ctx.group.name, slot)
        apps = [with_slot_identity(a, service=service_name(ctx.group, a), tag=tag,
                                   tagging=ctx.group.consul.tagging)
                for a in ctx.app_definitions]
        ctx.record.deployment_ids = ctx.apps.start(url, apps)
        # Start following Consul while Marathon deploys: verify then judges at once.
        ctx.watch("verify", ctx.policy.gate)

    def check(self, ctx, state, wait):
        url = ctx.outputs(state.params["slot"]).marathon_url
        pending = ctx.apps.pending(url, ctx.record.deployment_ids, wait)
        if pending:
            return Progress.running(f"{len(pending)} deployment(s) in progress")
        unhealthy = ctx.marathon_unhealthy(state.params["slot"])
        if unhealthy:
            return Progress.running("waiting for healthy tasks: " + ", ".join(unhealthy))
        return Progress.done(f"{len(ctx.app_definitions)} app(s) running")

    def on_deadline(self, ctx, state):
        url = ctx.outputs(state.params["slot"]).marathon_url
        pending = ctx.apps.pending(url, ctx.record.deployment_ids, 0)
        if pending:
            ctx.apps.cancel(url, pending)
        unhealthy = ctx.marathon_unhealthy(state.params["slot"])
        return ("deploy deadline passed; deployments cancelled; never healthy: "
                + (", ".join(unhealthy) or "-"))


def _gate_progress(ctx: StepContext, key: str, gate: GateConfig, wait: float) -> Progress:
    watch = ctx.watch(key, gate)
    if watch is not None:
        result = watch.poll(wait)
        if result.verdict is Verdict.FAILED:
            return Progress.failed(f"health gate failed: {result.reason}")
        if result.verdict is not Verdict.SUCCESSFUL:
            # a watch's poll returns early only on a change, so asking again cannot spin
            return Progress.running(f"{result.verdict.value}: {result.reason}", recheck=True)
    if gate.marathon is not None and gate.marathon.require_healthy:
        unhealthy = ctx.marathon_unhealthy(ctx.record.candidate)
        if unhealthy:
            return Progress.running("Marathon tasks not healthy: " + ", ".join(unhealthy))
    if gate.elb is not None:
        # the records point at the slot's own load balancer: its health checks must pass
        # (HealthyThreshold x Interval after the apps) before weight can go there
        outputs = ctx.outputs(ctx.record.candidate)
        healthy, registered = ctx.traffic.in_service(outputs)
        needed = max(1, math.ceil(registered * gate.elb.min_in_service_ratio))
        if healthy < needed:
            return Progress.running(f"{outputs.elb_name}: {healthy}/{registered} instances "
                                    "InService")
    if gate.metrics is not None and ctx.carries_traffic():
        failed = ctx.analyse(gate)
        if failed is not None:
            return failed
        last = ctx.record.analysis.get("last") or {}
        if last.get("verdict") != Verdict.SUCCESSFUL.value:
            return Progress.running(f"metric analysis {last.get('verdict', 'pending')}: "
                                    f"{last.get('reason') or 'waiting for the next period'}")
    return Progress.done("healthy")


class Verify(Step):
    kind, phase = "verify", "verify"
    poll_interval = 1.0

    def check(self, ctx, state, wait):
        return _gate_progress(ctx, "verify", ctx.policy.gate, wait)

    def on_deadline(self, ctx, state):
        return f"{state.name}: still not healthy at the deadline"


def _weights(ctx: StepContext, candidate_weight: int) -> dict[str, int]:
    stable = ctx.record.stable
    out = {ctx.record.candidate: candidate_weight}
    if stable is not None:
        out[stable] = 100 - candidate_weight
    return out


def world_weights(state: TrafficState) -> dict[str, int] | None:
    """Per-slot share now (slots at 0 left out), or None when the records, or the records
    and the edge listener, disagree."""
    layers = [*state.weights.values(), *state.edge_weights.values()]
    seen = {tuple(sorted((s, w) for s, w in ws.items() if w)) for ws in layers}
    if len(seen) > 1:
        return None
    return dict(seen.pop()) if seen else {}


def _set_weights(ctx: StepContext, state: StepState, target: dict[str, int]) -> None:
    journal = ctx.journal(state)
    now = ctx.traffic.read()
    # an attempt before this one may have changed the world, then died before noting it
    resumed = state.attempts > 1
    world = world_weights(now)
    if (world and world == {k: v for k, v in target.items() if v} and not journal.pending()
            and not resumed):
        ctx.record.weights = target
        return
    # After a crash between the change and the record's update, the world may
    # already hold the last intended weights: that is not a hand edit.
    expected = ctx.record.weights or None
    leaving = [s for s, w in target.items() if w == 0 and (
        now.slot_weight(s) > 0 or (expected or {}).get(s, 0) > 0)]
    ctx.traffic.set_weights(target, ctx.live_slots(), expected=expected, journal=journal,
                            fence=resumed)
    note_unweighted(ctx, state, now, leaving)
    ctx.record.weights = target


def note_unweighted(ctx: StepContext, state: StepState, before: TrafficState,
                    slots: list[str]) -> None:
    """For slots this change took to weight 0: until when a client may still hold a cached
    answer leading to them, counted from the change going INSYNC with the largest TTL their
    records had (what clients cached) or have now."""
    at = state.params.get("insync_at") or ctx.clock()
    ttl = max([*before.ttls.values(), *(r.ttl for r in ctx.group.traffic.records)], default=0)
    for slot in slots:
        ctx.record.cached_until[slot] = at + ttl


class Shift(Step):
    kind, phase = "shift", "shift"
    poll_interval = 1.0

    def act(self, ctx, state):
        _set_weights(ctx, state, _weights(ctx, state.params["weight"]))

    def check(self, ctx, state, wait):
        target = _weights(ctx, state.params["weight"])
        if not ctx.traffic.settled(target, ctx.live_slots(), wait):
            return Progress.running("waiting for DNS sync and InService instances")
        return Progress.done(f"{ctx.record.candidate} carries {state.params['weight']}%")


class Pause(Step):
    kind, phase = "pause", "shift"
    poll_interval = 1.0

    def timeout(self, ctx, state):
        return float(state.params["seconds"]) + float(ctx.policy.deadlines.shift)

    def check(self, ctx, state, wait):
        left = state.started_at + float(state.params["seconds"]) - ctx.clock()
        if left <= 0:
            return Progress.done()
        return Progress.running(f"{left:.0f}s left")


class Bake(Pause):
    kind, phase = "bake", "bake"

    def timeout(self, ctx, state):
        return float(state.params["seconds"]) + 600.0


class Gate(Step):
    kind, phase = "gate", "shift"
    poll_interval = 1.0

    @staticmethod
    def config(ctx: StepContext, state: StepState) -> GateConfig:
        """The policy's gate this step runs (the policy is unchanged since the plan: a resume
        refuses an edited one); a record older than ``gate_no`` numbers it in the name."""
        number = state.params.get("gate_no") or int(state.name.rsplit(" ", 1)[-1])
        return [s.gate for s in ctx.policy.steps if isinstance(s, GateStep)][number - 1]

    def timeout(self, ctx, state):
        gate = self.config(ctx, state)
        return gate.timeout or float(ctx.policy.deadlines.shift) + gate.duration

    def check(self, ctx, state, wait):
        gate = self.config(ctx, state)
        progress = _gate_progress(ctx, f"gate:{state.name}", gate, wait)
        if progress.state != "done":
            state.params.pop("healthy_since", None)
            return progress
        since = state.params.setdefault("healthy_since", ctx.clock())
        held = ctx.clock() - since
        if held < gate.duration:
            return Progress.running(f"healthy for {held:.0f}s of {gate.duration:.0f}s")
        return Progress.done("healthy")


class Approve(Step):
    kind, phase = "approve", "shift"
    poll_interval = 1.0

    def timeout(self, ctx, state):
        return math.inf  # an approval waits for a human, however long

    def check(self, ctx, state, wait):
        approved = state.params.get("approved")
        if approved:
            if ctx.record.unwatched_since is not None:
                # nobody judged while the approval waited: judge the whole wait now, before
                # any weight moves on
                failed = ctx.judge_wait(ctx.policy.gate, ctx.record.unwatched_since)
                ctx.record.unwatched_since = None
                if failed is not None:
                    return failed
            return Progress.done(f"promoted by {approved.get('by')} ({approved.get('via')})")
        return Progress("waiting", "waiting for `rotate promote " + ctx.group.name + "`")


class RetireTraffic(Step):
    kind, phase = "retire-traffic", "retire"

    def act(self, ctx, state):
        slot = state.params["slot"]
        try:
            out = ctx.outputs(slot) if slot in ctx.record.slots else ctx.infra.read_outputs(slot)
        except OutputsIncomplete:
            # a half-built slot (its apply failed): its records are found by their set
            # identifier and its instances by their slot tag
            out = None
        drain = ctx.traffic.remove_slot(slot, out, journal=ctx.journal(state))
        state.params["drain_until"] = ctx.clock() + drain

    def check(self, ctx, state, wait):
        left = state.params.get("drain_until", 0) - ctx.clock()
        if left > 0:
            return Progress.running(f"connection draining, {left:.0f}s left")
        return Progress.done()


def quiet_overridden(ctx: StepContext, slot: str) -> dict[str, Any] | None:
    """The operator request, if any, to destroy ``slot`` without waiting for it to be quiet."""
    for action in ctx.record.operator_actions:
        if action.get("action") == "override-quiet" and action.get("step") == slot:
            return action
    return None


class Quiet(Step):
    """Wait until nothing reaches the slot any more, observed: its weight is 0 on every
    layer, the records' largest TTL has passed since that was INSYNC (clients cache their
    answers), its edge targets have drained, and its load balancers' RequestCount stayed at
    or below ``retire.max_requests`` for ``retire.quiet_for``."""

    kind, phase = "retire-quiet", "retire"
    poll_interval = 2.0

    def timeout(self, ctx, state):
        return float(ctx.policy.retire.max_wait) + 60.0

    def check(self, ctx, state, wait):
        slot, rules, now = state.params["slot"], ctx.policy.retire, ctx.clock()
        override = quiet_overridden(ctx, slot)
        if override is not None:
            return Progress.done(f"not waited for: {override.get('by')} overrode it")
        if slot not in ctx.record.cached_until:
            return Progress.done(f"{slot} never carried traffic")
        cached_until = ctx.record.cached_until[slot]
        busy = self._busy(ctx, slot, rules, cached_until, now)
        if busy is None:
            return Progress.done(f"{slot} quiet: at most {rules.max_requests} requests in "
                                 f"{rules.quiet_for:.0f}s once cached answers expired")
        if now - state.started_at >= rules.max_wait:
            if rules.then == "destroy":
                return Progress.done(f"not quiet after {rules.max_wait:.0f}s ({busy}): "
                                     "destroying anyway (retire.then: destroy)")
            return Progress.failed(f"{slot} not quiet after {rules.max_wait:.0f}s: {busy}")
        return Progress.running(busy)

    @staticmethod
    def _busy(ctx: StepContext, slot: str, rules: Any, cached_until: float,
              now: float) -> str | None:
        """What the slot still waits for; None once it is quiet."""
        if now < cached_until:
            return f"cached DNS answers may still lead to {slot}: {cached_until - now:.0f}s left"
        if not ctx.traffic.drained(slot):
            return f"{slot}'s edge targets are draining"
        if ctx.metrics is None:
            return None
        end = ctx.published_until()
        start = end - rules.quiet_for
        if start < cached_until:
            return (f"watching {slot}'s requests: {max(0.0, end - cached_until):.0f}s of a "
                    f"{rules.quiet_for:.0f}s quiet window")
        load = ctx.load(slot, start, end)
        if load is None:
            return f"{slot}'s request counts cannot be read"
        if load.requests > rules.max_requests:
            return (f"{slot} still served {load.requests:.0f} requests in the last "
                    f"{rules.quiet_for:.0f}s")
        return None


class Destroy(Step):
    kind, phase = "retire-destroy", "retire"

    def act(self, ctx, state):
        slot = state.params["slot"]
        ctx.guard.check_destroy(slot, ctx.traffic.read())
        rules = ctx.policy.retire
        if ctx.metrics is not None and quiet_overridden(ctx, slot) is None:
            end = ctx.published_until()
            ctx.guard.check_quiet(slot, ctx.load(slot, end - rules.quiet_for, end), rules)
        ctx.infra.destroy(slot)
        ctx.record.slots.pop(slot, None)


class RollbackWeights(Step):
    kind, phase = "rollback-weights", "rollback"
    poll_interval = 1.0

    def act(self, ctx, state):
        target = {state.params["slot"]: 100, ctx.record.candidate: 0}
        world = ctx.traffic.read()
        # an attempt before this one may have moved the weights, then died before noting it
        resumed = state.attempts > 1
        if (world.slot_weight(ctx.record.candidate) == 0 and not ctx.record.weights.get(
                ctx.record.candidate) and not ctx.journal(state).pending() and not resumed):
            ctx.record.weights = target
            return  # the candidate never carried traffic, on any layer
        ctx.record.weights = {}  # whatever the world holds, put it back on stable
        ctx.traffic.set_weights(target, ctx.live_slots(), expected=None,
                                journal=ctx.journal(state), fence=resumed)
        # it carried weight, or may have (a crash after the change): clients may hold it
        note_unweighted(ctx, state, world, [ctx.record.candidate])
        ctx.record.weights = target

    def check(self, ctx, state, wait):
        target = {state.params["slot"]: 100, ctx.record.candidate: 0}
        if not ctx.traffic.settled(target, ctx.live_slots(), wait):
            return Progress.running("waiting for the stable slot to carry all traffic")
        world = world_weights(ctx.traffic.read())
        if world is None or world.get(ctx.record.candidate, 0) != 0:
            return Progress.failed(f"weights read back {world}, expected {target}")
        return Progress.done(f"{state.params['slot']} carries 100%")


class RollbackTraffic(RetireTraffic):
    kind, phase = "rollback-traffic", "rollback"


class RollbackQuiet(Quiet):
    kind, phase = "rollback-quiet", "rollback"


class RollbackDestroy(Destroy):
    kind, phase = "rollback-destroy", "rollback"


class RollbackKeep(Step):
    kind, phase = "rollback-keep", "rollback"


STEPS: dict[str, Step] = {
    s.kind: s
    for s in (Provision(), Deploy(), Verify(), Shift(), Pause(), Bake(), Gate(), Approve(),
              RetireTraffic(), Quiet(), Destroy(), RollbackWeights(), RollbackTraffic(),
              RollbackQuiet(), RollbackDestroy(), RollbackKeep())
}

# Steps during which the candidate's health keeps being watched: a service
# turning critical then triggers the policy's failure action.
WATCHED_KINDS = {"shift", "pause", "gate", "approve", "bake"}
