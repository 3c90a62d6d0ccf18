"""The edge: an Application Load Balancer whose listener splits traffic between one target
group per slot, by weight, exactly, per request (no DNS caching involved).

Facts (ELBv2 API reference):
- RegisterTargets, target type ``ip``: an address outside the target group's VPC (a
  peered slot VPC) needs ``AvailabilityZone``; ``all`` makes it receive traffic from every
  enabled zone. A new target is ``initial`` until it passes its health checks.
- ForwardConfig.TargetGroups[].Weight is 0-999; traffic splits by relative weight. rotator
  writes its integer percentages unchanged: 5 % is weight 5 of 100.
- ModifyListener replaces the whole DefaultActions list: the forward action is sent whole,
  with every target group of the listener (a pair's peer keeps its weight).
- DeregisterTargets: the target is ``draining`` for the deregistration delay, in-flight
  requests finish, then it is gone ("If the specified target does not exist, the action
  returns successfully").

One step: register the slots that gain weight, wait until they are healthy, then one
ModifyListener per listener, read back and verify. Retiring a slot: its weight is 0,
deregister its targets, wait out the draining.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rotator.errors import Refused, StepFailed
from rotator.ports import SlotOutputs
from rotator.traffic.calls import AwsCalls
from rotator.traffic.spec import EdgeSpec

HEALTHY = "healthy"
GONE = ("unused",)  # a target no longer registered


@dataclass(frozen=True)
class Target:
    ip: str
    state: str
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"ip": self.ip, "state": self.state}


@dataclass(frozen=True)
class EdgeState:
    weights: dict[str, int]  # slot -> weight on the listener
    targets: dict[str, list[Target]]  # slot -> its target group's registered targets
    others: dict[str, int]  # target group ARN -> weight, of target groups that are not ours

    def healthy(self, slot: str) -> list[str]:
        return [t.ip for t in self.targets.get(slot, []) if t.state == HEALTHY]

    def registered(self, slot: str) -> list[str]:
        return [t.ip for t in self.targets.get(slot, []) if t.state not in GONE]


class EdgeRouter:
    """A ``TrafficRouter`` for the edge half of a group's traffic."""

    def __init__(
        self,
        group: str,
        spec: EdgeSpec,
        elbv2: Any,
        *,
        guard: Any | None = None,
        calls: AwsCalls | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        healthy_timeout: float = 300.0,
        poll_interval: float = 5.0,
    ):
        self.group = group
        self.spec = spec
        self.elbv2 = elbv2
        self.guard = guard
        self.calls = calls or AwsCalls(sleep=sleep)
        self.clock = clock
        self.sleep = sleep
        self.healthy_timeout = healthy_timeout
        self.poll_interval = poll_interval
        self._listener: str | None = None
        self._balancer: str | None = None
        self._groups: dict[str, str] = {}  # slot -> target group ARN

    # -- where things are -----------------------------------------------------------

    def balancer_arn(self) -> str:
        if self._balancer is None:
            self._balancer = self.calls(self.elbv2, "describe_load_balancers", Names=[
                self.spec.load_balancer])["LoadBalancers"][0]["LoadBalancerArn"]
        return self._balancer

    def metric_dimensions(self, slot: str) -> dict[str, str]:
        """CloudWatch's dimensions of the slot's target group: the final parts of the ARNs
        (``app/<name>/<id>``, ``targetgroup/<name>/<id>``)."""
        return {"LoadBalancer": self.balancer_arn().split(":loadbalancer/", 1)[1],
                "TargetGroup": self.target_group_arns()[slot].rsplit(":", 1)[1]}

    def listener_arn(self) -> str:
        if self._listener is None:
            listeners = self.calls(self.elbv2, "describe_listeners",
                                   LoadBalancerArn=self.balancer_arn())["Listeners"]
            found = [ln for ln in listeners if ln["Port"] == self.spec.port]
            if not found:
                raise StepFailed(f"edge {self.spec.load_balancer} has no listener on port "
                                 f"{self.spec.port}")
            self._listener = found[0]["ListenerArn"]
        return self._listener

    def target_group_arns(self) -> dict[str, str]:
        if not self._groups:
            names = list(self.spec.target_groups.values())
            found = self.calls(self.elbv2, "describe_target_groups", Names=names)["TargetGroups"]
            by_name = {tg["TargetGroupName"]: tg["TargetGroupArn"] for tg in found}
            self._groups = {slot: by_name[name] for slot, name in self.spec.target_groups.items()}
        return self._groups

    # -- reading ----------------------------------------------------------------------

    def _forward(self) -> dict[str, Any]:
        listener = self.calls(self.elbv2, "describe_listeners",
                              ListenerArns=[self.listener_arn()])["Listeners"][0]
        actions = [a for a in listener.get("DefaultActions", []) if a["Type"] == "forward"]
        if not actions:
            raise StepFailed(f"the listener of edge {self.spec.load_balancer} does not forward")
        action = actions[0]
        config = action.get("ForwardConfig") or {
            "TargetGroups": [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}]}
        return config

    def targets(self, slot: str) -> list[Target]:
        answer = self.calls(self.elbv2, "describe_target_health",
                            TargetGroupArn=self.target_group_arns()[slot])
        return sorted(
            (Target(d["Target"]["Id"], d["TargetHealth"]["State"],
                    d["TargetHealth"].get("Reason", ""))
             for d in answer["TargetHealthDescriptions"]),
            key=lambda t: t.ip)

    def read(self) -> EdgeState:
        arns = self.target_group_arns()
        slot_of = {arn: slot for slot, arn in arns.items()}
        weights: dict[str, int] = dict.fromkeys(arns, 0)
        others: dict[str, int] = {}
        for tg in self._forward()["TargetGroups"]:
            slot = slot_of.get(tg["TargetGroupArn"])
            if slot is None:
                others[tg["TargetGroupArn"]] = int(tg.get("Weight", 0))
            else:
                weights[slot] = int(tg.get("Weight", 0))
        return EdgeState(weights, {slot: self.targets(slot) for slot in arns}, others)

    # -- changing ---------------------------------------------------------------------

    def register_phase(self, weights: dict[str, int], slots: dict[str, SlotOutputs], *,
                       checked: frozenset[str] = frozenset()) -> bool:
        """Register the proxies of every slot that is to carry weight, then wait until they
        are healthy; True when that took a wait (a guard's verdict may have gone stale).

        ``checked``: slots the caller has just passed through the traffic guard."""
        waiting: dict[str, set[str]] = {}
        for slot, weight in sorted(weights.items()):
            if weight <= 0:
                continue
            wanted = set(self._addresses(slot, slots))
            registered = set(self.state_of(slot).registered(slot))
            adding = wanted - registered
            if adding:
                if slot not in checked:
                    self._guard().check_services(slot, f"targets in edge {self.spec.load_balancer}")
                self.calls(self.elbv2, "register_targets",
                           TargetGroupArn=self.target_group_arns()[slot],
                           Targets=[{"Id": ip, "Port": self.spec.port, "AvailabilityZone": "all"}
                                    for ip in sorted(adding)])
            waiting[slot] = wanted
        return self.wait_healthy(waiting)

    def state_of(self, slot: str) -> EdgeState:
        return EdgeState({}, {slot: self.targets(slot)}, {})

    def _addresses(self, slot: str, slots: dict[str, SlotOutputs]) -> list[str]:
        outputs = slots.get(slot)
        ips = outputs.private_ips.get(self.spec.role, []) if outputs else []
        if not ips:
            raise StepFailed(f"slot {slot} has no {self.spec.role} addresses to register in "
                             f"edge {self.spec.load_balancer} (Terraform output private_ips)")
        return ips

    def wait_healthy(self, waiting: dict[str, set[str]]) -> bool:
        """Until every listed target is healthy; True when that took a wait."""
        deadline = self.clock() + self.healthy_timeout
        waited = False
        while True:
            lagging = {}
            for slot, ips in waiting.items():
                states = {t.ip: t for t in self.targets(slot)}
                bad = {ip: states[ip].state if ip in states else "not registered"
                       for ip in ips if ip not in states or states[ip].state != HEALTHY}
                if bad:
                    lagging[slot] = bad
            if not lagging:
                return waited
            if self.clock() >= deadline:
                listed = "; ".join(f"{slot}: " + ", ".join(f"{i}={s}" for i, s in sorted(b.items()))
                                   for slot, b in sorted(lagging.items()))
                raise StepFailed(f"edge targets not healthy after {self.healthy_timeout:.0f} s "
                                 f"({listed}); no weight was moved")
            self.sleep(min(self.poll_interval, max(0.0, deadline - self.clock())))
            waited = True

    def set_weights(self, weights: dict[str, int], *, exclusive: bool = False) -> None:
        """One ModifyListener giving our target groups ``weights`` (every other target group
        of the listener keeps its weight, or gets 0 when ``exclusive``); read back."""
        arns = self.target_group_arns()
        current = self.read()
        for slot, weight in weights.items():
            if weight > 0 and current.weights.get(slot, 0) < weight:
                self._guard().check_edge_weight(self.spec.load_balancer, slot, current)
        wanted = {arns[slot]: weights.get(slot, 0) for slot in arns}
        wanted.update({arn: 0 if exclusive else w for arn, w in current.others.items()})
        now = {arns[s]: w for s, w in current.weights.items()} | current.others
        if now == wanted:
            return  # already so (a step resumed after its change)
        forward = self._forward()
        forward["TargetGroups"] = [{"TargetGroupArn": arn, "Weight": w}
                                   for arn, w in sorted(wanted.items())]
        self.calls(self.elbv2, "modify_listener", ListenerArn=self.listener_arn(),
                   DefaultActions=[{"Type": "forward", "ForwardConfig": forward}])
        after = self.read()
        seen = {arns[s]: w for s, w in after.weights.items()} | after.others
        if seen != wanted:
            raise StepFailed(f"edge {self.spec.load_balancer}: weights read back "
                             f"{after.weights}, wanted {weights}")

    def settled(self, weights: dict[str, int]) -> bool:
        state = self.read()
        return all(state.weights.get(s, 0) == w for s, w in weights.items()) and all(
            state.healthy(s) for s, w in weights.items() if w > 0)

    def remove_slot(self, slot: str) -> float:
        """Deregister the slot's targets (refused while its target group carries weight);
        the seconds of draining before they are gone."""
        state = self.read()
        self._guard().check_edge_deregister(self.spec.load_balancer, slot, state)
        registered = state.registered(slot)
        if registered:
            self.calls(self.elbv2, "deregister_targets",
                       TargetGroupArn=self.target_group_arns()[slot],
                       Targets=[{"Id": ip, "Port": self.spec.port} for ip in registered])
        return self.deregistration_delay(slot)

    def deregistration_delay(self, slot: str) -> float:
        answer = self.calls(self.elbv2, "describe_target_group_attributes",
                            TargetGroupArn=self.target_group_arns()[slot])
        values = {a["Key"]: a["Value"] for a in answer["Attributes"]}
        return float(values.get("deregistration_delay.timeout_seconds", 300))

    def drained(self, slot: str) -> bool:
        """No target of the slot is registered or draining any more."""
        return not self.state_of(slot).registered(slot)

    def _guard(self) -> Any:
        if self.guard is None:
            raise Refused("no traffic guard configured: refusing to touch the edge")
        return self.guard
