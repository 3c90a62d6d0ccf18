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
from rotator.sandbox.consul import ConsulCore, ConsulServer
from rotator.state.consul_store import ConsulRecordStore, ConsulStoreError, RecordConflict
from tests.consul.conftest import DC, ManualClock, free_port

CONTENDER = r"""
import sys
from rotator.ports import LockHeld
from rotator.state.consul_store import ConsulRecordStore
store = ConsulRecordStore(sys.argv[1], sys.argv[2], lock_delay=0.2)
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
    kw.setdefault("session_ttl", 10)
    kw.setdefault("lock_delay", 0.3)
    kw.setdefault("renew_every", 0.02)
    return ConsulRecordStore(server.address, DC, **kw)


def wait_until(condition, timeout: float = 15.0) -> None:
    """For what a real thread (the lock's heartbeat) does: a condition, a generous deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def clocked():
    """A Consul whose TTLs and lock-delays run on a clock the test moves (timers run when
    the test says)."""
    clock = ManualClock()
    core = ConsulCore([DC], clock=clock, run_timers=False)
    with ConsulServer(core) as srv:
        yield srv, clock
    core.close()


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
    finally:
        lock.release()
    assert b.lock_info("prd-cn") is None
    second = b.acquire("prd-cn", "rot-2")  # a clean release leaves no lock-delay
    second.release()


def test_the_heartbeat_keeps_the_lock_past_its_ttl(clocked) -> None:
    srv, clock = clocked
    store = make_store(srv, clock=clock)
    lock = store.acquire("prd-cn", "rot-1")
    try:
        for _ in range(3):  # three times most of a TTL, each followed by a renewal
            clock.advance(9)
            moved = clock()
            wait_until(lambda moved=moved: lock._last_renewed >= moved)
            srv.core.run_due()
        assert not lock.lost() and store.lock_info("prd-cn").rotation_id == "rot-1"
    finally:
        lock.release()


def test_lock_is_lost_when_the_session_goes_away(server) -> None:
    store = make_store(server)
    lock = store.acquire("prd-cn", "rot-1")
    consul.Consul(port=server.port, dc=DC).session.destroy(lock.session_id)
    wait_until(lock.lost)
    assert store.lock_info("prd-cn") is None  # behaviour delete: holder details gone


def test_crashed_holder_expires_then_lock_delay_then_free(clocked) -> None:
    srv, clock = clocked
    holder = make_store(srv, clock=clock, lock_delay=5)
    lock = holder.acquire("prd-cn", "rot-1")
    lock._stop.set()  # the holder freezes: no more renewals, as after kill -9
    lock._thread.join()
    clock.advance(10)
    srv.core.run_due()  # its session's TTL ran out
    expired = clock()
    assert holder.lock_info("prd-cn") is None
    assert lock.lost()
    taker = make_store(srv, clock=clock, lock_delay=5, sleep=clock.advance)
    second = taker.acquire("prd-cn", "rot-2")  # waits out the lock-delay
    assert 5 <= clock() - expired <= 6
    second.release()


def test_session_ttl_outside_consuls_bounds_is_refused() -> None:
    with pytest.raises(ValueError, match="10-86400"):
        ConsulRecordStore("http://127.0.0.1:8500", DC, session_ttl=2)


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


def test_a_control_write_that_keeps_losing_its_race_gives_up(server) -> None:
    from rotator.state.control import operator_request

    slept: list[float] = []
    store = make_store(server, cas_attempts=3, sleep=slept.append)
    real = store.client

    def losing():  # every check-and-set finds the key changed since it was read
        client = real()
        put = client.kv.put
        client.kv.put = lambda key, value, **kw: False if "cas" in kw else put(key, value, **kw)
        return client

    store.client = losing
    with pytest.raises(ConsulStoreError, match="kept changing under 3 attempts"):
        store.write_control("g", "r1", operator_request("abort", reason="x"))
    assert len(slept) == 2
