"""Master/slave failover: move all weight of a pair's shared records to one group.

Both groups of a pair (``prd-sg-master`` / ``prd-sg-slave``) list the same
records; each has weighted sets ``<group>-<slot>``. A failover puts weight 100
on the target group's live slot and 0 on every other set of the pair, in one
batch per hosted zone, then verifies by reading back.

Health gates:
- the target is always checked, ``force`` or not: its services must pass
  (``services_passing(group, slot)``; None = unknown = refuse), its slot ELB and
  its edge ELBs must have InService instances;
- the source is checked unless ``force``: its health must be observable (its
  services' verdict known, its edge ELBs readable). A source observed failing is
  the reason to fail over and is not a refusal; a source that cannot be observed
  at all (region down) needs ``force``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError

from rotator.errors import Refused, RotatorError
from rotator.model import SLOTS
from rotator.ports import ChangeJournal, SlotOutputs
from rotator.traffic.calls import AwsCalls
from rotator.traffic.edge import EdgeRouter
from rotator.traffic.guard import TrafficGuard
from rotator.traffic.route53 import Route53Router
from rotator.traffic.spec import RecordSpec, set_identifier

PairServices = Callable[[str, str], "bool | None"]  # (group, slot) -> passing?


@dataclass(frozen=True)
class PairSide:
    """One group of the pair as the failover sees it."""

    group: str
    slot: str | None  # the group's live slot (None: unknown, e.g. a source that is down)
    outputs: SlotOutputs | None = None
    edge: EdgeRouter | None = None  # its part of the pair's edge (the master's load balancer)
    elb: Any = None  # boto3 classic ELB client of the group's region (its slots' own ELBs)


def _edge_healthy(side: PairSide) -> dict[str, int]:
    """Healthy edge targets of the side's live slot."""
    if side.edge is None or side.slot is None:
        return {}
    state = side.edge.read()
    return {side.edge.spec.load_balancer: len(state.healthy(side.slot))}


def check_target(calls: AwsCalls, target: PairSide, services_passing: PairServices) -> dict:
    """The target must carry all of the pair's traffic: the traffic guard's checks (services
    passing, InService instances in its slot's ELB, healthy targets at its edge), whatever
    ``force`` says."""
    if target.slot is None or target.outputs is None:
        raise Refused(f"failover refused: target {target.group} has no live slot with outputs")
    guard = TrafficGuard(target.elb, lambda slot: services_passing(target.group, slot), calls)
    edges = {}
    try:
        in_service = guard.check_weight(target.slot, target.outputs, "the pair's traffic")
        if target.edge is not None:
            state = target.edge.read()
            guard.check_edge_weight(target.edge.spec.load_balancer, target.slot, state)
            edges = {target.edge.spec.load_balancer: len(state.healthy(target.slot))}
    except Refused as exc:
        raise Refused(f"failover refused: target {target.group}/{target.slot}: {exc}") from None
    return {"services": "passing", "slot_elb_in_service": in_service, "edge_healthy": edges}


def observe_source(calls: AwsCalls, source: PairSide, services_passing: PairServices) -> dict:
    """The source's health as far as it can be seen; Refused when it cannot be seen at all."""
    verdict = services_passing(source.group, source.slot) if source.slot else None
    if verdict is None:
        raise Refused(
            f"failover refused: the health of source {source.group} cannot be observed "
            "(services unknown); use force if it is down"
        )
    try:
        edges = _edge_healthy(source)
    except (BotoCoreError, RotatorError) as exc:
        raise Refused(
            f"failover refused: the edge of source {source.group} cannot be read "
            f"({type(exc).__name__}); use force if it is down"
        ) from exc
    return {"services": "passing" if verdict else "failing", "edge_healthy": edges}


def failover(
    *,
    records: list[RecordSpec],
    source: PairSide,
    target: PairSide,
    route53: Any,
    services_passing: PairServices,
    force: bool = False,
    action: str = "failover",
    calls: AwsCalls | None = None,
    wall_clock: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    change_timeout: float = 300.0,
    poll_interval: float = 2.0,
    journal: ChangeJournal | None = None,
    checked: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Move the pair's shared records to ``target``; the event for the history.

    ``checked`` is called once the health checks passed, before the first change."""
    calls = calls or AwsCalls(sleep=sleep)
    target_health = check_target(calls, target, services_passing)
    source_health = (
        {"skipped": "forced"} if force else observe_source(calls, source, services_passing)
    )
    checked()
    if target.edge is not None:
        # the pair's edge: all of it on the target's live slot, the peer's target groups at 0
        target.edge.set_weights({target.slot: 100}, exclusive=True)
    dns = Route53Router(target.group, records, route53, elb=target.elb, calls=calls,
                        clock=clock, sleep=sleep, change_timeout=change_timeout,
                        poll_interval=poll_interval)
    pair = {set_identifier(g, s) for g in (source.group, target.group) for s in SLOTS}
    before, after = dns.move_all(target.slot, target.outputs, pair, journal=journal)
    return {
        "action": action,
        "from": source.group,
        "to": target.group,
        "to_slot": target.slot,
        "records": [spec.key for spec in records],
        "weights_before": before,
        "weights_after": after,
        "forced": force,
        "source_health": source_health,
        "target_health": target_health,
        "time": wall_clock(),
    }

