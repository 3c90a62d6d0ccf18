"""App definitions are accepted and refused as Marathon 1.6 does, through the marathon client.

Sources (mesosphere/marathon at v1.6.322): the RAML types under
docs/docs/rest-api/public/api/v2/types/ (app.raml, healthCheck.raml, readinessCheck.raml,
network.raml, appContainer.raml, stringTypes.raml, numberTypes.raml) read by the generated
Play readers (project/src/main/scala/com/mesosphere/RamlTypeGenerator.scala: "error.min",
"error.path.missing", case-insensitive enums), api/MarathonExceptionMapper.scala and
api/RestResource.scala ("Invalid JSON" details), api/v2/validation/AppValidation.scala
(validateOldAppAPI, validateCanonicalAppAPI, readinessCheckValidator, portIndexIsValid),
api/v2/validation/SchedulingValidation.scala (constraint rules), api/v2/AppHelpers.scala
(order: old API check, translation, canonical check), state/PathId.scala (childOf) and
api/v2/json/AppDefinitionTest.scala / AppUpdateTest.scala for the message forms.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from marathon.models import MarathonApp, MarathonHealthCheck

from rotator.apps.marathon_compat import MarathonClient, MarathonHttpError

from .conftest import Served


def refused(client: MarathonClient, body: dict[str, Any], path: str = "/v2/apps",
            method: str = "POST") -> tuple[str, list[dict[str, Any]]]:
    with pytest.raises(MarathonHttpError) as err:
        client._do_request(method, path, data=json.dumps(body))
    assert err.value.status_code == 422
    return err.value.error_message, err.value.error_details


def app(**fields: Any) -> dict[str, Any]:
    return {"id": "/v/app", "cmd": "sleep 1000", "instances": 0, **fields}


def test_health_check_timeout_may_reach_its_interval(marathon: Served) -> None:
    # AppValidation has no timeout/interval rule for app health checks (healthCheck.raml does
    # not even give timeoutSeconds a minimum); the readiness check rule is separate.
    c = marathon.client
    check = MarathonHealthCheck(protocol="HTTP", path="/health", interval_seconds=10,
                                timeout_seconds=20)
    created = c.create_app("/hc/slow", MarathonApp(cmd="sleep 1000", instances=1,
                                                   health_checks=[check]))
    assert created.health_checks[0].timeout_seconds == 20
    c.create_app("/hc/equal", MarathonApp(cmd="sleep 1000", instances=0, health_checks=[
        MarathonHealthCheck(protocol="TCP", interval_seconds=5, timeout_seconds=5)]))
    assert c.get_app("/hc/equal").health_checks[0].timeout_seconds == 5


def test_readiness_check_timeout_must_be_below_its_interval(marathon: Served) -> None:
    body = app(portDefinitions=[{"port": 0, "name": "http-api"}],
               readinessChecks=[{"intervalSeconds": 10, "timeoutSeconds": 10}])
    message, details = refused(marathon.client, body)
    assert message == "Object is not valid"
    assert details == [{"path": "/readinessChecks(0)/timeoutSeconds",
                        "errors": ["got 10, expected less than 10"]}]
    body = app(readinessChecks=[{"portName": "admin"}])
    _, details = refused(marathon.client, body)
    assert details == [{"path": "/readinessChecks(0)/portName",
                        "errors": ["No port definition reference for portName admin"]}]


def test_json_reader_errors(marathon: Served) -> None:
    body = {"cmd": "", "cpus": "1", "instances": 1.5, "mem": -1, "disk": 0,
            "labels": {"team": 7}, "killSelection": "RANDOM",
            "healthChecks": [{"protocol": "SMTP", "gracePeriodSeconds": -1, "timeoutSeconds": -5}],
            "portDefinitions": [{"port": 70000, "name": "HTTP"}],
            "upgradeStrategy": {"minimumHealthCapacity": 1.5}}
    message, details = refused(marathon.client, body)
    assert message == "Invalid JSON"
    assert details == [
        {"path": "/id", "errors": ["error.path.missing"]},
        {"path": "/cmd", "errors": ["error.minLength"]},
        {"path": "/cpus", "errors": ["error.expected.jsnumber"]},
        {"path": "/healthChecks(0)/gracePeriodSeconds", "errors": ["error.min"]},
        {"path": "/healthChecks(0)/protocol", "errors": ["error.unknown.enum.literal"]},
        {"path": "/instances", "errors": ["error.expected.int"]},
        {"path": "/labels/team", "errors": ["error.expected.jsstring"]},
        {"path": "/mem", "errors": ["error.min"]},
        {"path": "/portDefinitions(0)/port", "errors": ["error.max"]},
        {"path": "/portDefinitions(0)/name", "errors": ["error.pattern"]},
        {"path": "/upgradeStrategy/maximumOverCapacity", "errors": ["error.path.missing"]},
        {"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["error.max"]},
        {"path": "/killSelection", "errors": ["error.unknown.enum.literal"]},
    ]
    # cpus has a RAML minimum of 0.001; ids follow the PathId pattern
    _, details = refused(marathon.client, app(id="/Bad_Id", cpus=0))
    assert details == [{"path": "/id", "errors": ["error.pattern"]},
                       {"path": "/cpus", "errors": ["error.min"]}]


def test_enum_literals_are_read_case_insensitively(marathon: Served) -> None:
    c = marathon.client
    c._do_request("POST", "/v2/apps", data=json.dumps(app(
        id="/v/lower", killSelection="oldest_first",
        healthChecks=[{"protocol": "tcp", "ipProtocol": "ipv4"}])))
    stored = c.get_app("/v/lower")  # stored with Marathon's spelling
    assert (stored.kill_selection, stored.health_checks[0].protocol) == ("OLDEST_FIRST", "TCP")


def test_accord_rules(marathon: Served) -> None:
    c = marathon.client
    cases: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        ({"id": "/v/both", "cmd": "run", "args": ["run"]},
         [{"path": "/", "errors": ["AppDefinition must either contain one of 'cmd' or 'args', "
                                   "and/or a 'container'."]}]),
        (app(constraints=[["hostname", "SOMEWHERE"], ["rack", "MAX_PER"], ["host", "unique", "x"]]),
         [{"path": "/constraints(0)", "errors": ["operator must be one of the following UNIQUE, "
                                                 "CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS"]},
          {"path": "/constraints(1)", "errors": ["MAX_PER requires an integer value"]},
          {"path": "/constraints(2)", "errors": ["UNIQUE does not accept a value"]}]),
        (app(portDefinitions=[{"port": 0}], healthChecks=[{"protocol": "HTTP", "portIndex": 1}]),
         [{"path": "/healthChecks(0)", "errors": [
             "Health check port indices must address an element of the ports array or "
             "container port mappings."]}]),
        (app(portDefinitions=[{"port": 10001, "name": "a"}, {"port": 10001, "name": "a"}]),
         [{"path": "/portDefinitions", "errors": ["Port names must be unique.",
                                                  "Ports must be unique."]}]),
        (app(healthChecks=[{"protocol": "HTTP", "ipProtocol": "IPv6"}]),
         [{"path": "/healthChecks(0)", "errors": [
             "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks"]}]),
        (app(instances=2, labels={"MARATHON_SINGLE_INSTANCE_APP": "true"},
             upgradeStrategy={"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}),
         [{"path": "/", "errors": ["Single instance app may only have one instance"]},
          {"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["got 0.5, expected 0.0"]}]),
        (app(gpus=1), [{"path": "/", "errors": [
            "Feature gpu_resources is not enabled. Enable with --enable_features gpu_resources)"]}]),
        (app(container={"type": "DOCKER", "docker": {"image": "x:1", "network": "HOST"}},
             networks=[{"mode": "host"}]),
         [{"path": "/", "errors": ["must not specify both container.docker.network and networks"]}]),
    ]
    for body, expected in cases:
        message, details = refused(c, body)
        assert (message, details) == ("Object is not valid", expected), body
    assert c.list_apps() == []
    # constraint operators are read case-insensitively
    c._do_request("POST", "/v2/apps", data=json.dumps(app(id="/v/ok", constraints=[["hostname", "unique"]])))
    assert c.get_app("/v/ok").constraints[0].operator == "UNIQUE"


def test_group_update_errors(marathon: Served) -> None:
    c = marathon.client
    body = {"apps": [{"id": "ok", "cmd": "sleep 1"}, {"id": "bad", "cmd": "sleep 1", "cpus": -1}]}
    message, details = refused(c, body, "/v2/groups/stage", "PUT")
    assert (message, details) == ("Invalid JSON", [{"path": "/apps(1)/cpus", "errors": ["error.min"]}])
    body = {"apps": [{"id": "/elsewhere/app", "cmd": "sleep 1"}]}
    message, details = refused(c, body, "/v2/groups/stage", "PUT")
    assert (message, details) == ("Object is not valid", [{
        "path": "/apps(0)/id", "errors": ["Identifier is not child of /stage. Hint: use relative paths."]}])
    message, details = refused(c, [{"id": "/a", "cpus": "many"}], "/v2/apps", "PUT")
    assert (message, details) == ("Invalid JSON", [{"path": "(0)/cpus", "errors": ["error.expected.jsnumber"]}])


def test_deprecated_docker_network_is_translated(marathon: Served) -> None:
    # AppNormalization.forDeprecated: container.docker.network moves to networks.
    c = marathon.client
    c._do_request("POST", "/v2/apps", data=json.dumps(app(
        id="/v/docker", cmd=None, container={"type": "DOCKER", "docker": {"image": "nginx:1", "network": "HOST"}},
        portDefinitions=[{"port": 0, "name": "http"}])))
    stored = c.get_app("/v/docker")
    assert stored.networks == [{"mode": "host"}]
    assert getattr(stored.container.docker, "network", None) is None
    # a later partial update of the stored app passes validation again
    c.update_app("/v/docker", MarathonApp(instances=1), force=True)
    assert c.get_app("/v/docker").instances == 1
