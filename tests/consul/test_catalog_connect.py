"""Catalog registration, service kinds, gateways, config entries, ``peer`` and
``merge-central-config`` through py-consul.

Sources: developer.hashicorp.com/consul/api-docs/catalog (Register Entity: SkipNodeUpdate,
TaggedAddresses; List Services for Gateway), api-docs/agent/service (Kind, Proxy,
Connect.SidecarService), api-docs/config; hashicorp/consul agent/structs/structs.go
(NodeService.Validate), agent/sidecar_service.go (sidecar defaults and checks),
agent/structs/config_entry_gateways.go (ingress listener rules), agent/configentry
(MergeServiceConfig); and py-consul's tests against real Consul (tests/api/test_catalog.py,
test_health.py, test_agent.py: an unknown peer reads as empty).
"""

from __future__ import annotations

import consul
import pytest
import requests

from rotator.sandbox.consul import ConsulCore, ConsulServer
from tests.consul.conftest import DC


def test_catalog_register_tagged_addresses_and_skip_node_update(client: consul.Consul) -> None:
    tagged = {"lan": "10.1.10.11", "wan": "10.1.10.21"}
    assert client.catalog.register("n-tagged", "10.1.10.11", service={"service": "s-tagged"},
                                   tagged_addresses=tagged) is True
    _, node = client.catalog.node("n-tagged")
    assert node["Node"]["TaggedAddresses"] == tagged
    assert list(node["Services"]) == ["s-tagged"]
    # SkipNodeUpdate: the service entry is updated, the node record is left as it was
    assert client.catalog.register("n-tagged", "10.9.9.9", service={"service": "s-tagged", "port": 81},
                                   skip_node_update=True) is True
    _, node = client.catalog.node("n-tagged")
    assert node["Node"]["Address"] == "10.1.10.11" and node["Node"]["TaggedAddresses"] == tagged
    assert node["Services"]["s-tagged"]["Port"] == 81
    # ...but a node that does not exist yet is still created
    assert client.catalog.register("n-new", "", service={"service": "s2"}, skip_node_update=True)
    assert client.catalog.node("n-new")[1]["Node"]["Node"] == "n-new"
    # without TaggedAddresses a catalog node has none (agents fill theirs in themselves)
    client.catalog.register("n-plain", "10.1.10.12")
    assert client.catalog.node("n-plain")[1]["Node"]["TaggedAddresses"] is None
    assert client.health.node("n-plain")[1] == []  # no agent there: no serfHealth either


def test_catalog_register_errors_and_static_checks(server: ConsulServer, client: consul.Consul) -> None:
    r = requests.put(f"{server.address}/v1/catalog/register", json={"Node": "n1"}, timeout=5)
    assert (r.status_code, r.text) == (500, "Must provide address if SkipNodeUpdate is not set")
    check = {"Node": "n1", "CheckID": "service:s1", "Name": "s1 check", "ServiceID": "s1",
             "Status": "warning", "Definition": {"TCP": "10.0.0.1:80", "Interval": "5s"}}
    assert client.catalog.register("n1", "10.0.0.1", service={"service": "s1", "id": "s1"},
                                   check=check)
    _, checks = client.health.checks("s1")
    # a catalog check is an entry, not something the agent runs: it keeps what was written
    assert [(c["CheckID"], c["Status"], c["Type"]) for c in checks] == [("service:s1", "warning", "tcp")]


def test_connect_proxy_registration(client: consul.Consul, server: ConsulServer) -> None:
    url = f"{server.address}/v1/agent/service/register"
    r = requests.put(url, json={"Name": "web-proxy", "Kind": "connect-proxy", "Port": 20000},
                     timeout=5)
    assert (r.status_code, r.text) == (400, "Validation failed: 1 error occurred:\n\t* Proxy."
                                            "DestinationServiceName must be non-empty for Connect "
                                            "proxy services\n\n")
    r = requests.put(url, json={"Name": "web-proxy", "Kind": "connect-proxy",
                                "Proxy": {"DestinationServiceName": "web"}}, timeout=5)
    assert r.status_code == 400 and "* Port or SocketPath must be set for a connect-proxy" in r.text
    client.agent.service.register("web", service_id="web-1", port=8080)
    assert client.agent.service.register(
        "web-proxy", service_id="web-proxy-1", port=20000, kind="connect-proxy",
        proxy={"DestinationServiceName": "web", "DestinationServiceID": "web-1",
               "LocalServicePort": 8080, "Upstreams": [{"DestinationName": "db", "LocalBindPort": 9191}]})
    proxy = client.agent.services()["web-proxy-1"]
    assert proxy["Kind"] == "connect-proxy"
    assert proxy["Proxy"]["DestinationServiceName"] == "web"
    assert proxy["Proxy"]["Upstreams"][0]["LocalBindPort"] == 9191
    assert "Proxy" not in client.agent.services()["web-1"]
    # the Connect-capable instances of web are its proxies
    assert [n["Service"]["ID"] for n in client.health.connect("web")[1]] == ["web-proxy-1"]
    assert [s["ServiceID"] for s in client.catalog.connect("web")[1]] == ["web-proxy-1"]
    assert client.health.connect("api")[1] == []
    # Proxy fields filter like any other
    _, nodes = client.health.service("web-proxy", filter_expr="Service.Proxy.Upstreams.DestinationName == db")
    assert len(nodes) == 1


def test_sidecar_service_registration(client: consul.Consul) -> None:
    assert client.agent.service.register("foo_connect", port=8080, tags=["v1"],
                                         connect={"sidecar_service": {}}) is True
    services = client.agent.services()
    sidecar = services["foo_connect-sidecar-proxy"]
    assert (sidecar["Service"], sidecar["Kind"], sidecar["Port"], sidecar["Tags"]) == (
        "foo_connect-sidecar-proxy", "connect-proxy", 21000, ["v1"])
    assert {k: sidecar["Proxy"][k] for k in ("DestinationServiceName", "DestinationServiceID",
                                             "LocalServiceAddress", "LocalServicePort")} == {
        "DestinationServiceName": "foo_connect", "DestinationServiceID": "foo_connect",
        "LocalServiceAddress": "127.0.0.1", "LocalServicePort": 8080}
    checks = client.agent.checks()
    listening = checks["service:foo_connect-sidecar-proxy:1"]
    aliasing = checks["service:foo_connect-sidecar-proxy:2"]
    assert (listening["Name"], listening["Type"], listening["Interval"]) == (
        "Connect Sidecar Listening", "tcp", "10s")
    assert (aliasing["Name"], aliasing["Type"]) == ("Connect Sidecar Aliasing foo_connect", "alias")
    # the alias check follows the service it aliases
    assert aliasing["Status"] == "passing"
    client.agent.check.register("foo-ttl", consul.Check.ttl("1h"), service_id="foo_connect")
    assert client.agent.checks()["service:foo_connect-sidecar-proxy:2"]["Status"] == "critical"
    # a second sidecar gets the next free port; deregistering the parent removes its sidecar
    client.agent.service.register("bar", port=8081, connect={"sidecar_service": {}})
    assert client.agent.services()["bar-sidecar-proxy"]["Port"] == 21001
    assert client.agent.service.deregister("foo_connect") is True
    assert set(client.agent.services()) == {"bar", "bar-sidecar-proxy"}


def test_gateways_and_gateway_services(client: consul.Consul, server: ConsulServer) -> None:
    assert client.catalog.gateway_services("ingress-gateway-1") == []
    r = requests.put(f"{server.address}/v1/agent/service/register",
                     json={"Name": "tgw", "Kind": "terminating-gateway"}, timeout=5)
    assert r.status_code == 400 and "Port must be non-zero for a terminating-gateway" in r.text
    assert client.agent.service.register("tgw", port=8443, kind="terminating-gateway")
    assert client.catalog.register("n-gw", "10.1.10.51",
                                   service={"service": "ingress-gateway-1", "kind": "ingress-gateway"})
    assert client.catalog.service("ingress-gateway-1")[1][0]["ServiceKind"] == "ingress-gateway"
    assert client.config.set("ingress-gateway", "ingress-gateway-1", {
        "Listeners": [{"Port": 8080, "Protocol": "http",
                       "Services": [{"Name": "web", "Hosts": ["web.example.com"]}, {"Name": "api"}]},
                      {"Port": 9000, "Services": [{"Name": "db"}]}]}) is True
    services = client.catalog.gateway_services("ingress-gateway-1")
    assert [(s["Service"]["Name"], s["Port"], s["Protocol"]) for s in services] == [
        ("api", 8080, "http"), ("db", 9000, "tcp"), ("web", 8080, "http")]
    assert services[2]["Hosts"] == ["web.example.com"]
    assert {s["GatewayKind"] for s in services} == {"ingress-gateway"}
    assert client.config.set("terminating-gateway", "tgw", {
        "Services": [{"Name": "billing", "CAFile": "/etc/ca.pem", "SNI": "billing.internal"}]})
    (linked,) = client.catalog.gateway_services("tgw")
    assert (linked["GatewayKind"], linked["CAFile"], linked["SNI"]) == (
        "terminating-gateway", "/etc/ca.pem", "billing.internal")
    # Listener rules are checked by the ConfigEntry.Apply RPC (a plain error: 500).
    with pytest.raises(consul.ConsulException, match="Multiple services per listener are only "
                                                     "supported for L7 protocols"):
        client.config.set("ingress-gateway", "bad", {
            "Listeners": [{"Port": 1111, "Protocol": "tcp", "Services": [{"Name": "a"}, {"Name": "b"}]}]})


def test_config_entries_crud_and_cas(client: consul.Consul, server: ConsulServer) -> None:
    assert client.config.get("service-defaults", "web") is None  # 404
    r = requests.get(f"{server.address}/v1/config/service-defaults/web", timeout=5)
    assert (r.status_code, r.text) == (404, 'Config entry not found for "service-defaults" / "web"')
    assert client.config.set("service-defaults", "web", {"Protocol": "HTTP"}, cas=0) is True
    entry = client.config.get("service-defaults", "web")
    assert (entry["Kind"], entry["Name"], entry["Protocol"]) == ("service-defaults", "web", "http")
    assert client.config.set("service-defaults", "web", {"Protocol": "grpc"}, cas=0) is False
    assert client.config.set("service-defaults", "web", {"Protocol": "grpc"},
                             cas=entry["ModifyIndex"]) is True
    assert [e["Name"] for e in client.config.list("service-defaults")] == ["web"]
    r = requests.put(f"{server.address}/v1/config", json={"Kind": "bogus", "Name": "x"}, timeout=5)
    assert (r.status_code, r.text) == (400, "Request decoding failed: invalid config entry kind: bogus")
    with pytest.raises(consul.ConsulException, match='invalid name \\("x"\\), only "global" is supported'):
        client.config.set("proxy-defaults", "x", {})
    assert client.config.delete("service-defaults", "web") is True
    assert client.config.list("service-defaults") == []


def test_unknown_peer_reads_as_empty(core: ConsulCore, client: consul.Consul) -> None:
    client.agent.service.register("foo", service_id="foo:1", check=consul.Check.ttl("10s"))
    index, nodes = client.health.service("foo", peer="non-existent-peer")
    assert nodes == [] and int(index) >= 1
    assert client.catalog.service("foo", peer="unknown-peer")[1] == []
    assert client.catalog.connect("foo", peer="unknown-peer")[1] == []
    assert [n["Service"]["ID"] for n in client.health.service("foo")[1]] == ["foo:1"]


def test_merge_central_config_with_service_defaults(client: consul.Consul) -> None:
    client.agent.service.register("web", service_id="web-1", port=8080,
                                  connect={"sidecar_service": {"proxy": {"config": {"bind_port": 1}}}})
    assert client.config.set("proxy-defaults", "global", {"Config": {"local_connect_timeout_ms": 1000,
                                                                     "bind_port": 2},
                                                          "MeshGateway": {"Mode": "local"}})
    assert client.config.set("service-defaults", "web", {"Protocol": "http"})
    _, plain = client.health.service("web-sidecar-proxy")
    assert plain[0]["Service"]["Proxy"]["Config"] == {"bind_port": 1}
    _, merged = client.health.service("web-sidecar-proxy", merge_central_config=True)
    proxy = merged[0]["Service"]["Proxy"]
    # defaults fill only what the registration left unset
    assert proxy["Config"] == {"local_connect_timeout_ms": 1000, "bind_port": 1, "protocol": "http"}
    assert proxy["MeshGateway"] == {"Mode": "local"}
    _, catalog = client.catalog.service("web-sidecar-proxy", merge_central_config=True)
    assert catalog[0]["ServiceProxy"]["Config"]["protocol"] == "http"
    # a typical service is left as registered
    _, web = client.health.service("web", merge_central_config=True)
    assert web[0]["Service"]["ID"] == "web-1" and "Config" not in web[0]["Service"]["Proxy"]


def test_agent_registered_in_process_is_a_member(core: ConsulCore, client: consul.Consul) -> None:
    core.dc(DC).register_node("10.0.3.7", "10.0.3.7")
    assert {m["Name"] for m in client.agent.members()} == {core.dc(DC).node_name, "10.0.3.7"}


def test_standalone_datacenter_has_its_own_config() -> None:
    core = ConsulCore(["a", "b"])
    try:
        with ConsulServer(core) as srv:
            a = consul.Consul(port=srv.port, dc="a")
            b = consul.Consul(port=srv.port, dc="b")
            a.config.set("service-defaults", "web", {"Protocol": "http"})
            assert b.config.get("service-defaults", "web") is None
    finally:
        core.close()
