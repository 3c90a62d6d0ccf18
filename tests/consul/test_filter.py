"""``?filter=`` on every endpoint that takes it, through py-consul, as Consul answers.

Grammar and semantics: hashicorp/go-bexpr v0.1.2 (the version Consul builds with),
``grammar.peg``, ``validate.go``, ``evaluate.go``; selectors and operators per endpoint:
the Filtering tables of developer.hashicorp.com/consul/api-docs/{health,catalog,agent/service,
agent/check} and developer.hashicorp.com/consul/api-docs/features/filtering.
"""

from __future__ import annotations

import consul
import pytest
import requests

from rotator.sandbox.consul import ConsulCore, ConsulServer
from tests.consul.conftest import DC

EVALUATOR = "Failed to create boolean expression evaluator: "


@pytest.fixture
def fleet(core: ConsulCore, client: consul.Consul) -> consul.Consul:
    """web on two nodes (blue with a failing check, green passing) and api on the agent."""
    dc = core.dc(DC)
    dc.register_node("node-a", "10.0.1.10", meta={"rack": "r1", "slot": "blue"})
    dc.register_node("node-b", "10.0.1.11", meta={"rack": "r2", "slot": "green"})
    dc.register_service({"ID": "web-blue", "Name": "web", "Tags": ["blue", "v1"], "Port": 8080,
                         "Meta": {"version": "1.0"},
                         "Check": {"CheckID": "web-blue-http", "TTL": "1h", "Status": "critical"}},
                        node="node-a")
    dc.register_service({"ID": "web-green", "Name": "web", "Tags": ["green", "v2"], "Port": 8081,
                         "Meta": {"version": "2.0"},
                         "Check": {"CheckID": "web-green-http", "TTL": "1h", "Status": "passing"}},
                        node="node-b")
    client.agent.service.register("api", service_id="api-1", port=9000, tags=["internal"],
                                  meta={"team": "core"}, check=consul.Check.ttl("1h"))
    return client


def ids(nodes: list[dict]) -> list[str]:
    return [n["Service"]["ID"] for n in nodes]


def test_health_service_selectors_and_operators(fleet: consul.Consul) -> None:
    # Service.Tags, Checks.Status, Node.Meta.<key>, Service.Meta.<key>, Service.Port;
    # source: api-docs/health "List Service Instances for Service" Filtering table.
    cases = {
        '"blue" in Service.Tags': ["web-blue"],
        "Service.Tags contains green": ["web-green"],
        '"v1" not in Service.Tags': ["web-green"],
        "Service.Tags not contains v2": ["web-blue"],
        'Checks.Status == "critical"': ["web-blue"],  # any check: lists are searched
        'Checks.Status != "passing"': ["web-blue"],
        "Node.Meta.rack == r2": ["web-green"],
        'Node.Meta["slot"] == "blue"': ["web-blue"],
        "Node.Meta.missing != x": ["web-blue", "web-green"],  # absent key: != holds
        "Node.Meta.missing == x": [],
        'Service.Meta.version matches "^2\\\\."': ["web-green"],
        'Service.ID not matches "green$"': ["web-blue"],
        "Service.Port == 8081": ["web-green"],
        "Service.Tags is not empty and Node.Meta is not empty": ["web-blue", "web-green"],
        "Service.Meta is empty": [],
        '"we" in Service.Service': ["web-blue", "web-green"],  # substring of a string field
        "not (Node.Meta.rack == r1 or Service.Port == 9)": ["web-green"],
        '(Node.Node == "node-a") and Service.EnableTagOverride == false': ["web-blue"],
    }
    for expression, expected in cases.items():
        assert ids(fleet.health.service("web", filter_expr=expression)[1]) == expected, expression
    # filter and ?passing compose
    assert ids(fleet.health.service("web", passing=True, filter_expr="Service.Port != 0")[1]) == [
        "web-green"]


def test_health_checks_node_and_state(fleet: consul.Consul) -> None:
    # HealthCheck selectors: api-docs/health "List Checks for Node/Service/State" tables.
    _, checks = fleet.health.checks("web", filter_expr='Node == "node-b"')
    assert [c["CheckID"] for c in checks] == ["web-green-http"]
    _, checks = fleet.health.node("node-a", filter_expr='ServiceName != ""')
    assert [c["CheckID"] for c in checks] == ["web-blue-http"]
    _, checks = fleet.health.node("node-a", filter_expr="ServiceName == \"\"")
    assert [c["CheckID"] for c in checks] == ["serfHealth"]
    _, checks = fleet.health.state("critical", filter_expr='"internal" in ServiceTags')
    assert [c["CheckID"] for c in checks] == ["service:api-1"]
    _, checks = fleet.health.state("any", filter_expr='CheckID == serfHealth and Node matches "node-"')
    assert sorted(c["Node"] for c in checks) == ["node-a", "node-b"]


def test_catalog_nodes_and_service(fleet: consul.Consul) -> None:
    # Node selectors (api-docs/catalog "List Nodes") and ServiceNode selectors ("List Nodes
    # for Service").
    _, nodes = fleet.catalog.nodes(filter_expr="Meta.slot == green")
    assert [n["Node"] for n in nodes] == ["node-b"]
    _, nodes = fleet.catalog.nodes(filter_expr='TaggedAddresses.lan == "10.0.1.10"')
    assert [n["Node"] for n in nodes] == ["node-a"]
    _, instances = fleet.catalog.service("web", filter_expr='ServiceMeta.version == "1.0"')
    assert [s["ServiceID"] for s in instances] == ["web-blue"]
    _, instances = fleet.catalog.service("web", filter_expr="NodeMeta.rack == r2 and ServicePort == 8081")
    assert [s["ServiceID"] for s in instances] == ["web-green"]
    _, services = fleet.catalog.services(filter_expr='"internal" in ServiceTags')
    assert services == {"api": ["internal"]}
    _, node = fleet.catalog.node("node-a", filter_expr='Service == "web"')
    assert list(node["Services"]) == ["web-blue"]


def test_agent_services_and_checks(fleet: consul.Consul) -> None:
    # AgentService selectors (api-docs/agent/service "List Services") and HealthCheck
    # selectors (api-docs/agent/check "List Checks").
    fleet.agent.service.register("api", service_id="api-2", port=9001, meta={"team": "edge"})
    assert list(fleet.agent.services(filter_expr="Meta.team == core")) == ["api-1"]
    assert sorted(fleet.agent.services(filter_expr='Service == "api"')) == ["api-1", "api-2"]
    assert list(fleet.agent.checks(filter_expr='ServiceID == "api-1"')) == ["service:api-1"]
    assert fleet.agent.checks(filter_expr="Status == passing") == {}


def test_malformed_filter_is_refused_with_consuls_message(fleet: consul.Consul, server: ConsulServer) -> None:
    # Consul answers 500 here: the error comes back from the servers' RPC and its HTTP layer
    # does not type it (hashicorp/consul#7338, whose report quotes this very text for "foo").
    with pytest.raises(consul.ConsulException) as err:
        fleet.agent.services(filter_expr="foo")
    assert str(err.value) == (f'500 {EVALUATOR}1:4 (3): no match found, expected: "!=", ".", '
                              '"==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]')
    # hashicorp/consul#9441: an unquoted dotted value is an invalid number literal
    with pytest.raises(consul.ConsulException, match='1:17 \\(16\\): rule "number": Invalid number literal'):
        fleet.catalog.nodes(filter_expr="Address == 10.10.10.10 ")
    bad = {
        "(Service.ID == a": '1:17 (16): rule "grouping": Unmatched parentheses',
        'Service.Meta[ == "x"': '1:15 (14): rule "index": Invalid index',
        'Service.ID == "open': '1:20 (19): rule "string": Unterminated string literal',
        '"x" in 1': '1:8 (7): rule "match": Invalid selector',
    }
    for expression, message in bad.items():
        r = requests.get(f"{server.address}/v1/health/service/web", params={"filter": expression},
                         timeout=5)
        assert (r.status_code, r.text) == (500, EVALUATOR + message), expression


def test_selectors_are_checked_against_the_listed_type(fleet: consul.Consul, server: ConsulServer) -> None:
    # go-bexpr v0.1.2 validate.go: unknown selectors, unsupported operators and values that
    # do not coerce to the field's type are refused when the filter is created.
    def error(path: str, expression: str) -> str:
        r = requests.get(f"{server.address}{path}", params={"filter": expression}, timeout=5)
        assert r.status_code == 500
        return r.text

    assert error("/v1/health/service/web", "Service.Nope == 1") == \
        EVALUATOR + 'Selector "Service.Nope" is not valid'
    assert error("/v1/catalog/service/web", "ServiceTags == x") == \
        EVALUATOR + 'Invalid match operator "Equal" for selector "ServiceTags"'
    assert error("/v1/agent/services", 'Port == "http"') == \
        EVALUATOR + 'Failed to coerce value "http" for selector "Port": strconv.ParseInt: parsing "http": invalid syntax'
    assert error("/v1/catalog/nodes", "Meta is empty and Address matches \"(\"").startswith(
        EVALUATOR + 'Failed to compile regular expression "("')
    # /v1/agent/checks builds its filter without a type: a bad selector fails only once
    # there is a check to run it on, and without the evaluator prefix.
    assert error("/v1/agent/checks", "Nope == 1") == 'Selector "Nope" is not valid'


def test_agent_checks_bad_selector_passes_without_checks() -> None:
    core = ConsulCore(["dc1"])
    try:
        with ConsulServer(core) as srv:
            assert consul.Consul(port=srv.port).agent.checks(filter_expr="Nope == 1") == {}
    finally:
        core.close()
