"""The Consul emulator through the real py-consul client over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import consul
import pytest
import requests

from rotator.sandbox.consul import ConsulCore, ConsulServer
from tests.consul.conftest import (
    DC,
    OTHER_DC,
    ManualClock,
    free_port,
    in_background,
    wait_until,
)


@pytest.fixture
def timed():
    """(clock, core, server, client): a Consul whose time the test moves."""
    clock = ManualClock()
    core = ConsulCore([DC], clock=clock, run_timers=False)
    with ConsulServer(core) as server:
        yield clock, core, server, consul.Consul(port=server.port, dc=DC)
    core.close()


def test_service_with_ttl_check_turns_passing_then_expires(client: consul.Consul) -> None:
    client.agent.service.register("api", service_id="api-1", tags=["prd-cn-green"], port=31001,
                                  address="10.0.1.6", check=consul.Check.ttl("300ms"))
    _, nodes = client.health.service("api", tag="prd-cn-green")
    assert [n["Service"]["ID"] for n in nodes] == ["api-1"]
    checks = {c["CheckID"]: c for c in nodes[0]["Checks"]}
    assert checks["service:api-1"]["Status"] == "critical"  # TTL checks start critical
    assert checks["serfHealth"]["Status"] == "passing"
    assert client.health.service("api", passing=True)[1] == []

    client.agent.check.ttl_pass("service:api-1", notes="ok")
    _, nodes = client.health.service("api", passing=True)
    assert len(nodes) == 1
    assert client.agent.checks()["service:api-1"]["Output"] == "ok"

    wait_until(lambda: client.agent.checks()["service:api-1"]["Status"] == "critical")
    assert client.agent.checks()["service:api-1"]["Output"] == "TTL expired"


def test_tags_filter_and_agent_views(client: consul.Consul) -> None:
    client.agent.service.register("api", service_id="api-g", tags=["prd-cn-green"])
    client.agent.service.register("api", service_id="api-b", tags=["prd-cn-blue"])
    assert [n["Service"]["ID"] for n in client.health.service("api", tag="prd-cn-blue")[1]] == ["api-b"]
    assert set(client.agent.services()) == {"api-g", "api-b"}
    _, services = client.catalog.services()
    assert services["consul"] == [] and sorted(services["api"]) == ["prd-cn-blue", "prd-cn-green"]
    _, catalog = client.catalog.service("api", tag="prd-cn-green")
    assert catalog[0]["ServiceID"] == "api-g"
    client.agent.service.deregister("api-g")
    assert [n["Service"]["ID"] for n in client.health.service("api")[1]] == ["api-b"]


def test_snake_case_and_camel_case_keys_are_the_same(server: ConsulServer, client: consul.Consul) -> None:
    body = {"NAME": "web", "Id": "web-1", "TAGS": ["x"], "Check": {"TTL": "10s", "Status": "passing"}}
    assert requests.put(f"{server.address}/v1/agent/service/register", json=body, timeout=5).ok
    _, nodes = client.health.service("web", passing=True)
    assert nodes[0]["Service"]["Tags"] == ["x"]


def test_http_check_follows_a_loopback_server(client: consul.Consul, status_server) -> None:
    client.agent.service.register("web", service_id="web-1",
                                  check=consul.Check.http(status_server.url, "100ms", timeout="1s"))

    def status() -> str:
        return client.agent.checks()["service:web-1"]["Status"]

    wait_until(lambda: status() == "passing")
    status_server.status = 429
    wait_until(lambda: status() == "warning")
    status_server.status = 503
    wait_until(lambda: status() == "critical")
    assert "503" in client.agent.checks()["service:web-1"]["Output"]


def test_http_check_never_probes_other_addresses(core: ConsulCore, client: consul.Consul) -> None:
    client.agent.check.register("remote", consul.Check.http("http://10.0.0.1:80/", "50ms"))
    core.run_due()  # whatever is due fires now: no probe of it is, nor ever will be
    chk = client.agent.checks()["remote"]
    assert chk["Status"] == "critical" and chk["Output"] == ""
    assert core.dc(DC).checks[(core.dc(DC).node_name, "remote")].next_probe is None


def test_maintenance_mode_makes_instances_critical(client: consul.Consul) -> None:
    client.agent.service.register("api", service_id="api-1", check=consul.Check.ttl("10s"))
    client.agent.check.ttl_pass("service:api-1")
    client.agent.service.maintenance("api-1", "true", reason="draining")
    checks = client.agent.checks()
    assert checks["_service_maintenance:api-1"]["Notes"] == "draining"
    assert client.health.service("api", passing=True)[1] == []
    client.agent.service.maintenance("api-1", "false")
    assert len(client.health.service("api", passing=True)[1]) == 1


def test_replace_existing_checks(client: consul.Consul) -> None:
    client.agent.service.register("api", service_id="api-1", check=consul.Check.ttl("10s"))
    client.agent.check.register("extra", consul.Check.ttl("10s"), service_id="api-1")
    client.agent.service.register("api", service_id="api-1", check=consul.Check.ttl("10s"))
    assert "extra" in client.agent.checks()
    client.agent.service.register("api", service_id="api-1", check=consul.Check.ttl("10s"),
                                  replace_existing_checks=True)
    assert set(client.agent.checks()) == {"service:api-1"}


def test_blocking_query_returns_on_change(client: consul.Consul, core: ConsulCore) -> None:
    client.agent.service.register("api", service_id="api-1", tags=["t"], check=consul.Check.ttl("10s"))
    index, _ = client.health.service("api", tag="t")
    thread, answer = in_background(
        lambda: client.health.service("api", tag="t", index=index, wait="5m"))
    wait_until(lambda: core.notifier.blocked == 1)  # held: nothing changed yet
    core.dc(DC).update_check("service:api-1", "passing")
    thread.join(timeout=10)
    (new_index, nodes), = answer
    assert core.notifier.timeouts == 0  # woken by the change, not by its wait running out
    assert int(new_index) > int(index)
    assert nodes[0]["Checks"][0]["Status"] == "passing"


def test_blocking_query_times_out_on_wait_with_same_index(client: consul.Consul,
                                                          core: ConsulCore) -> None:
    client.kv.put("cfg/a", "1")
    index, _ = client.kv.get("cfg/a")
    again, entry = client.kv.get("cfg/a", index=index, wait="400ms")
    assert again == index and entry["Value"] == b"1"
    assert core.notifier.timeouts == 1  # it was held, and answered when its wait ran out


def test_blocking_on_a_missing_key_carries_an_index_and_wakes_on_create(client: consul.Consul) -> None:
    index, entry = client.kv.get("later/key")
    assert entry is None and int(index) >= 1
    threading.Timer(0.1, lambda: client.kv.put("later/key", "v")).start()
    _, entry = client.kv.get("later/key", index=index, wait="5s")
    assert entry["Value"] == b"v"


def test_bad_wait_and_index_are_400(server: ConsulServer) -> None:
    r = requests.get(f"{server.address}/v1/kv/x?index=1&wait=soon", timeout=5)
    assert r.status_code == 400 and r.text == "Invalid wait time"
    r = requests.get(f"{server.address}/v1/kv/x?index=abc", timeout=5)
    assert r.status_code == 400 and r.text == "Invalid index"


def test_kv_cas_race_has_one_winner(server: ConsulServer) -> None:
    writers = [consul.Consul(port=server.port, dc=DC) for _ in range(2)]
    writers[0].kv.put("rec", "v0")
    modify_index = writers[0].kv.get("rec")[1]["ModifyIndex"]
    barrier = threading.Barrier(2)
    results: dict[int, bool] = {}

    def write(i: int) -> None:
        barrier.wait()
        results[i] = writers[i].kv.put("rec", f"from-{i}", cas=modify_index)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [False, True]
    winner = next(i for i, ok in results.items() if ok)
    assert writers[0].kv.get("rec")[1]["Value"] == f"from-{winner}".encode()
    assert writers[0].kv.put("rec", "x", cas=0) is False  # cas=0 creates only
    assert writers[0].kv.put("fresh", "x", cas=0) is True


def test_kv_listing_keys_separator_raw_flags_delete(server: ConsulServer, client: consul.Consul) -> None:
    for key in ("base/foo", "base/base/a", "base/base/b", "other"):
        client.kv.put(key, key, flags=7)
    assert client.kv.get("base/", keys=True, separator="/")[1] == ["base/base/", "base/foo"]
    _, entries = client.kv.get("base/", recurse=True)
    assert [e["Key"] for e in entries] == ["base/base/a", "base/base/b", "base/foo"]
    assert entries[0]["Flags"] == 7
    assert requests.get(f"{server.address}/v1/kv/other?raw", timeout=5).content == b"other"
    missing = requests.get(f"{server.address}/v1/kv/none", timeout=5)
    assert missing.status_code == 404 and int(missing.headers["X-Consul-Index"]) >= 1
    list_index, _ = client.kv.get("base/", recurse=True)
    assert client.kv.delete("base/", recurse=True)
    index_after, gone = client.kv.get("base/", recurse=True)
    assert gone is None and int(index_after) > int(list_index)  # tombstones keep it monotonic
    _, entry = client.kv.get("other")
    assert client.kv.delete("other", cas=entry["ModifyIndex"] + 100) is False
    assert client.kv.delete("other", cas=entry["ModifyIndex"]) is True


def test_session_lock_acquire_release_and_lock_index(server: ConsulServer, client: consul.Consul) -> None:
    s1 = client.session.create(name="one", lock_delay=0)
    s2 = client.session.create(name="two", lock_delay=0)
    assert client.kv.put("lock", "a", acquire=s1) is True
    assert client.kv.put("lock", "b", acquire=s2) is False
    assert client.kv.put("lock", "a2", acquire=s1) is True  # re-acquire by the holder
    _, entry = client.kv.get("lock")
    assert entry["Session"] == s1 and entry["LockIndex"] == 1 and entry["Value"] == b"a2"
    assert client.kv.put("lock", "x", release=s2) is False
    assert client.kv.put("lock", "a3", release=s1) is True
    _, entry = client.kv.get("lock")
    assert "Session" not in entry and entry["LockIndex"] == 1
    assert client.kv.put("lock", "b", acquire=s2) is True
    assert client.kv.get("lock")[1]["LockIndex"] == 2
    with pytest.raises(consul.ConsulException):
        client.kv.put("lock", "z", acquire="00000000-0000-0000-0000-000000000000")


def test_session_ttl_expiry_releases_and_applies_lock_delay(timed) -> None:
    clock, core, server, c = timed
    sid = requests.put(f"{server.address}/v1/session/create",
                       json={"TTL": "300ms", "LockDelay": "700ms", "Name": "short"}, timeout=5).json()["ID"]
    other = c.session.create(name="other", lock_delay=0)
    assert c.kv.put("held", "v", acquire=sid)
    info_index, info = c.session.info(sid)
    assert info["TTL"] == "300ms" and info["LockDelay"] == 700_000_000
    thread, answer = in_background(lambda: c.session.info(sid, index=info_index, wait="5m"))
    wait_until(lambda: core.notifier.blocked == 1)
    clock.advance(0.299)
    core.run_due()
    assert c.session.info(sid)[1] is not None and thread.is_alive()  # not yet
    clock.advance(0.002)
    core.run_due()
    thread.join(timeout=10)
    assert answer[0][1] is None  # the blocked query woke when the session expired
    _, entry = c.kv.get("held")
    assert "Session" not in entry  # behaviour release: unlocked, value kept
    clock.advance(0.69)
    assert c.kv.put("held", "w", acquire=other) is False  # lock-delay
    clock.advance(0.02)
    assert c.kv.put("held", "w", acquire=other) is True


def test_session_renew_keeps_it_alive_and_delete_behaviour(timed) -> None:
    clock, core, server, c = timed
    sid = requests.put(f"{server.address}/v1/session/create",
                       json={"TTL": "400ms", "Behavior": "delete", "LockDelay": "0s"}, timeout=5).json()["ID"]
    assert c.kv.put("eph", "v", acquire=sid)
    for _ in range(4):  # 0.8 s in all, never 0.4 s without a renewal
        clock.advance(0.2)
        core.run_due()
        assert c.session.renew(sid)["ID"] == sid
    assert c.kv.get("eph")[1] is not None
    clock.advance(0.401)
    core.run_due()
    assert c.kv.get("eph")[1] is None
    with pytest.raises(consul.NotFound):
        c.session.renew(sid)
    assert c.session.destroy(sid) is True  # idempotent


def test_session_invalidated_when_its_check_goes_critical(client: consul.Consul, core: ConsulCore) -> None:
    client.agent.check.register("guard", consul.Check.ttl("10s"))
    with pytest.raises(consul.ConsulException):
        client.session.create(checks=["serfHealth", "guard"])  # guard is critical
    client.agent.check.ttl_pass("guard")
    sid = client.session.create(checks=["serfHealth", "guard"], lock_delay=0)
    assert client.kv.put("k", "v", acquire=sid)
    client.agent.check.ttl_fail("guard")
    assert client.session.info(sid)[1] is None
    assert "Session" not in client.kv.get("k")[1]


def test_several_datacenters_and_unknown_dc(server: ConsulServer) -> None:
    cn = consul.Consul(port=server.port, dc=DC)
    sg = consul.Consul(port=server.port, dc=OTHER_DC)
    cn.kv.put("where", "cn")
    sg.kv.put("where", "sg")
    assert cn.kv.get("where")[1]["Value"] == b"cn" and sg.kv.get("where")[1]["Value"] == b"sg"
    assert sorted(cn.catalog.datacenters()) == sorted([DC, OTHER_DC])
    lost = consul.Consul(port=server.port, dc="dc2")
    for call in (lambda: lost.kv.get("where"), lambda: lost.catalog.services(),
                 lambda: lost.session.create()):
        with pytest.raises(consul.ConsulException, match="No path to datacenter"):
            call()


def test_acl_token_is_required_when_configured() -> None:
    core = ConsulCore(["dc1"], acl_token="s3cret")
    try:
        with ConsulServer(core) as srv:
            with pytest.raises(consul.ACLPermissionDenied):
                consul.Consul(port=srv.port).kv.get("x")
            with pytest.raises(consul.ACLPermissionDenied):
                consul.Consul(port=srv.port, token="wrong").kv.put("x", "1")
            ok = consul.Consul(port=srv.port, token="s3cret")
            assert ok.kv.put("x", "1") and ok.kv.get("x")[1]["Value"] == b"1"
            assert requests.get(srv.address + "/", timeout=5).ok  # the agent root stays open
    finally:
        core.close()


def test_status_self_members_and_write_methods(server: ConsulServer, client: consul.Consul) -> None:
    assert client.status.leader() == "127.0.0.1:8300"
    assert client.status.peers() == ["127.0.0.1:8300"]
    assert client.agent.self()["Config"]["Datacenter"] == DC
    assert client.agent.members()[0]["Status"] == 1
    assert requests.get(f"{server.address}/v1/session/create", timeout=5).status_code == 405
    r = requests.get(f"{server.address}/v1/catalog/services", timeout=5)
    assert r.headers["X-Consul-KnownLeader"] == "true" and int(r.headers["X-Consul-Index"]) >= 1


def test_agent_http_check_against_the_agent_itself_passes(server: ConsulServer, client: consul.Consul) -> None:
    client.agent.check.register("self", consul.Check.http(server.address + "/", "100ms"))
    wait_until(lambda: client.agent.checks()["self"]["Status"] == "passing")


def test_standalone_process_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator.sandbox.consul", "--host", "127.0.0.1", "--port", str(port),
         "--datacenter", "cn-north-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.getcwd())
    try:
        c = consul.Consul(port=port, dc="cn-north-1")
        deadline = time.monotonic() + 10
        while True:
            try:
                assert c.kv.put("up", "yes")
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        index, _ = c.kv.get("up")
        blocked = threading.Thread(target=lambda: c.kv.get("up", index=index, wait="10m"), daemon=True)
        blocked.start()
        wait_until(lambda: c.agent.metrics()["Gauges"] and {
            g["Name"]: g["Value"] for g in c.agent.metrics()["Gauges"]}.get(
                "consul.rpc.queries_blocking") == 1)
        proc.send_signal(signal.SIGTERM)
        # a pending blocking query (held for 10 minutes) does not hold shutdown
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
