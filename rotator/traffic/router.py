"""The group's traffic router: Route53 weights and edge ELB registrations together.

Order of one step, chosen so capacity is always there before traffic is:
1. register the instances the new weights call for in the edge ELBs and wait
   until they are InService (a slot gaining weight is checked by the guard);
2. move the Route53 weights (guarded: the slot's own ELB must have InService
   instances and its services must pass), wait INSYNC, verify;
3. only then deregister what the weights no longer call for (never the last
   InService instances).
A failure in 1 leaves the old registrations and weights untouched; a failure
in 2 leaves extra registrations, which the next attempt or the rollback cleans.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rotator.guards import ServicesPassing, TrafficGuard
from rotator.ports import ChangeJournal, SlotOutputs, TrafficState
from rotator.traffic.calls import AwsCalls
from rotator.traffic.elb import ElbRouter
from rotator.traffic.route53 import Route53Router, validate_weights
from rotator.traffic.spec import ElbSpec, RecordSpec


class GroupTrafficRouter:
    """``TrafficRouter`` for one group: its records and its edge ELBs."""

    def __init__(self, dns: Route53Router, elbs: ElbRouter, guard: TrafficGuard):
        self.dns = dns
        self.elbs = elbs
        self.guard = guard

    def remember(self, slots: dict[str, SlotOutputs]) -> None:
        """Tell the router which instances belong to which slot (from a stored record)."""
        self.elbs.remember(slots)

    def read(self) -> TrafficState:
        """What the world says: weights, registrations, instance health."""
        dns = self.dns.read()
        edge = self.elbs.read()
        return TrafficState(
            weights=dns.weights, registrations=edge.registrations, health=edge.health,
            others=dns.others,
        )

    def set_weights(
        self,
        weights: dict[str, int],
        slots: dict[str, SlotOutputs],
        expected: dict[str, int] | None = None,
        *,
        journal: ChangeJournal | None = None,
    ) -> None:
        validate_weights(weights)
        self.dns.wait_journal(journal)
        # hand-made changes and unhealthy targets are refused before anything moves
        current = self.dns.read().weights
        self.dns.check_expected(current, weights, expected)
        checked = self.dns.guard_increases(current, weights, slots)
        waited = self.elbs.register_phase(weights, slots, checked=checked)
        # The verdict just given stands for the weight change too (each check costs round
        # trips), unless waiting for InService let time pass: then the guard asks again.
        self.dns.set_weights(weights, slots, expected,
                             checked=frozenset() if waited else checked, journal=journal)
        self.elbs.deregister_phase(weights, slots)

    def settled(self, weights: dict[str, int], slots: dict[str, SlotOutputs], wait: float) -> bool:
        return self.dns.settled(weights, slots, wait) and self.elbs.settled(weights, slots, wait)

    def remove_slot(self, slot: str, outputs: SlotOutputs | None, *,
                    journal: ChangeJournal | None = None) -> float:
        """Weight must already be 0 (guarded); delete its records, deregister, return draining."""
        self.dns.remove_slot(slot, outputs, journal=journal)
        return self.elbs.remove_slot(slot, outputs)

    def check_destroy(self, slot: str) -> None:
        """Refuse (Refused) while the slot still has weight or registrations."""
        self.guard.check_destroy(slot, self.read())

    @property
    def calls(self) -> AwsCalls:
        return self.dns.calls


def build_group_router(
    group: str,
    records: list[RecordSpec],
    elbs: list[ElbSpec],
    *,
    route53: Any,
    elb: Any,
    services_passing: ServicesPassing | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    change_timeout: float = 300.0,
    in_service_timeout: float = 300.0,
    poll_interval: float = 2.0,
    slot_of: Callable[[str], str | None] | None = None,
) -> GroupTrafficRouter:
    """The usual wiring: one call counter, one guard shared by both sides."""
    calls = AwsCalls(sleep=sleep)
    guard = TrafficGuard(elb, services_passing, calls)
    dns = Route53Router(
        group, records, route53, elb=elb, guard=guard, calls=calls, clock=clock, sleep=sleep,
        change_timeout=change_timeout, poll_interval=poll_interval,
    )
    edge = ElbRouter(
        group, elbs, elb, guard=guard, calls=calls, clock=clock, sleep=sleep,
        in_service_timeout=in_service_timeout, poll_interval=poll_interval, slot_of=slot_of,
    )
    return GroupTrafficRouter(dns, edge, guard)
