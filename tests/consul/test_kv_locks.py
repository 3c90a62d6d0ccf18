"""KV locks through py-consul, with lock-delay measured on an injected clock.

Semantics: hashicorp/consul agent/kvs_endpoint.go (KVSPut, conflictingFlags), agent/consul/
kvs_endpoint.go (KVS.Apply: lock-delay judged before the write), agent/consul/state/kvs.go
(kvsSetTxn, kvsLockTxn, kvsUnlockTxn, kvsSetCASTxn, kvsDeleteCASTxn), agent/consul/state/
session.go (lock-delay applied when a session is invalidated), and
developer.hashicorp.com/consul/api-docs/kv (Create/Update Key: acquire, release, flags, cas).
"""

from __future__ import annotations

from collections.abc import Iterator

import consul
import pytest
import requests

from rotator.sandbox.consul import ConsulCore, ConsulServer
from tests.consul.conftest import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def locked(clock: ManualClock) -> Iterator[tuple[ConsulServer, consul.Consul]]:
    # No timer thread: nothing expires unless a test moves the clock and runs the timers.
    core = ConsulCore(["dc1"], clock=clock, run_timers=False)
    with ConsulServer(core) as srv:
        yield srv, consul.Consul(port=srv.port)
    core.close()


def test_acquire_flags_and_reacquire_by_holder(locked) -> None:
    _, c = locked
    s1 = c.session.create(name="one", lock_delay=0)
    s2 = c.session.create(name="two", lock_delay=0)
    assert c.kv.put("svc/leader", "node-a", acquire=s1, flags=42) is True
    _, entry = c.kv.get("svc/leader")
    assert (entry["Session"], entry["LockIndex"], entry["Flags"]) == (s1, 1, 42)
    assert c.kv.put("svc/leader", "node-b", acquire=s2) is False  # held by another session
    assert c.kv.put("svc/leader", "node-a2", acquire=s1) is True  # the holder: LockIndex kept
    _, entry = c.kv.get("svc/leader")
    assert (entry["Value"], entry["LockIndex"], entry["Flags"]) == (b"node-a2", 1, 0)


def test_release_only_by_the_holder(locked) -> None:
    srv, c = locked
    s1 = c.session.create(lock_delay=0)
    s2 = c.session.create(lock_delay=0)
    assert c.kv.put("lock", "a", acquire=s1)
    assert c.kv.put("lock", "x", release=s2) is False  # not the holder: nothing changes
    assert c.kv.get("lock")[1]["Value"] == b"a"
    gone = "00000000-0000-0000-0000-000000000000"
    assert c.kv.put("lock", "x", release=gone) is False  # unlock never checks the session exists
    assert c.kv.put("nothing-here", "x", release=s1) is False  # no key, nothing to release
    assert c.kv.put("lock", "released", release=s1, flags=7) is True
    _, entry = c.kv.get("lock")
    assert "Session" not in entry and entry["LockIndex"] == 1
    assert (entry["Value"], entry["Flags"]) == (b"released", 7)  # a release writes like a PUT
    assert c.kv.put("lock", "again", release=s1) is False  # no longer held
    # an empty session is refused by the state store ("missing session"): a plain error
    r = requests.put(f"{srv.address}/v1/kv/lock?release=", data=b"x", timeout=5)
    assert (r.status_code, r.text) == (500, "missing session")
    r = requests.put(f"{srv.address}/v1/kv/lock?acquire={gone}", data=b"x", timeout=5)
    assert (r.status_code, r.text) == (500, f'invalid session "{gone}"')


def test_plain_put_keeps_the_holder_but_not_lock_index_or_flags(locked) -> None:
    _, c = locked
    s1 = c.session.create(lock_delay=0)
    assert c.kv.put("cfg", "v1", acquire=s1, flags=3)
    index = c.kv.get("cfg")[1]["ModifyIndex"]
    assert c.kv.put("cfg", "stolen") is True  # a plain PUT ignores locks...
    _, entry = c.kv.get("cfg")
    assert entry["Session"] == s1  # ...keeps the holder...
    assert (entry["LockIndex"], entry["Flags"]) == (0, 0)  # ...and writes a fresh entry
    assert entry["ModifyIndex"] > index
    # A write that changes nothing keeps the index (kvsSetTxn: existing.Equal(entry)).
    assert c.kv.put("cfg", "stolen") is True
    assert c.kv.get("cfg")[1]["ModifyIndex"] == entry["ModifyIndex"]


def test_cas_does_not_compose_with_acquire_or_release(locked) -> None:
    srv, c = locked
    s1 = c.session.create(lock_delay=0)
    with pytest.raises(consul.exceptions.BadRequest, match="Conflicting flags: acquire="):
        c.kv.put("k", "v", acquire=s1, cas=0)
    r = requests.put(f"{srv.address}/v1/kv/k?cas=0&release={s1}&dc=dc1", data=b"v", timeout=5)
    assert (r.status_code, r.text) == (400, f"Conflicting flags: cas=0&dc=dc1&release={s1}\n")
    r = requests.delete(f"{srv.address}/v1/kv/k?recurse&cas=1", timeout=5)
    assert r.status_code == 400 and r.text.startswith("Conflicting flags: ")
    assert c.kv.get("k")[1] is None  # nothing was written
    # bad numbers fail as strconv.ParseUint does
    r = requests.put(f"{srv.address}/v1/kv/k?flags=-1", data=b"v", timeout=5)
    assert (r.status_code, r.text) == (500, 'strconv.ParseUint: parsing "-1": invalid syntax')


def test_cas_and_delete_cas(locked) -> None:
    _, c = locked
    assert c.kv.put("rec", "v0", cas=0) is True
    assert c.kv.put("rec", "v1", cas=0) is False  # 0 = create only
    index = c.kv.get("rec")[1]["ModifyIndex"]
    assert c.kv.put("rec", "v1", cas=index + 1) is False
    assert c.kv.put("rec", "v1", cas=index) is True
    index = c.kv.get("rec")[1]["ModifyIndex"]
    assert c.kv.delete("rec", cas=index - 1) is False
    assert c.kv.delete("rec", cas=index) is True
    assert c.kv.delete("rec", cas=index) is True  # deleting a missing key with cas succeeds


def test_lock_delay_after_invalidation_on_injected_clock(locked, clock: ManualClock) -> None:
    _, c = locked
    holder = c.session.create(name="holder", lock_delay=15)
    waiter = c.session.create(name="waiter", lock_delay=0)
    assert c.kv.put("svc/leader", "a", acquire=holder)
    assert c.session.destroy(holder)  # invalidation releases the key and starts lock-delay
    _, entry = c.kv.get("svc/leader")
    assert "Session" not in entry and entry["Value"] == b"a"
    assert c.kv.put("svc/leader", "b", acquire=waiter) is False
    clock.advance(14.9)
    assert c.kv.put("svc/leader", "b", acquire=waiter) is False
    clock.advance(0.1)
    assert c.kv.put("svc/leader", "b", acquire=waiter) is True
    assert c.kv.get("svc/leader")[1]["LockIndex"] == 2


def test_release_sets_no_lock_delay(locked) -> None:
    _, c = locked
    holder = c.session.create(lock_delay=60)
    other = c.session.create(lock_delay=0)
    assert c.kv.put("lock", "a", acquire=holder)
    assert c.kv.put("lock", "", release=holder)
    assert c.session.destroy(holder)  # holds nothing any more: no key gets a delay
    assert c.kv.put("lock", "b", acquire=other) is True


def test_lock_delay_on_ttl_expiry_and_delete_behaviour(locked, clock: ManualClock) -> None:
    srv, c = locked
    sid = c.session.create(ttl=10, lock_delay=5, behavior="delete")
    other = c.session.create(lock_delay=0)
    assert c.kv.put("eph", "x", acquire=sid)
    clock.advance(10)
    srv.core.run_due()  # the TTL expires: the key is deleted, and lock-delay starts now
    assert c.kv.get("eph")[1] is None
    assert c.kv.put("eph", "y", acquire=other) is False
    clock.advance(5)
    assert c.kv.put("eph", "y", acquire=other) is True
