"""A pair's two groups share records and an edge: a rotation of one starts only while the
other is idle, and two that start at once cannot both pass. The real file record store
and its locks; the engine's planning and steps stand aside (they are tested elsewhere)."""

from __future__ import annotations

import pytest

from rotator.config import Project
from rotator.engine import Engine
from rotator.errors import Refused
from rotator.model import RotationRecord, RotationStatus
from rotator.state.file_store import FileRecordStore
from tests.engine_harness import ROOT, policy

PROJECT = Project(ROOT)
MASTER, SLAVE = "prd-sg-master", "prd-sg-slave"


class Starting(Engine):
    """An engine whose rotation is a record written at start; what it saw is noted."""

    def __init__(self, name: str, store: FileRecordStore, seen: dict):
        super().__init__(group=PROJECT.group(name), policy=policy("blue-green"), infra=None,
                         apps=None, health=None, traffic=None, store=store, guard=None,
                         app_definitions=[], clock=lambda: 1_800_000_000.0, sleep=lambda s: None)
        self.seen = seen

    def new_record(self, ami, rid=None):
        if self.group.peer:
            self.seen["peer lock while planning"] = self.store.lock_info(self.group.peer)
        return RotationRecord(id=rid, group=self.group.name, ami=ami, policy="blue-green",
                              policy_hash="-", stable="blue", candidate="green",
                              created_at=self.clock(), updated_at=self.clock(), steps=[])

    def _run(self, record, lock):
        if self.group.peer:
            self.seen["peer lock while running"] = self.store.lock_info(self.group.peer)
            # the peer, started now, meets this group's lock
            with pytest.raises(Refused, match=f"shares its traffic with {self.group.name}"):
                Starting(self.group.peer, self.store, {}).start("ami-0peer")
        return record


def test_the_peer_is_held_while_planning_then_kept_out_by_this_groups_lock(tmp_path):
    store, seen = FileRecordStore(tmp_path), {}
    record = Starting(MASTER, store, seen).start("ami-0new")
    assert record.group == MASTER
    assert seen["peer lock while planning"].rotation_id == record.id
    assert seen["peer lock while running"] is None
    assert store.lock_info(MASTER) is None and store.lock_info(SLAVE) is None


def test_a_busy_peer_refuses_the_start_and_nothing_is_written(tmp_path):
    store = FileRecordStore(tmp_path)
    held = store.acquire(SLAVE, "prd-sg-slave-rotation")
    try:
        with pytest.raises(Refused, match=f"{MASTER} shares its traffic with {SLAVE}, which is "
                                          f"busy: group '{SLAVE}' is locked by"):
            Starting(MASTER, store, {}).start("ami-0new")
    finally:
        held.release()
    assert store.load(MASTER) is None
    assert store.lock_info(MASTER) is None  # its own lock went too


def test_an_unfinished_rotation_of_the_peer_refuses_the_start(tmp_path):
    store = FileRecordStore(tmp_path)
    paused = RotationRecord(id="prd-sg-slave-1", group=SLAVE, ami="ami-0old", policy="canary",
                            policy_hash="-", stable="blue", candidate="green",
                            status=RotationStatus.PAUSED, created_at=1.0, updated_at=1.0,
                            steps=[])
    store.save(paused.to_dict())
    with pytest.raises(Refused, match=f"whose rotation prd-sg-slave-1 is paused: `rotate "
                                      f"resume {SLAVE}`"):
        Starting(MASTER, store, {}).start("ami-0new")
    assert store.load(MASTER) is None
    assert store.lock_info(SLAVE) is None and store.lock_info(MASTER) is None


def test_a_group_without_a_peer_minds_only_its_own_lock(tmp_path):
    store = FileRecordStore(tmp_path)
    others = [store.acquire(SLAVE, "unrelated"), store.acquire(MASTER, "unrelated")]
    try:
        record = Starting("prd-cn", store, {}).start("ami-0new")
    finally:
        for lock in others:
            lock.release()
    assert record.group == "prd-cn" and store.load("prd-cn")["id"] == record.id
