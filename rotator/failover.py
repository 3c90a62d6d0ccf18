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

from rotator.errors import Refused, RotatorError, StepFailed
from rotator.ports import ChangeJournal, SlotOutputs
from rotator.traffic import elb_reads
from rotator.traffic.calls import AwsCalls
from rotator.traffic.edge import EdgeRouter
from rotator.traffic.route53 import (
    AliasZones,
    ZoneDirectory,
    comparable,
    read_record_sets,
    submit,
    wait_insync,
    weighted_record_set,
)
from rotator.traffic.spec import RecordSpec, set_identifier

SLOTS = ("blue", "green")
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
    who = f"{target.group}/{target.slot}"
    if target.slot is None or target.outputs is None:
        raise Refused(f"failover refused: target {target.group} has no live slot with outputs")
    verdict = services_passing(target.group, target.slot)
    if verdict is not True:
        reason = "unknown" if verdict is None else "not passing"
        raise Refused(f"failover refused: target {who} services are {reason}")
    slot_elb = len(elb_reads.in_service(
        elb_reads.instance_health(calls, target.elb, target.outputs.elb_name)))
    if not slot_elb:
        raise Refused(f"failover refused: target {who} ELB {target.outputs.elb_name} "
                      "has no InService instance")
    edges = _edge_healthy(target)
    empty = [name for name, n in edges.items() if n == 0]
    if empty:
        raise Refused(f"failover refused: target {who} has no healthy target in edge "
                      f"{', '.join(empty)}")
    return {"services": "passing", "slot_elb_in_service": slot_elb, "edge_healthy": edges}


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


def move_pair_weight(
    calls: AwsCalls,
    route53: Any,
    records: list[RecordSpec],
    groups: tuple[str, str],
    target: PairSide,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    change_timeout: float,
    poll_interval: float,
    journal: ChangeJournal | None = None,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """All weight of the records to the target's live set; (weights before, after) by set id.

    Changes noted in ``journal`` by an earlier attempt are waited for first; new ones are
    noted there before they are waited for."""
    ours = {set_identifier(g, s) for g in groups for s in SLOTS}
    live = set_identifier(target.group, target.slot or "")
    zones = ZoneDirectory(route53, calls)
    alias_zone = AliasZones(target.elb, calls)
    by_zone: dict[str, list[RecordSpec]] = {}
    for spec in records:
        by_zone.setdefault(spec.zone_name, []).append(spec)

    def read() -> dict[str, dict[str, dict]]:
        result = {}
        for zone_name, specs in by_zone.items():
            found = read_record_sets(calls, route53, zones.zone_id(zone_name),
                                     [(s.fqdn, s.type) for s in specs])
            for spec in specs:
                result[spec.key] = {i: r for i, r in found[(spec.fqdn, spec.type)].items()
                                    if i in ours}
        return result

    def weights_of(sets: dict[str, dict[str, dict]]) -> dict[str, dict[str, int]]:
        return {k: {i: int(r.get("Weight", 0)) for i, r in v.items()} for k, v in sets.items()}

    def wait(change_ids: list[str]) -> None:
        if not change_ids:
            return
        if journal is not None:
            journal.submitted(change_ids)
        wait_insync(calls, route53, change_ids, clock=clock, sleep=sleep,
                    timeout=change_timeout, poll=poll_interval)
        if journal is not None:
            journal.in_sync()

    if journal is not None:
        wait(journal.pending())
    before_sets = read()
    change_ids = []
    for zone_name, specs in by_zone.items():
        groups_of_changes = []
        for spec in specs:
            existing = before_sets[spec.key]
            desired = {i: {**r, "Weight": 0} for i, r in existing.items() if i != live}
            desired[live] = weighted_record_set(spec, live, 100, target.outputs, alias_zone)
            if all(i in existing and comparable(existing[i]) == comparable(r)
                   for i, r in desired.items()):
                continue
            groups_of_changes.append(
                [{"Action": "UPSERT", "ResourceRecordSet": r} for _, r in sorted(desired.items())]
            )
        if groups_of_changes:
            change_ids += submit(calls, route53, zones.zone_id(zone_name), groups_of_changes,
                                 f"rotator failover to {live}")
    wait(change_ids)
    after = weights_of(read())
    wrong = {k: w for k, w in after.items()
             if w.get(live) != 100 or any(v for i, v in w.items() if i != live)}
    if wrong:
        raise StepFailed(f"failover to {live}: weights not as set after the change: {wrong}")
    return weights_of(before_sets), after


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
    before, after = move_pair_weight(
        calls, route53, records, (source.group, target.group), target,
        clock=clock, sleep=sleep, change_timeout=change_timeout, poll_interval=poll_interval,
        journal=journal,
    )
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

