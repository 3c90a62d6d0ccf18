"""The default record store: atomic records, history, control requests, the group lock."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rotator.ports import LockHeld
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
