"""Notices reach a local webhook (apprise json://) once per event, however many controllers
watch; a failing target is logged without its URL, retried, and never stops a rotation."""

from __future__ import annotations

import logging
import time

import pytest

from rotator.environment import NotifyEnv
from rotator.errors import StepFailed
from rotator.serve.board import Board
from rotator.serve.feed import FileChangeFeed
from rotator.serve.notices import Notice
from rotator.serve.notifier import Notifier, targets_from
from rotator.state.control import operator_request
from rotator.state.file_store import FileRecordStore
from tests.engine_harness import GROUP, policy
from tests.fakes import FakeWorld
from tests.serve.harness import WebhookReceiver, closed_port, fake_engine, wait_for

GROUPS = [GROUP.name, "prd-sg-master", "prd-sg-slave"]
KINDS = {  # a word of each notice's title -> its kind
    "rotation started": "started", "waiting for approval": "waiting",
    "health gate failed": "failed", "rolled back": "rolled-back",
    "URGENT": "rollback-failed", "rotation done": "done", "failover done": "failover",
}


def kind_of(title: str) -> str:
    return next((k for word, k in KINDS.items() if word in title), title)


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture
def store(tmp_path):
    return FileRecordStore(tmp_path / "state")


def watching(store, urls, **kw):
    """A board and a notifier, as one `rotate serve` has them."""
    env = NotifyEnv(urls=urls)
    board = Board(store, GROUPS, FileChangeFeed(store.root, GROUPS, interval=0.01),
                  sweep_every=0.5)
    kw.setdefault("retry_first", 0.05)
    notifier = Notifier(store, lambda g: targets_from(env, g), owner=f"test-{id(board)}",
                        dashboard_url="http://127.0.0.1:8686/", **kw)
    board.subscribe(notifier.on_change)
    notifier.start()
    board.start()
    return board, notifier


def stop_all(*pairs):
    for board, notifier in pairs:
        board.stop()
        notifier.stop()


def failover_event(store, now: float) -> None:
    """What `rotate failover prd-sg-master --to prd-sg-slave` keeps in both groups' history."""
    event_id = "prd-sg-master-failover-20270115T080000Z"
    data = {"kind": "failover", "event_id": event_id, "status": "done",
            "from": "prd-sg-master", "to": "prd-sg-slave", "forced": False, "by": "ops@bastion",
            "via": "rotate", "created_at": now, "finished_at": now, "policy": "failover"}
    for group in ("prd-sg-master", "prd-sg-slave"):
        store.save({**data, "group": group, "id": f"{event_id}-{group}"})


def test_every_kind_of_event_reaches_the_webhook_once_with_two_controllers(store, receiver):
    world = FakeWorld()
    world.seed_live("blue")
    one = watching(store, [receiver.url()])
    two = watching(store, [receiver.url()])
    try:
        # a canary waiting for approval, then promoted to the end
        record = fake_engine(world, store, policy("canary")).start("ami-0123abcd")
        wait_for(lambda: "waiting" in [kind_of(t) for t in receiver.titles()])
        waiting = next(m for m in receiver.received if "waiting" in m["title"])
        assert "rotate promote prd-cn" in waiting["message"]
        assert "http://127.0.0.1:8686/#group=prd-cn" in waiting["message"]
        store.write_control(GROUP.name, record.id,
                            operator_request("promote", step="approval", by="ops@laptop"))
        assert fake_engine(world, store, policy("canary")).resume().status.value == "done"
        wait_for(lambda: "done" in [kind_of(t) for t in receiver.titles()])

        # a candidate failing its health gate: rolled back
        world.fail_health_after["blue"] = 0
        assert fake_engine(world, store, policy("blue-green")).start(
            "ami-0123abce").status.value == "rolled-back"
        wait_for(lambda: "rolled-back" in [kind_of(t) for t in receiver.titles()])

        # a rollback that cannot finish: urgent
        world.fail_health_after["blue"] = 0
        world.faults["destroy"] = [StepFailed("terraform destroy: DependencyViolation")] * 500
        assert fake_engine(world, store, policy("blue-green")).start(
            "ami-0123abcf").status.value == "rollback-failed"
        wait_for(lambda: "rollback-failed" in [kind_of(t) for t in receiver.titles()])

        failover_event(store, time.time())
        wait_for(lambda: "failover" in [kind_of(t) for t in receiver.titles()])

        wait_for(lambda: one[1].pending() == 0 and two[1].pending() == 0)
        kinds = sorted(kind_of(t) for t in receiver.titles())
        assert kinds == sorted([
            "started", "waiting", "done",  # the canary
            "started", "failed", "rolled-back",  # the bad candidate
            "started", "failed", "rollback-failed",  # the failed rollback
            "failover",
        ]), receiver.titles()
        urgent = next(m for m in receiver.received if "URGENT" in m["title"])
        assert urgent["type"] == "failure" and "rotate resume prd-cn" in urgent["message"]
    finally:
        stop_all(one, two)


def test_a_failing_target_is_logged_retried_and_never_in_the_way(store, receiver, caplog):
    caplog.set_level(logging.INFO)
    dead = f"json://127.0.0.1:{closed_port()}/hook/very-secret-token-123"
    world = FakeWorld()
    world.seed_live("blue")
    watched = watching(store, [dead, receiver.url()], max_attempts=3)
    try:
        record = fake_engine(world, store, policy("blue-green")).start("ami-0123abcd")
        assert record.status.value == "done"  # the rotation never waits on a notice
        wait_for(lambda: "done" in [kind_of(t) for t in receiver.titles()])
        wait_for(lambda: "given up" in caplog.text)
        wait_for(lambda: watched[1].pending() == 0)
    finally:
        stop_all(watched)
    assert "target 1 (json) failed (refused or unreachable, attempt 1): retrying" in caplog.text
    assert "failed 3 times" in caplog.text
    assert "very-secret-token-123" not in caplog.text
    assert sorted(kind_of(t) for t in receiver.titles()) == ["done", "started"]


def test_a_notice_refused_at_first_is_delivered_once_later(store):
    flaky = WebhookReceiver(fail_first=2)
    world = FakeWorld()
    world.seed_live("blue")
    watched = watching(store, [flaky.url()])
    try:
        fake_engine(world, store, policy("blue-green")).start("ami-0123abcd")
        wait_for(lambda: sorted(kind_of(t) for t in flaky.titles()) == ["done", "started"])
        wait_for(lambda: watched[1].pending() == 0)
        assert flaky.attempts == 4
    finally:
        stop_all(watched)
        flaky.close()


def test_an_old_event_seen_first_is_not_sent_but_a_waiting_approval_is(store):
    sent = []
    notifier = Notifier(store, lambda g: targets_from(NotifyEnv(urls=["json://x"]), g),
                        owner="t", max_age=60, send=lambda t, n: sent.append(n) or True)
    old = time.time() - 3600
    assert not notifier.consider(Notice(GROUP.name, GROUP.name, "r1.done", "done", "t", "b", old))
    assert notifier.consider(Notice(GROUP.name, GROUP.name, "r1.waiting.5", "waiting", "t", "b",
                                    old, current=True))
    assert not notifier.consider(Notice(GROUP.name, GROUP.name, "r1.waiting.5", "waiting", "t",
                                        "b", old, current=True))  # once


def test_targets_come_from_the_environment_file_and_variables(monkeypatch):
    monkeypatch.setenv("TEAM_HOOKS", "json://127.0.0.1:1/a slack://T/B/C")
    env = NotifyEnv(urls=["json://127.0.0.1:1/a"], urls_env=["TEAM_HOOKS"],
                    groups={"prd-cn": ["mailto://ops@example.invalid"]})
    assert [t.label for t in targets_from(env, "prd-cn")] == [
        "target 1 (mailto)", "target 2 (json)", "target 3 (slack)"]
    assert [t.url for t in targets_from(env, "ops-cn")] == [
        "json://127.0.0.1:1/a", "slack://T/B/C"]
    assert "json://" not in repr(targets_from(env, "ops-cn"))
