"""The group's traffic router: Route53 weights and the edge listener's weights together.

Order of one step, chosen so capacity is always there before traffic is:
1. the guard checks every slot that gains weight (its services pass, its own load
   balancer has InService instances: the DNS records point there);
2. the edge: register the proxies of the slots that carry weight in their target groups
   and wait until they are healthy, then one ModifyListener sets the step's weights;
3. Route53: one batch per hosted zone, wait INSYNC, verify.
A failure in 1 or 2 leaves the weights untouched; a failure in 3 leaves the layers apart,
which the next attempt or the rollback puts right. Targets leave the edge only when their
slot is retired (``remove_slot``), after its weight is 0 on both layers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rotator.ports import ChangeJournal, SlotOutputs, TrafficState
from rotator.traffic import elb_reads
from rotator.traffic.calls import AwsCalls
from rotator.traffic.edge import EdgeRouter
from rotator.traffic.guard import ServicesPassing, TrafficGuard
from rotator.traffic.route53 import Route53Router, validate_weights
from rotator.traffic.spec import EdgeSpec, RecordSpec


class GroupTrafficRouter:
    """``TrafficRouter`` for one group: its records and its part of the edge."""

    def __init__(self, dns: Route53Router, edge: EdgeRouter | None, guard: TrafficGuard):
        self.dns = dns
        self.edge = edge
        self.guard = guard

    def read(self) -> TrafficState:
        """What the world says: weights on both layers, edge targets and their health."""
        state = self.dns.read()
        if self.edge is not None:
            edge = self.edge.read()
            name = self.edge.spec.load_balancer
            state.edge_weights = {name: edge.weights}
            state.registrations = {name: {s: edge.registered(s) for s in edge.targets}}
            state.health = {name: {t.ip: t.state for ts in edge.targets.values() for t in ts}}
        return state

    def set_weights(
        self,
        weights: dict[str, int],
        slots: dict[str, SlotOutputs],
        expected: dict[str, int] | None = None,
        *,
        journal: ChangeJournal | None = None,
        fence: bool = False,
    ) -> None:
        validate_weights(weights)
        self.dns.wait_journal(journal)
        # hand-made changes and unhealthy targets are refused before anything moves
        current = self.dns.read().weights
        self.dns.check_expected(current, weights, expected)
        checked = self.dns.guard_increases(current, weights, slots)
        if self.edge is not None:
            if self.edge.register_phase(weights, slots, checked=checked):
                # waiting for healthy targets let time pass: the guard asks again before
                # any weight moves (each check costs round trips, so only then)
                checked = self.dns.guard_increases(current, weights, slots)
            self.edge.set_weights(weights)
        self.dns.set_weights(weights, slots, expected, checked=checked, journal=journal,
                             fence=fence)

    def settled(self, weights: dict[str, int], slots: dict[str, SlotOutputs], wait: float) -> bool:
        return self.dns.settled(weights, slots, wait) and (
            self.edge is None or self.edge.settled(weights))

    def remove_slot(self, slot: str, outputs: SlotOutputs | None, *,
                    journal: ChangeJournal | None = None) -> float:
        """Weight must already be 0 (guarded); delete its records, deregister its edge
        targets, return the seconds of draining."""
        self.dns.remove_slot(slot, outputs, journal=journal)
        return self.edge.remove_slot(slot) if self.edge is not None else 0.0

    def in_service(self, outputs: SlotOutputs) -> tuple[int, int]:
        health = elb_reads.instance_health(self.calls, self.guard.elb, outputs.elb_name)
        return len(elb_reads.in_service(health)), len(health)

    def drained(self, slot: str) -> bool:
        return self.edge is None or self.edge.drained(slot)

    def check_destroy(self, slot: str) -> None:
        """Refuse (Refused) while the slot still has weight or registrations."""
        self.guard.check_destroy(slot, self.read())

    @property
    def calls(self) -> AwsCalls:
        return self.dns.calls


def build_group_router(
    group: str,
    records: list[RecordSpec],
    edge: EdgeSpec | None,
    *,
    route53: Any,
    elb: Any,
    elbv2: Any,
    services_passing: ServicesPassing | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    change_timeout: float = 300.0,
    healthy_timeout: float = 300.0,
    poll_interval: float = 2.0,
) -> GroupTrafficRouter:
    """The usual wiring: one call counter, one guard shared by both layers."""
    calls = AwsCalls(sleep=sleep)
    guard = TrafficGuard(elb, services_passing, calls)
    dns = Route53Router(
        group, records, route53, elb=elb, guard=guard, calls=calls, clock=clock, sleep=sleep,
        change_timeout=change_timeout, poll_interval=poll_interval,
    )
    edge_router = None if edge is None else EdgeRouter(
        group, edge, elbv2, guard=guard, calls=calls, clock=clock, sleep=sleep,
        healthy_timeout=healthy_timeout, poll_interval=poll_interval,
    )
    return GroupTrafficRouter(dns, edge_router, guard)
