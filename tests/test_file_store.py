"""The default record store: atomic records, history, control requests, the group lock."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from rotator.ports import LockHeld
from rotator.state import file_store
from rotator.state.control import operator_request
from rotator.state.file_store import FileRecordStore


def record(rid: str, status: str = "running", **extra) -> dict:
    return {"id": rid, "group": "prd-cn", "status": status, "created_at": float(rid[-1]),
            **extra}


def test_records_history_and_failover_events(tmp_path):
    store = FileRecordStore(tmp_path)
    store.save(record("r1", "done"))
    store.save(record("r2", "running"))
    store.save(record("f3", "done", kind="failover"))
    assert store.load("prd-cn")["id"] == "r2"  # an event never replaces the rotation
    assert [r["id"] for r in store.history("prd-cn")] == ["r1", "r2", "f3"]
    assert not list(tmp_path.rglob(".current.json.*")), "no temporary file left behind"


def test_control_requests_accumulate_per_rotation(tmp_path):
    store = FileRecordStore(tmp_path)
    first = operator_request("promote", step="approval", by="ops@a", at=1.0)
    store.write_control("prd-cn", "r1", first)
    store.write_control("prd-cn", "r1", {**first, "by": "ops@b"})
    assert [r["by"] for r in store.read_control("prd-cn")["requests"]] == ["ops@a", "ops@b"]
    stop = operator_request("abort", reason="bad metrics", by="ops@c", at=2.0)
    store.write_control("prd-cn", "r2", stop)
    assert store.read_control("prd-cn") == {"rotation_id": "r2", "requests": [stop]}


def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    store = FileRecordStore(tmp_path, holder="ops@bastion")
    lock = store.acquire("prd-cn", "r1")
    with pytest.raises(LockHeld) as exc:
        FileRecordStore(tmp_path).acquire("prd-cn", "r2")
    assert exc.value.exit_code == 3 and not exc.value.stale
    assert "ops@bastion" in str(exc.value) and "rotation r1" in str(exc.value)
    lock.release()
    FileRecordStore(tmp_path).acquire("prd-cn", "r2").release()


def test_a_dead_holders_lock_is_reported_stale_and_broken_only_when_asked(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    store = FileRecordStore(tmp_path)
    store.acquire("prd-cn", "r1").release()
    import socket
    import time

    (tmp_path / "prd-cn" / "lock").write_text(json.dumps({
        "holder": "ops@bastion", "pid": int(dead.stdout), "host": socket.gethostname(),
        "started_at": time.time(), "renewed_at": time.time(), "rotation_id": "r1",
        "token": "x"}))
    with pytest.raises(LockHeld) as exc:
        store.acquire("prd-cn", "r2")
    assert exc.value.stale and "--break-lock" in str(exc.value)
    store.acquire("prd-cn", "r2", break_stale=True).release()


def test_a_lock_taken_over_is_lost_for_its_old_holder(tmp_path):
    store = FileRecordStore(tmp_path, heartbeat=0.05)
    lock = store.acquire("prd-cn", "r1")
    (tmp_path / "prd-cn" / "lock").unlink()
    FileRecordStore(tmp_path).acquire("prd-cn", "r2")
    import time

    deadline = time.monotonic() + 5
    while not lock.lost() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lock.lost()


def paused_renewal(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """The lock's heartbeat stops once it has read the lock, before writing it back:
    ``renewing`` is set then, and it writes when ``go_on`` is set (and never stops again)."""
    renewing, go_on = threading.Event(), threading.Event()
    write = file_store._atomic_write

    def slow_renewal(path, data):
        if threading.current_thread().name.startswith("lock-") and not go_on.is_set():
            renewing.set()
            go_on.wait(10)
        write(path, data)
    monkeypatch.setattr(file_store, "_atomic_write", slow_renewal)
    return renewing, go_on


def test_a_renewal_under_way_does_not_bring_a_released_lock_back(tmp_path, monkeypatch):
    """release() waits for the heartbeat's write: a lock file written back after the unlink
    would name a process that exits, and refuse every later rotation of the group."""
    renewing, go_on = paused_renewal(monkeypatch)
    lock = FileRecordStore(tmp_path, heartbeat=0.01).acquire("prd-cn", "r1")
    assert renewing.wait(10)  # the heartbeat has read the lock and is about to write it
    releasing = threading.Thread(target=lock.release)
    releasing.start()
    releasing.join(0.2)  # an unguarded release would be done by now, the file unlinked
    go_on.set()
    releasing.join(10)
    lock._thread.join(10)  # the heartbeat has written, or given up
    assert not releasing.is_alive() and not lock._thread.is_alive()
    assert not (tmp_path / "prd-cn" / "lock").exists()
    FileRecordStore(tmp_path).acquire("prd-cn", "r2").release()


def test_a_lock_is_never_seen_half_written(tmp_path, monkeypatch):
    """The lock appears with its whole content or not at all: a reader racing an acquire
    (the dashboard, a second `rotate`) never reads an empty file."""
    import os

    seen = []
    link = os.link

    def watched_link(src, dst):
        seen.append(json.loads(open(src).read()))  # what appears at dst, in full
        link(src, dst)
    monkeypatch.setattr(file_store.os, "link", watched_link)
    lock = FileRecordStore(tmp_path, holder="ops@bastion").acquire("prd-cn", "r1")
    assert seen and seen[0]["holder"] == "ops@bastion" and seen[0]["rotation_id"] == "r1"
    assert [p.name for p in (tmp_path / "prd-cn").iterdir()] == ["lock"]  # nothing aside
    lock.release()


def test_a_lock_broken_while_its_holder_renews_it_goes_to_the_breaker(tmp_path, monkeypatch):
    """Breaking a stale lock and renewing it do not interleave: the breaker holds the lock
    and the old holder finds it lost (it never writes its own lock back over the new one)."""
    renewing, go_on = paused_renewal(monkeypatch)
    old = FileRecordStore(tmp_path, heartbeat=0.01).acquire("prd-cn", "r1")
    assert renewing.wait(10)  # the heartbeat has read the lock and is about to write it
    taken = {}

    def break_it():  # a TTL of 0: every lock is stale to this one
        taken["lock"] = FileRecordStore(tmp_path, lock_ttl=0.0).acquire(
            "prd-cn", "r2", break_stale=True)
    breaking = threading.Thread(target=break_it)
    breaking.start()
    breaking.join(0.2)  # an unguarded break would be done by now
    go_on.set()
    breaking.join(10)
    old._thread.join(10)  # it renewed once more, then found the lock gone
    lock = json.loads((tmp_path / "prd-cn" / "lock").read_text())
    assert lock["rotation_id"] == "r2" and old.lost()
    taken["lock"].release()
