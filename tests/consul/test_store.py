"""Rotation records and the group lock on the emulator's KV, over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import consul
import pytest

from rotator.ports import LockHeld, RecordStore
from rotator.state.consul_store import ConsulRecordStore, ConsulStoreError, RecordConflict
from tests.consul.conftest import DC, free_port

CONTENDER = r"""
import sys
from rotator.ports import LockHeld
from rotator.state.consul_store import ConsulRecordStore
store = ConsulRecordStore(sys.argv[1], sys.argv[2], session_ttl=1.0, lock_delay=0.2)
try:
    lock = store.acquire("prd-cn", sys.argv[3])
except LockHeld as exc:
    print("REFUSED", exc.info.holder, exc.info.pid, exc.info.rotation_id, flush=True)
    sys.exit(3)
print("ACQUIRED", flush=True)
sys.stdin.readline()
lock.release()
"""


def make_store(server, **kw) -> ConsulRecordStore:
    kw.setdefault("session_ttl", 1.0)
    kw.setdefault("lock_delay", 0.3)
    return ConsulRecordStore(server.address, DC, **kw)


def test_is_a_record_store(server) -> None:
    assert isinstance(make_store(server), RecordStore)


def test_save_load_and_history(server) -> None:
    store = make_store(server)
    assert store.load("prd-cn") is None
    store.save({"id": "r1", "group": "prd-cn", "phase": "provision"})
    store.save({"id": "r1", "group": "prd-cn", "phase": "done"})
    store.save({"id": "r2", "group": "prd-cn", "phase": "plan"})
    assert make_store(server).load("prd-cn") == {"id": "r2", "group": "prd-cn", "phase": "plan"}
    assert [(r["id"], r["phase"]) for r in store.history("prd-cn")] == [("r1", "done"), ("r2", "plan")]
    assert store.history("prd-sg") == []
    raw = consul.Consul(port=server.port, dc=DC).kv.get("rotator/prd-cn/history/r1")[1]
    assert json.loads(raw["Value"])["phase"] == "done"


def test_lost_cas_race_raises_and_keeps_the_winner(server) -> None:
    first, second = make_store(server), make_store(server)
    first.save({"id": "r1", "group": "g", "step": 0})
    assert second.load("g")["step"] == 0
    first.save({"id": "r1", "group": "g", "step": 1})
    with pytest.raises(RecordConflict, match="changed by another writer"):
        second.save({"id": "r1", "group": "g", "step": 99})
    assert first.load("g")["step"] == 1
    second.load("g")
    second.save({"id": "r1", "group": "g", "step": 2})  # after re-reading it may write
    assert first.load("g")["step"] == 2


def test_control_requests_are_all_kept_under_concurrency(server) -> None:
    import threading

    from rotator.state.control import operator_request

    stores = [make_store(server) for _ in range(4)]
    assert stores[0].read_control("g") == {}
    threads = [threading.Thread(target=s.write_control, args=(
        "g", "r1", operator_request("promote", step="approval", by=f"ops@{i}")))
        for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["by"] for r in stores[1].read_control("g")["requests"]) == [
        f"ops@{i}" for i in range(4)]
    stop = operator_request("abort", reason="operator said so")
    assert stores[2].write_control("g", "r1", stop)["requests"][-1] == stop
    assert stores[3].write_control("g", "r2", stop) == {"rotation_id": "r2", "requests": [stop]}


def test_publish_live(server) -> None:
    make_store(server).publish_live("prd-cn", {"slot": "green", "ami": "ami-123",
                                               "weights": {"green": 100, "blue": 0}})
    _, entry = consul.Consul(port=server.port, dc=DC).kv.get("rotator/prd-cn/live")
    assert json.loads(entry["Value"])["slot"] == "green"


def test_lock_refuses_a_second_holder_and_names_the_first(server) -> None:
    a, b = make_store(server), make_store(server)
    lock = a.acquire("prd-cn", "rot-1")
    try:
        with pytest.raises(LockHeld) as refused:
            b.acquire("prd-cn", "rot-2")
        info = refused.value.info
        assert info.pid == os.getpid() and info.rotation_id == "rot-1" and "@" in info.holder
        assert "rot-1" in str(refused.value)
        assert b.lock_info("prd-cn") == info
        time.sleep(1.2)  # longer than the session TTL: the heartbeat keeps it
        assert not lock.lost()
    finally:
        lock.release()
    assert b.lock_info("prd-cn") is None
    second = b.acquire("prd-cn", "rot-2")  # a clean release leaves no lock-delay
    second.release()


def test_lock_is_lost_when_the_session_goes_away(server) -> None:
    store = make_store(server)
    lock = store.acquire("prd-cn", "rot-1")
    consul.Consul(port=server.port, dc=DC).session.destroy(lock.session_id)
    deadline = time.monotonic() + 2
    while not lock.lost():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert store.lock_info("prd-cn") is None  # behaviour delete: holder details gone


def test_crashed_holder_expires_then_lock_delay_then_free(server, core) -> None:
    holder = make_store(server, session_ttl=0.5, lock_delay=0.4)
    lock = holder.acquire("prd-cn", "rot-1")
    lock._stop.set()  # the holder freezes: no more renewals, as after kill -9
    start = time.monotonic()
    while holder.lock_info("prd-cn") is not None:
        assert time.monotonic() - start < 3
        time.sleep(0.05)
    assert lock.lost()
    taker = make_store(server)
    second = taker.acquire("prd-cn", "rot-2")  # waits out the lock-delay
    assert time.monotonic() - start >= 0.5
    second.release()


def test_two_processes_contend_for_the_group_lock(server) -> None:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    args = [sys.executable, "-c", CONTENDER, server.address, DC]
    first = subprocess.Popen(args + ["rot-A"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert first.stdout.readline().strip() == "ACQUIRED"
        second = subprocess.run(args + ["rot-B"], capture_output=True, text=True, env=env,
                                timeout=30, stdin=subprocess.DEVNULL)
        assert second.returncode == 3
        word, holder, pid, rotation = second.stdout.split()
        assert word == "REFUSED" and "@" in holder and int(pid) == first.pid and rotation == "rot-A"
    finally:
        first.stdin.close()
        assert first.wait(timeout=10) == 0
    third = subprocess.run(args + ["rot-C"], capture_output=True, text=True, env=env, timeout=30,
                           input="\n")
    assert third.stdout.strip() == "ACQUIRED"


def test_unreachable_consul_is_a_clear_transient_error() -> None:
    store = ConsulRecordStore(f"http://127.0.0.1:{free_port()}", DC, token="tok-secret",
                              request_timeout=1)
    with pytest.raises(ConsulStoreError, match="unreachable") as err:
        store.load("prd-cn")
    assert "tok-secret" not in str(err.value) and "tok-secret" not in repr(store)
