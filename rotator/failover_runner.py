"""`rotate failover` / `rotate failback`: wire a master/slave pair to the failover logic.

A failover is as careful as a rotation:
- both groups' locks are held while the pair's shared records move, and it is refused
  while either group has an unfinished rotation or failover (named in the refusal);
- its record is written in both groups' history before the first change and updated
  after it; the Route53 change ids are written down before they are waited for;
- a process killed half-way leaves a record that is not ``done``: `rotate resume` of
  either group checks the target again and finishes the move.
"""

from __future__ import annotations

import time
from typing import Any

from rotator.config import Project
from rotator.errors import InputError, Refused, RotatorError
from rotator.failover import PairSide, failover
from rotator.identity import holder
from rotator.model import SLOTS, RotationStatus
from rotator.ports import LockHeld, SlotOutputs
from rotator.session import Session
from rotator.state.pair_events import unfinished_failover
from rotator.traffic.calls import client_config
from rotator.wiring import record_specs


def _live_side(session, state) -> PairSide:
    """The group's live slot: the one its own records give weight to, else its last rotation's."""
    record = session.store.load(session.group.name)
    slots = (record or {}).get("slots", {})
    live = None
    own = {s: state.slot_weight(s) for s in SLOTS}
    if any(own.values()):
        live = max(own, key=own.get)
    elif record and record.get("status") == "done":
        live = record["candidate"]
    elif len(slots) == 1:
        live = next(iter(slots))
    outputs = SlotOutputs.from_dict(slots[live]) if live in slots else None
    return PairSide(
        group=session.group.name, slot=live, outputs=outputs, edge=session.traffic.edge,
        elb=session.access.client("elb", client_config()),
    )


class PairRecord:
    """The failover's record, kept in both groups' history (one copy each)."""

    def __init__(self, stores: dict[str, Any], data: dict[str, Any]):
        self.stores = stores
        self.data = data

    def save(self) -> None:
        self.data["updated_at"] = time.time()
        for group, store in self.stores.items():
            store.save({**self.data, "group": group, "id": f"{self.data['event_id']}-{group}"})

    # the ChangeJournal of the move: change ids written down before they are waited for
    def pending(self) -> list[str]:
        return list(self.data.get("changes", []))

    def submitted(self, change_ids: list[str]) -> None:
        self.data["changes"] = list(dict.fromkeys([*self.pending(), *change_ids]))
        self.save()

    def in_sync(self) -> None:
        self.data["changes"] = []
        self.data["insync_at"] = time.time()
        self.save()


def failover_between(project: Project, source: str, target: str, *, force: bool,
                     action: str = "failover", via: str = "rotate") -> dict[str, Any]:
    now = time.time()
    event_id = f"{source}-{action}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"
    data = {"kind": action, "event_id": event_id, "status": RotationStatus.RUNNING.value,
            "from": source, "to": target, "forced": force, "by": holder(), "via": via,
            "created_at": now, "policy": "failover", "changes": []}
    return _run(project, data, resuming=False)


def resume_failover(project: Project, group: str) -> dict[str, Any] | None:
    """Finish the group's unfinished failover, if it has one (None otherwise)."""
    store = Session.open(project, group, "failover").store
    data = unfinished_failover(store, group)
    if data is None:
        return None
    data = {k: v for k, v in data.items() if k not in ("group", "id")}
    return _run(project, data, resuming=True)


def _run(project: Project, data: dict[str, Any], *, resuming: bool) -> dict[str, Any]:
    source, target = data["from"], data["to"]
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
    records = record_specs([r for r in dst.group.traffic.records
                            if (r.zone, r.name, r.type) in shared])
    record = PairRecord({source: src.store, target: dst.store}, data)
    locks = []
    try:
        for session in sorted((src, dst), key=lambda s: s.group.name):  # one order: no deadlock
            locks.append(_acquire(session, data["event_id"], resuming))
        _refuse_unfinished((src, dst), data["event_id"])
        src_side = _live_side(src, src.traffic.read())
        dst_side = _live_side(dst, dst.traffic.read())

        def services_passing(group: str, slot: str) -> bool | None:
            return (src if group == source else dst).services_passing(slot)

        try:
            event = failover(
                records=records, source=src_side, target=dst_side,
                route53=dst.access.client("route53", client_config()),
                services_passing=services_passing, force=data["forced"],
                action=data["kind"], journal=record, checked=record.save,
            )
        except RotatorError as exc:
            if _written(src.store, data["event_id"], source):
                # weights may be half-way: stop for an operator, as a rotation would
                data.update(status=RotationStatus.PAUSED.value, reason=str(exc))
                record.save()
            raise
    finally:
        for lock in locks:
            lock.release()
    data.update(event)
    data.update(status=RotationStatus.DONE.value, finished_at=time.time(), reason="",
                after=event.get("weights_after", {}))
    record.save()
    return {**data, "id": data["event_id"]}


def _acquire(session, event_id: str, resuming: bool):
    try:
        return session.store.acquire(session.group.name, event_id)
    except LockHeld as exc:
        # the process that ran this very failover died: resuming is what it asks for
        if not (resuming and exc.stale and exc.info.rotation_id == event_id):
            raise
        return session.store.acquire(session.group.name, event_id, break_stale=True)


def _written(store, event_id: str, group: str) -> bool:
    return any(r.get("id") == f"{event_id}-{group}" for r in store.history(group))


def _refuse_unfinished(sessions, event_id: str) -> None:
    for session in sessions:
        name = session.group.name
        current = session.store.load(name)
        if current and not RotationStatus(current["status"]).terminal:
            raise Refused(
                f"failover refused: rotation {current['id']} of {name} is {current['status']} "
                f"(`rotate resume {name}` or `rotate abort {name}` first)")
        pending = unfinished_failover(session.store, name)
        if pending and pending.get("event_id") != event_id:
            raise Refused(
                f"failover refused: {pending['kind']} {pending['event_id']} of {name} did not "
                f"finish ({pending['status']}); `rotate resume {name}` finishes it")
