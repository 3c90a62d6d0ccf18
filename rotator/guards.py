"""The traffic guard: refuses moves that would leave traffic without healthy capacity.

It runs inside the routers before every change and is called by the engine
before destroying a slot. There is no bypass: a refusal is final, whoever
asked (exit code 3).

Rules:
- weight is only added to a slot whose ELB has InService instances and whose
  services are passing (``services_passing(slot)``; ``None`` = unknown = refuse);
- the last InService instances of an ELB are never deregistered;
- a slot that still carries weight or registrations is never destroyed, and
  its records are never deleted while they carry weight.
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

    def check_weight(self, slot: str, outputs: SlotOutputs | None, what: str = "") -> None:
        """Refuse to add weight to ``slot`` unless its instances and services are healthy."""
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

    def check_deregister(self, elb_name: str, health: dict[str, str], removing: set[str]) -> None:
        """Refuse to deregister instances when that would leave the ELB without InService ones."""
        healthy = elb_reads.in_service(health)
        if healthy & removing and not healthy - removing:
            raise Refused(
                f"traffic guard: refusing to deregister {', '.join(sorted(healthy & removing))} "
                f"from {elb_name}: they are its last InService instances"
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
        """Refuse to destroy a slot that still has weight or ELB registrations."""
        self.check_remove_records(slot, state.weights)
        registered = {
            elb: ids[slot] for elb, ids in state.registrations.items() if ids.get(slot)
        }
        if registered:
            listed = "; ".join(f"{e}: {', '.join(i)}" for e, i in sorted(registered.items()))
            raise Refused(
                f"traffic guard: refusing to destroy slot {slot!r}: instances still registered ({listed})"
            )
