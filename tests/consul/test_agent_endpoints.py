"""Agent endpoints through py-consul: reload, metrics, leave, force-leave, monitor, tokens,
and node-level checks.

Sources: hashicorp/consul agent/agent_endpoint.go (AgentReload, AgentMetrics, AgentLeave,
AgentForceLeave, AgentMonitor, AgentToken, AgentRegisterCheck), agent/http.go (a
CodeWithPayloadError without a payload answers 200 with the reason in X-Consul-Reason),
logging/logfile.go (ValidateLogLevel), serf's handleNodeLeaveIntent, consul/api
MetricsInfo, and py-consul's own tests against real Consul (tests/api/test_agent.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import consul
import pytest
import requests

from rotator.sandbox.consul import ConsulCore, ConsulServer
from tests.consul.conftest import DC


@pytest.fixture
def acl_server() -> Iterator[ConsulServer]:
    core = ConsulCore(["dc1"], acl_token="root-secret")
    with ConsulServer(core) as srv:
        yield srv
    core.close()


def test_reload_answers_200(client: consul.Consul) -> None:
    assert client.agent.reload() is True


def test_metrics_json_shape_and_http_samples(client: consul.Consul, server: ConsulServer) -> None:
    client.kv.put("a/b", "1")
    client.kv.get("a/b")
    metrics = client.agent.metrics()
    assert set(metrics) == {"Timestamp", "Gauges", "Points", "Counters", "Samples"}
    assert metrics["Timestamp"].endswith(" +0000 UTC")
    gauges = {g["Name"]: g for g in metrics["Gauges"]}
    assert gauges["consul.consul.state.kv_entries"]["Value"] == 1.0
    assert set(gauges["consul.runtime.num_goroutines"]) == {"Name", "Value", "Labels"}
    http = {(s["Labels"]["method"], s["Labels"]["path"]): s for s in metrics["Samples"]
            if s["Name"] == "consul.api.http"}
    sample = http[("PUT", "v1.kv._")]  # key names are replaced by "_" in the path label
    assert set(sample) == {"Name", "Count", "Rate", "Sum", "Min", "Max", "Mean", "Stddev", "Labels"}
    assert sample["Count"] == 1 and ("GET", "v1.kv._") in http


def test_prometheus_metrics_need_retention(client: consul.Consul, server: ConsulServer) -> None:
    # Without telemetry.prometheus_retention_time Consul answers 200, empty, with the reason
    # in a header (py-consul's test asserts a str comes back).
    assert client.agent.metrics(format_prometheus=True) == ""
    r = requests.get(f"{server.address}/v1/agent/metrics?format=prometheus", timeout=5)
    assert r.headers["X-Consul-Reason"] == "Prometheus is not enabled since its retention time is not positive"
    core = ConsulCore(["dc1"], prometheus=True)
    try:
        with ConsulServer(core) as srv:
            text = consul.Consul(port=srv.port).agent.metrics(format_prometheus=True)
            assert "# TYPE consul_consul_state_nodes gauge" in text
    finally:
        core.close()


def test_leave_answers_then_the_agent_is_gone() -> None:
    core = ConsulCore(["dc1"])
    try:
        srv = ConsulServer(core).start()
        c = consul.Consul(port=srv.port)
        assert c.agent.leave() is True
        assert srv.stopped.wait(5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{srv.address}/v1/status/leader", timeout=2)
        assert core.dc().membership.local.to_json()["Status"] == 3  # left
        srv.stop()
    finally:
        core.close()


def test_force_leave_moves_a_failed_member_out_and_prune_forgets_it(core: ConsulCore,
                                                                    client: consul.Consul) -> None:
    dc = core.dc(DC)
    for name, address in (("agent-a", "10.0.2.1"), ("agent-b", "10.0.2.2")):
        dc.register_node(name, address)  # agents on those hosts join the LAN pool
        dc.register_service({"ID": f"web-{name}", "Name": "web", "Port": 80}, node=name)

    def statuses() -> dict[str, int]:
        return {m["Name"]: m["Status"] for m in client.agent.members()}

    assert statuses()["agent-a"] == 1
    assert client.agent.force_leave("agent-a") is True  # alive: the member refutes it
    assert statuses()["agent-a"] == 1
    dc.fail_member("agent-a")
    assert statuses()["agent-a"] == 4
    _, checks = client.health.node("agent-a")
    assert [(c["CheckID"], c["Status"]) for c in checks if c["CheckID"] == "serfHealth"] == [
        ("serfHealth", "critical")]
    assert client.agent.force_leave("agent-a") is True
    assert statuses()["agent-a"] == 3  # left...
    assert [n["Node"]["Node"] for n in client.health.service("web")[1]] == ["agent-b"]  # ...and gone
    dc.fail_member("agent-b")
    assert client.agent.force_leave("agent-b", prune=True) is True
    assert "agent-b" not in statuses()
    assert client.agent.force_leave("never-heard-of") is True  # serf ignores unknown names


def test_monitor_validates_the_level_and_streams_lines(core: ConsulCore) -> None:
    with ConsulServer(core) as srv:
        c = consul.Consul(port=srv.port)
        with pytest.raises(consul.exceptions.BadRequest, match="Unknown log level: verbose"):
            c.agent.monitor(loglevel="verbose")
        body: dict[str, str] = {}
        reader = threading.Thread(target=lambda: body.update(text=c.agent.monitor(loglevel="err")),
                                  daemon=True)
        json_body: dict[str, str] = {}
        json_reader = threading.Thread(
            target=lambda: json_body.update(text=c.agent.monitor(loglevel="debug", logjson=True)),
            daemon=True)
        reader.start()
        json_reader.start()
        assert core.log.wait_for_monitors(2, timeout=5)
        core.log.emit("ERROR", "agent", "Check is now critical", check="x")
        c.agent.service.register("web", service_id="web-1")
    # Stopping the agent ends the streams; the client returns what it read.
    reader.join(5)
    json_reader.join(5)
    assert "[ERROR] agent: Check is now critical: check=x" in body["text"]
    assert "Synced service" not in body["text"]  # INFO is below ERR
    lines = [json.loads(line) for line in json_body["text"].splitlines() if line]
    assert {"@level": "info", "@message": "Synced service", "@module": "agent",
            "service": "web-1"}.items() <= lines[-1].items()


def test_agent_tokens_without_acls(client: consul.Consul) -> None:
    with pytest.raises(consul.ACLDisabled, match="ACL support disabled"):
        client.agent.token.set_default("some-secret")


def test_agent_tokens_with_acls(acl_server: ConsulServer) -> None:
    root = consul.Consul(port=acl_server.port, token="root-secret")
    anonymous = consul.Consul(port=acl_server.port)
    with pytest.raises(consul.ACLPermissionDenied):
        anonymous.agent.token.set_default("root-secret")
    with pytest.raises(consul.ACLPermissionDenied):
        anonymous.kv.get("x")
    for setter in ("set_agent", "set_agent_recovery", "set_replication",
                   "set_config_file_service_registration"):
        assert getattr(root.agent.token, setter)(f"{setter}-secret") is True
    r = requests.put(f"{acl_server.address}/v1/agent/token/bogus", json={"Token": "x"},
                     headers={"X-Consul-Token": "root-secret"}, timeout=5)
    assert (r.status_code, r.text) == (404, 'Token "bogus" is unknown')
    # The recovery token opens the agent's own endpoints, nothing else.
    recovery = consul.Consul(port=acl_server.port, token="set_agent_recovery-secret")
    assert recovery.agent.services() == {}
    with pytest.raises(consul.ACLPermissionDenied):
        recovery.kv.get("x")
    # The default token is what a request without one runs with.
    assert root.agent.token.set_default("root-secret") is True
    assert anonymous.kv.put("x", "1") is True


def test_check_without_service_id_is_a_node_check(client: consul.Consul) -> None:
    client.agent.service.register("web", service_id="web-1", check=consul.Check.ttl("1h"))
    client.agent.check.ttl_pass("service:web-1")
    assert len(client.health.service("web", passing=True)[1]) == 1
    assert client.agent.check.register("disk", consul.Check.ttl("1h")) is True
    check = client.agent.checks()["disk"]
    assert (check["ServiceID"], check["ServiceName"], check["Status"]) == ("", "", "critical")
    # a node check counts for every service instance on the node
    assert client.health.service("web", passing=True)[1] == []
    _, nodes = client.health.service("web")
    assert "disk" in {c["CheckID"] for c in nodes[0]["Checks"]}
    client.agent.check.ttl_pass("disk")
    assert len(client.health.service("web", passing=True)[1]) == 1
    # An unknown ServiceID is a 404 (py-consul returns False for it)
    assert client.agent.check.register("orphan", consul.Check.ttl("1h"), service_id="nope") is False
    assert "orphan" not in client.agent.checks()


def test_check_registration_errors(server: ConsulServer) -> None:
    url = f"{server.address}/v1/agent/check/register"
    r = requests.put(url, json={"TTL": "10s"}, timeout=5)
    assert (r.status_code, r.text) == (400, "Missing check name")
    r = requests.put(url, json={"Name": "x", "TTL": "10s", "Status": "sideways"}, timeout=5)
    assert (r.status_code, r.text) == (400, "Bad check status")
    r = requests.put(url, json={"Name": "x", "TTL": "10s", "ServiceID": "ghost"}, timeout=5)
    assert (r.status_code, r.text) == (404, 'ServiceID "ghost" does not exist')
