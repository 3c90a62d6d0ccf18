"""`rotate failover` / `rotate failback`: wire a master/slave pair to the failover logic.

Both groups' locks are held while the pair's shared records move, so no
rotation of either side runs at the same time; the event lands in both
groups' history.
"""

from __future__ import annotations

import time
from typing import Any

from rotator.config import Project
from rotator.errors import InputError
from rotator.failover import PairSide, failover
from rotator.ports import SlotOutputs
from rotator.traffic.spec import ElbSpec, RecordSpec


def _live_side(session, state) -> PairSide:
    """The group's live slot: the one its own records give weight to, else its last rotation's."""
    from rotator.traffic.calls import client_config

    record = session.store.load(session.group.name)
    slots = (record or {}).get("slots", {})
    live = None
    own = {s: state.slot_weight(s) for s in ("blue", "green")}
    if any(own.values()):
        live = max(own, key=own.get)
    elif record and record.get("status") == "done":
        live = record["candidate"]
    elif len(slots) == 1:
        live = next(iter(slots))
    outputs = SlotOutputs.from_dict(slots[live]) if live in slots else None
    return PairSide(
        group=session.group.name, slot=live, outputs=outputs,
        elbs=[ElbSpec(e.name, e.role) for e in session.group.traffic.elbs],
        elb=session.access.client("elb", client_config()),
    )


def failover_between(project: Project, source: str, target: str, *, force: bool,
                     action: str = "failover") -> dict[str, Any]:
    from rotator.traffic.calls import client_config
    from rotator.wiring import Session

    src_group = project.group(source)
    if src_group.peer != target:
        raise InputError(f"{target} is not the peer of {source} (peer: {src_group.peer or 'none'})",
                         file=str(src_group.directory / "group.yaml"), field="peer")
    src = Session.open(project, source, "failover")
    dst = Session.open(project, target, "failover")
    shared = {(r.zone, r.name, r.type) for r in src.group.traffic.records} & {
        (r.zone, r.name, r.type) for r in dst.group.traffic.records}
    if not shared:
        raise InputError(f"{source} and {target} share no Route53 record",
                         file=str(src_group.directory / "group.yaml"), field="traffic.records")
    records = [RecordSpec(zone=r.zone, name=r.name, type=r.type, ttl=r.ttl)
               for r in dst.group.traffic.records if (r.zone, r.name, r.type) in shared]
    now = time.time()
    event_id = f"{source}-{action}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"
    locks = [src.store.acquire(source, event_id)]
    try:
        locks.append(dst.store.acquire(target, event_id))
        src_side = _live_side(src, src.traffic.read())
        dst_side = _live_side(dst, dst.traffic.read())

        def services_passing(group: str, slot: str) -> bool | None:
            return (src if group == source else dst).services_passing(slot)

        event = failover(
            records=records, source=src_side, target=dst_side,
            route53=dst.access.client("route53", client_config()),
            services_passing=services_passing, force=force,
            action=action,
        )
    finally:
        for lock in locks:
            lock.release()
    event.update({"kind": event["action"], "id": event_id, "status": "done",
                  "created_at": now, "finished_at": time.time(),
                  "after": event.get("weights_after", {})})
    for group in (source, target):
        src.store.save({**event, "group": group, "id": f"{event_id}-{group}"})
    return event
