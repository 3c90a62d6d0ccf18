"""Classic edge ELBs: register the candidate's instances, wait InService, then deregister.

The long-lived edge ELB of a group carries the instances of one role
(``ElbSpec.role``) of the live slot(s). Registration follows the weights:

- share of a slot's instances registered = ceil(count x weight / 100), at least
  one while the weight is above 0, all of them at 100, none at 0 (e.g. 5 % of 4
  instances -> 1, 50 % -> 2, 60 % -> 3); the first ones by instance id are taken,
  so every step keeps the instances of the step before;
- new registrations must be InService before anything is deregistered, and the
  last InService instances of an ELB are never deregistered (the guard);
- ``remove_slot`` returns the connection-draining timeout the caller must wait
  out before the slot's instances may be destroyed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from rotator.errors import Refused, StepFailed
from rotator.ports import SlotOutputs, TrafficState
from rotator.traffic import elb_reads
from rotator.traffic.calls import AwsCalls
from rotator.traffic.spec import ElbSpec

UNKNOWN_SLOT = "unknown"


def registered_share(count: int, weight: int) -> int:
    """How many of a slot's ``count`` instances an ELB carries at ``weight`` percent."""
    if weight <= 0 or count == 0:
        return 0
    if weight >= 100:
        return count
    return min(count, max(1, math.ceil(count * weight / 100)))


def wanted_members(
    spec: ElbSpec, weights: dict[str, int], slots: dict[str, SlotOutputs]
) -> dict[str, list[str]]:
    """slot -> instance ids the ELB should carry at these weights."""
    wanted = {}
    for slot, weight in weights.items():
        ids = sorted(slots[slot].instances.get(spec.role, [])) if slot in slots else []
        wanted[slot] = ids[: registered_share(len(ids), weight)]
    return wanted


class ElbRouter:
    """Registrations of one group's edge ELBs (a ``TrafficRouter`` for the ELB side only)."""

    def __init__(
        self,
        group: str,
        elbs: list[ElbSpec],
        elb: Any,
        *,
        guard: Any | None = None,
        calls: AwsCalls | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        in_service_timeout: float = 300.0,
        poll_interval: float = 5.0,
        slot_of: Callable[[str], str | None] | None = None,
    ):
        self.group = group
        self.elbs = list(elbs)
        self.elb = elb
        self.guard = guard
        self.calls = calls or AwsCalls(sleep=sleep)
        self.clock = clock
        self.sleep = sleep
        self.in_service_timeout = in_service_timeout
        self.poll_interval = poll_interval
        self.slot_of_hook = slot_of
        self._known: dict[str, str] = {}  # instance id -> slot, from outputs seen

    # -- slots of instances -------------------------------------------------

    def remember(self, slots: dict[str, SlotOutputs]) -> None:
        """Learn which instance belongs to which slot (e.g. from a resumed record's outputs)."""
        for slot, outputs in slots.items():
            for ids in outputs.instances.values():
                for instance_id in ids:
                    self._known[instance_id] = slot

    def slot_of(self, instance_id: str) -> str:
        slot = self._known.get(instance_id)
        if slot is None and self.slot_of_hook is not None:
            slot = self.slot_of_hook(instance_id)
        return slot or UNKNOWN_SLOT

    # -- reading ----------------------------------------------------------

    def read(self) -> TrafficState:
        state = TrafficState()
        for spec in self.elbs:
            health = elb_reads.instance_health(self.calls, self.elb, spec.name)
            by_slot: dict[str, list[str]] = {}
            for instance_id in sorted(health):
                by_slot.setdefault(self.slot_of(instance_id), []).append(instance_id)
            state.registrations[spec.name] = by_slot
            state.health[spec.name] = health
        return state

    # -- changing ---------------------------------------------------------

    def register_phase(self, weights: dict[str, int], slots: dict[str, SlotOutputs], *,
                       checked: frozenset[str] = frozenset()) -> bool:
        """Register what the weights call for, then wait until it is InService; True when
        that took a wait (time in which a guard's verdict may have gone stale).

        ``checked``: slots the caller has just passed through the traffic guard."""
        self.remember(slots)
        waiting: dict[str, set[str]] = {}
        for spec in self.elbs:
            members = set(elb_reads.registered_instances(self.calls, self.elb, spec.name))
            wanted = wanted_members(spec, weights, slots)
            adding = {i for ids in wanted.values() for i in ids} - members
            if adding:
                for slot, ids in wanted.items():
                    if not set(ids) & adding or slot in checked:
                        continue
                    if self.guard is None:
                        raise Refused(f"no traffic guard configured: refusing to register {slot!r}")
                    self.guard.check_services(slot, f"instances in ELB {spec.name}")
                self.calls(
                    self.elb, "register_instances_with_load_balancer",
                    LoadBalancerName=spec.name,
                    Instances=[{"InstanceId": i} for i in sorted(adding)],
                )
            waiting[spec.name] = {i for ids in wanted.values() for i in ids}
        return self.wait_in_service(waiting)

    def wait_in_service(self, waiting: dict[str, set[str]]) -> bool:
        """Until every listed instance is InService; True when that took a wait."""
        deadline = self.clock() + self.in_service_timeout
        waited = False
        while True:
            lagging = {}
            for name, ids in waiting.items():
                if not ids:
                    continue
                health = elb_reads.instance_health(self.calls, self.elb, name)
                bad = {i: health.get(i, "NotRegistered") for i in ids
                       if health.get(i) != elb_reads.IN_SERVICE}
                if bad:
                    lagging[name] = bad
            if not lagging:
                return waited
            if self.clock() >= deadline:
                listed = "; ".join(
                    f"{n}: " + ", ".join(f"{i}={s}" for i, s in sorted(b.items()))
                    for n, b in sorted(lagging.items())
                )
                raise StepFailed(
                    f"instances not InService after {self.in_service_timeout:.0f} s ({listed}); "
                    "nothing was deregistered"
                )
            self.sleep(min(self.poll_interval, max(0.0, deadline - self.clock())))
            waited = True

    def deregister_phase(self, weights: dict[str, int], slots: dict[str, SlotOutputs]) -> None:
        """Deregister the instances of the given slots that the weights no longer call for."""
        self.remember(slots)
        for spec in self.elbs:
            health = elb_reads.instance_health(self.calls, self.elb, spec.name)
            wanted = {i for ids in wanted_members(spec, weights, slots).values() for i in ids}
            ours = {i for s in weights if s in slots for i in slots[s].instances.get(spec.role, [])}
            removing = (set(health) & ours) - wanted
            if removing:
                self._deregister(spec.name, health, removing)

    def _deregister(self, name: str, health: dict[str, str], removing: set[str]) -> None:
        if self.guard is not None:
            self.guard.check_deregister(name, health, removing)
        else:
            healthy = elb_reads.in_service(health)
            if healthy & removing and not healthy - removing:
                raise Refused(f"refusing to deregister the last InService instances of {name}")
        self.calls(
            self.elb, "deregister_instances_from_load_balancer",
            LoadBalancerName=name, Instances=[{"InstanceId": i} for i in sorted(removing)],
        )

    def set_weights(
        self,
        weights: dict[str, int],
        slots: dict[str, SlotOutputs],
        expected: dict[str, int] | None = None,
    ) -> None:
        self.register_phase(weights, slots)
        self.deregister_phase(weights, slots)

    def settled(self, weights: dict[str, int], slots: dict[str, SlotOutputs], wait: float) -> bool:
        for spec in self.elbs:
            health = elb_reads.instance_health(self.calls, self.elb, spec.name)
            wanted = {i for ids in wanted_members(spec, weights, slots).values() for i in ids}
            if any(health.get(i) != elb_reads.IN_SERVICE for i in wanted):
                return False
        return True

    def remove_slot(self, slot: str, outputs: SlotOutputs | None) -> float:
        """Deregister every instance of the slot; the draining seconds to wait out."""
        if outputs is not None:
            self.remember({slot: outputs})
        drain = 0.0
        for spec in self.elbs:
            health = elb_reads.instance_health(self.calls, self.elb, spec.name)
            removing = {i for i in health if self.slot_of(i) == slot}
            if outputs is not None:
                removing |= set(health) & set(outputs.instances.get(spec.role, []))
            if removing:
                self._deregister(spec.name, health, removing)
            drain = max(drain, elb_reads.draining_timeout(self.calls, self.elb, spec.name))
        return drain
