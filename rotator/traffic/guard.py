"""The traffic guard: refuses moves that would leave traffic without healthy capacity.

It runs inside the routers before every change and is called by the engine before
destroying a slot. There is no bypass: a refusal is final, whoever asked.

Rules:
- weight is only added to a slot whose own load balancer has InService instances and
  whose services are passing (``services_passing(slot)``; ``None`` = unknown = refuse);
- no weight on an edge target group without healthy targets;
- no deregistration from an edge target group that carries weight, and never the last
  healthy targets of the group's edge;
- a slot that still carries weight or has targets registered (or draining) is never
  destroyed, and its records are never deleted while they carry weight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rotator.errors import Refused
from rotator.ports import SlotOutputs, TrafficState
from rotator.traffic import elb_reads
from rotator.traffic.calls import AwsCalls

ServicesPassing = Callable[[str], "bool | None"]


class TrafficGuard:
    def __init__(
        self,
        elb: Any,
        services_passing: ServicesPassing | None = None,
        calls: AwsCalls | None = None,
    ):
        self.elb = elb
        self.services_passing = services_passing
        self.calls = calls or AwsCalls()

    def check_weight(self, slot: str, outputs: SlotOutputs | None, what: str = "") -> int:
        """Refuse to add weight to ``slot`` unless its instances and services are healthy;
        the number of its InService instances."""
        target = f"{what} on slot {slot!r}" if what else f"weight on slot {slot!r}"
        if outputs is None:
            raise Refused(f"traffic guard: refusing to put {target}: the slot has no outputs")
        self.check_services(slot, what or "weight")
        health = elb_reads.instance_health(self.calls, self.elb, outputs.elb_name)
        if not elb_reads.in_service(health):
            states = ", ".join(f"{i}={s}" for i, s in sorted(health.items())) or "none registered"
            raise Refused(
                f"traffic guard: refusing to put {target}: no InService instance in its ELB "
                f"{outputs.elb_name} ({states})"
            )
        return len(elb_reads.in_service(health))

    def check_services(self, slot: str, what: str = "weight") -> None:
        """Refuse unless ``services_passing(slot)`` says True (None = unknown = refuse)."""
        verdict = self.services_passing(slot) if self.services_passing else None
        if verdict is None:
            raise Refused(
                f"traffic guard: refusing to put {what} on slot {slot!r}: "
                "its services' health is unknown"
            )
        if verdict is not True:
            raise Refused(
                f"traffic guard: refusing to put {what} on slot {slot!r}: "
                "its services are not passing"
            )

    def check_edge_weight(self, edge: str, slot: str, state: Any) -> None:
        """Refuse weight on a slot's target group without healthy targets."""
        if not state.healthy(slot):
            listed = ", ".join(f"{t.ip}={t.state}" for t in state.targets.get(slot, []))
            raise Refused(
                f"traffic guard: refusing to put weight on slot {slot!r} in edge {edge}: its "
                f"target group has no healthy target ({listed or 'none registered'})"
            )

    def check_edge_deregister(self, edge: str, slot: str, state: Any) -> None:
        """Refuse to take targets out of a target group that carries weight, or the last
        healthy targets of the group's edge."""
        if state.weights.get(slot, 0) > 0:
            raise Refused(
                f"traffic guard: refusing to deregister slot {slot!r} from edge {edge}: its "
                f"target group carries weight {state.weights[slot]}"
            )
        others = [s for s in state.targets if s != slot]
        if state.healthy(slot) and not any(state.healthy(s) for s in others):
            raise Refused(
                f"traffic guard: refusing to deregister slot {slot!r} from edge {edge}: its "
                "targets are the last healthy ones of the group's edge"
            )

    def check_remove_records(self, slot: str, weights: dict[str, dict[str, int]]) -> None:
        """Refuse to delete a slot's records while any of them carries weight."""
        carrying = {key: w[slot] for key, w in weights.items() if w.get(slot, 0) > 0}
        if carrying:
            listed = ", ".join(f"{k}={v}" for k, v in sorted(carrying.items()))
            raise Refused(
                f"traffic guard: refusing to remove slot {slot!r}: its records carry weight ({listed})"
            )

    def check_destroy(self, slot: str, state: TrafficState) -> None:
        """Refuse to destroy a slot that still has weight, or targets registered or draining."""
        self.check_remove_records(slot, state.weights)
        weighted = {edge: w[slot] for edge, w in state.edge_weights.items() if w.get(slot, 0) > 0}
        if weighted:
            raise Refused(f"traffic guard: refusing to destroy slot {slot!r}: it carries weight "
                          f"on the edge ({weighted})")
        registered = {
            elb: ids[slot] for elb, ids in state.registrations.items() if ids.get(slot)
        }
        if registered:
            listed = "; ".join(f"{e}: {', '.join(i)}" for e, i in sorted(registered.items()))
            raise Refused(
                f"traffic guard: refusing to destroy slot {slot!r}: targets still registered "
                f"or draining ({listed})"
            )

    def check_quiet(self, slot: str, load: Any, rules: Any) -> None:
        """Refuse to destroy a slot whose load balancers served requests within the quiet
        window (the operator may override it by name: ``rotate resume --override-quiet``)."""
        if load is None:
            raise Refused(f"traffic guard: refusing to destroy slot {slot!r}: its request "
                          "counts cannot be read")
        if load.requests > rules.max_requests:
            raise Refused(
                f"traffic guard: refusing to destroy slot {slot!r}: its load balancers served "
                f"{load.requests:.0f} requests in the last {rules.quiet_for:.0f}s (override: "
                f"`rotate resume GROUP --override-quiet {slot}`)"
            )
