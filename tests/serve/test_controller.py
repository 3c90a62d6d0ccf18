"""The controller carries on rotations nobody holds, acts through the lock, and hands over."""

from __future__ import annotations

import json
import time

import pytest

from rotator.model import RotationStatus
from rotator.ports import LockInfo
from rotator.serve.actions import submit
from rotator.serve.board import Board, GroupState
from rotator.serve.controller import (
    Controller,
    TakeoverRules,
    store_holder_alive,
    why_take_over,
)
from rotator.serve.feed import FileChangeFeed
from rotator.state.file_store import FileRecordStore
from tests.engine_harness import GROUP, policy
from tests.fake_aws import client_error
from tests.fakes import FakeWorld
from tests.promises import violations
from tests.serve.harness import fake_engine, fake_runner, wait_for

LOCK = LockInfo("prd-cn", "ops@ci", 4242, "ci", 1.0, "r1")


def state(status: str, *, lock=None, requests=()) -> GroupState:
    record = {"id": "r1", "group": "prd-cn", "status": status, "operator_actions": []}
    return GroupState("prd-cn", record=record, lock=lock,
                      control={"rotation_id": "r1", "requests": list(requests)})


@pytest.mark.parametrize("status, lock, rules, requests, expected", [
    ("waiting", None, TakeoverRules(), (), "waiting for approval"),
    ("waiting", LOCK, TakeoverRules(), (), None),  # a live `rotate` waits there itself
    ("running", None, TakeoverRules(), (), "running without a process (its lock is gone)"),
    ("running", None, TakeoverRules(resume_orphaned=False), (), None),
    ("rolling-back", None, TakeoverRules(), (), "rolling-back without a process (its lock is gone)"),
    ("paused", None, TakeoverRules(), (), None),  # off by default
    ("paused", None, TakeoverRules(resume_paused=True), (), "paused"),
    ("paused", None, TakeoverRules(), ({"action": "abort"},), "paused, and an abort was asked"),
    ("rollback-failed", None, TakeoverRules(resume_paused=True), (), None),  # a human decides
    ("failed", None, TakeoverRules(resume_paused=True), (), None),  # the same, in older records
    ("done", None, TakeoverRules(), (), None),
    ("rolled-back", None, TakeoverRules(), (), None),
])
def test_what_is_taken_over(status, lock, rules, requests, expected):
    assert why_take_over(state(status, lock=lock, requests=requests), rules,
                         holder_alive=lambda info: True) == expected


def test_a_dead_holders_lock_does_not_stop_a_takeover():
    assert why_take_over(state("running", lock=LOCK), TakeoverRules(),
                         holder_alive=lambda info: False) is not None


@pytest.fixture
def world():
    w = FakeWorld()
    w.seed_live("blue")
    return w


@pytest.fixture
def store(tmp_path):
    return FileRecordStore(tmp_path / "state")


def waiting_canary(world, store):
    """What `rotate prd-cn --policy canary` leaves in CI: exit 4 at the approval, no lock."""
    record = fake_engine(world, store, policy("canary")).start("ami-0123abcd")
    assert record.status is RotationStatus.WAITING
    assert store.lock_info(GROUP.name) is None
    return record


DEFAULT_RULES = TakeoverRules()


def controller_for(store, runner, rules=DEFAULT_RULES, name="controller"):
    board = Board(store, [GROUP.name], FileChangeFeed(store.root, [GROUP.name], interval=0.01),
                  sweep_every=0.2)
    controller = Controller(board, runner, rules, sweep_every=0.2, name=name)
    board.start()
    controller.start()
    return board, controller


def stop(board, controller):
    controller.stop(timeout=10)
    board.stop()


def test_a_waiting_canary_is_carried_on_and_promoted(world, store):
    record = waiting_canary(world, store)
    board, controller = controller_for(store, fake_runner(world, store, policy("canary")))
    try:
        wait_for(lambda: controller.holding())
        assert store.lock_info(GROUP.name).rotation_id == record.id  # the controller holds it
        submit(store, GROUP.name, "promote", by="ops@laptop")
        wait_for(lambda: store.load(GROUP.name)["status"] == "done")
        done = store.load(GROUP.name)
        assert done["operator_actions"][0]["outcome"] == "approved approval"
        assert world.weights == {"green": 100} and violations(world) == []
        assert controller.acted == [(GROUP.name, record.id)]
    finally:
        stop(board, controller)


def test_a_candidate_turning_bad_during_the_approval_is_rolled_back(world, store):
    waiting_canary(world, store)
    board, controller = controller_for(store, fake_runner(world, store, policy("canary")))
    try:
        wait_for(lambda: controller.holding())
        world.healthy["green"] = False  # a service of the candidate turns critical
        wait_for(lambda: store.load(GROUP.name)["status"] == "rolled-back")
        record = store.load(GROUP.name)
        assert "health gate failed" in record["reason"]
        approval = next(s for s in record["steps"] if s["kind"] == "approve")
        assert approval["status"] == "failed"
        assert world.weights.get("blue") == 100 and violations(world) == []
    finally:
        stop(board, controller)


def test_a_stopping_controller_hands_the_approval_over(world, store):
    record = waiting_canary(world, store)
    first_board, first = controller_for(store, fake_runner(world, store, policy("canary")),
                                        name="first")
    wait_for(lambda: first.holding())
    stop(first_board, first)
    assert store.lock_info(GROUP.name) is None
    assert store.load(GROUP.name)["status"] == "waiting"
    board, second = controller_for(store, fake_runner(world, store, policy("canary")),
                                   name="second")
    try:
        wait_for(lambda: second.holding())
        submit(store, GROUP.name, "promote", by="ops@laptop")
        wait_for(lambda: store.load(GROUP.name)["status"] == "done")
        assert first.acted == second.acted == [(GROUP.name, record.id)]
    finally:
        stop(board, second)


def test_a_paused_rotation_waits_for_an_operator_unless_asked(world, store):
    world.faults["route53:ChangeResourceRecordSets"] = [
        client_error("InvalidChangeBatch", "RRSet with DNS name is not permitted")]
    record = fake_engine(world, store, policy("canary", on_failure="pause")).start("ami-0123abcd")
    assert record.status is RotationStatus.PAUSED
    log: list = []
    board, controller = controller_for(
        store, fake_runner(world, store, policy("canary", on_failure="pause"), log=log))
    try:
        board.reload(GROUP.name)
        controller.sweep()
        assert log == [] and controller.active == {}  # off by default
        submit(store, GROUP.name, "abort", by="ops@laptop", reason="bad release")
        wait_for(lambda: store.load(GROUP.name)["status"] == "rolled-back")
        assert log == [("run", GROUP.name)]
        assert store.load(GROUP.name)["operator_actions"][0]["by"] == "ops@laptop"
    finally:
        stop(board, controller)


def test_a_rotation_the_controller_cannot_resume_is_left_alone(world, store):
    """A policy edited since the start is refused by the engine: not retried every sweep."""
    waiting_canary(world, store)
    log: list = []
    edited = policy("canary", retain_stable=99.0)
    board, controller = controller_for(store, fake_runner(world, store, edited, log=log))
    try:
        wait_for(lambda: controller.declined)
        rid = store.load(GROUP.name)["id"]
        assert "changed since rotation" in controller.declined[rid]
        for _ in range(3):
            controller.sweep()
        assert log == [("run", GROUP.name)]
        assert store.load(GROUP.name)["status"] == "waiting"
    finally:
        stop(board, controller)


def test_a_file_lock_left_unrenewed_by_another_host_is_taken_over(world, tmp_path):
    """Its holder cannot be asked; its lock's TTL ran out: the rotation is orphaned."""
    store = FileRecordStore(tmp_path / "state", lock_ttl=5.0)
    record = fake_engine(world, store, policy("blue-green")).start("ami-0123abcd")
    data = store.load(GROUP.name)  # as if the process had died half-way, on another host
    data.update(status="running", cursor=3, finished_at=None)
    data["steps"][3].update(status="pending")
    store.save(data)
    then = time.time() - 60
    (store.root / GROUP.name / "lock").write_text(json.dumps({
        "holder": "ci@runner-7", "pid": 4242, "host": "runner-7", "started_at": then,
        "renewed_at": then, "rotation_id": record.id, "token": "runner-7:4242:x"}))
    board = Board(store, [GROUP.name], FileChangeFeed(store.root, [GROUP.name], interval=0.01),
                  sweep_every=0.2)
    controller = Controller(board, fake_runner(world, store, policy("blue-green")),
                            holder_alive=store_holder_alive(store), sweep_every=0.2)
    board.start()
    controller.start()
    try:
        wait_for(lambda: store.load(GROUP.name)["status"] == "done")
        assert controller.acted == [(GROUP.name, record.id)]
    finally:
        stop(board, controller)
