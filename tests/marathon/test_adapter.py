"""MarathonDeployer against the emulator over real HTTP."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
import requests

from rotator.apps.marathon import (
    MarathonDeployer,
    group_body,
    validate_app_definition,
    wait_until_deployed,
)
from rotator.errors import InputError, StepFailed, TransientError

from .conftest import Served

APPS = Path(__file__).parent / "apps"


def realistic() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(APPS.glob("*.json"))]


@pytest.mark.parametrize("strategy", ["group", "apps"])
def test_realistic_apps_deploy_and_become_healthy(serve, strategy: str) -> None:
    m = serve(step_seconds=0.5)  # slow enough that the deployments are still running below
    deployer = MarathonDeployer(strategy=strategy)
    apps = realistic()
    ids = deployer.start(m.url, apps)
    assert len(ids) == (1 if strategy == "group" else len(apps))
    assert set(deployer.pending(m.url, ids, wait=0)) == set(ids)  # still running
    wait_until_deployed(deployer, m.url, ids, deadline_seconds=10)
    app_ids = ["/prod/api", "/prod/edge", "/prod/jobs/scheduler", "/prod/worker"]
    health = {h.app_id: h for h in deployer.health(m.url, app_ids)}
    assert all(h.ok for h in health.values()), health
    assert (health["/prod/api"].wanted, health["/prod/api"].healthy) == (2, 2)
    assert health["/prod/worker"].has_health_checks is False
    assert health["/prod/worker"].running == 3
    assert deployer.report_unhealthy(m.url, app_ids) == []
    edge = m.client.get_app("/prod/edge")
    assert edge.dependencies == ["/prod/api"] and len(edge.tasks[0].ports) == 2
    api = m.client.get_app("/prod/api")
    assert api.container.docker.image == "registry.internal/prod/api:1.4.2"
    assert api.labels["rotator.service"] == "api"


def test_group_body_nests_sub_groups() -> None:
    root, body = group_body(realistic())
    assert root == "/prod"
    assert [a["id"] for a in body["apps"]] == ["/prod/api", "/prod/edge", "/prod/worker"]
    assert body["groups"][0]["id"] == "/prod/jobs"
    assert [a["id"] for a in body["groups"][0]["apps"]] == ["/prod/jobs/scheduler"]


def test_redeploy_replaces_and_removed_fields_do_not_survive(marathon: Served) -> None:
    deployer = MarathonDeployer(strategy="apps")
    app = {"id": "/svc", "cmd": "run", "instances": 1,
           "healthChecks": [{"protocol": "TCP"}], "env": {"A": "1"}}
    wait_until_deployed(deployer, marathon.url, deployer.start(marathon.url, [app]), 5)
    wait_until_deployed(deployer, marathon.url,
                        deployer.start(marathon.url, [{"id": "/svc", "cmd": "run2"}]), 5)
    svc = marathon.client.get_app("/svc")
    assert svc.cmd == "run2" and svc.health_checks == [] and svc.env == {}


@pytest.mark.parametrize("patch, field", [
    ({"upgradeStrategy": {"minimumHealthCapacity": 1.5}}, "/upgradeStrategy/minimumHealthCapacity"),
    ({"upgradeStrategy": {"maximumOverCapacity": -0.1}}, "/upgradeStrategy/maximumOverCapacity"),
    ({"id": "/Prod/Web"}, "/id"),
    ({"id": "/prod/web_1"}, "/id"),
    ({"instances": -1}, "/instances"),
    ({"instances": 1.5}, "/instances"),
    ({"cpus": "lots"}, "/cpus"),
    ({"mem": True}, "/mem"),
    ({"healthChecks": {"path": "/"}}, "/healthChecks"),
    ({"healthChecks": [{"protocol": "GOPHER"}]}, "/healthChecks(0)/protocol"),
    ({"healthChecks": [{"intervalSeconds": -5}]}, "/healthChecks(0)/intervalSeconds"),
])
def test_validate_app_definition_names_the_field(patch: dict, field: str) -> None:
    data = {"id": "/prod/web", "cmd": "run", **patch}
    with pytest.raises(InputError) as e:
        validate_app_definition(data, "groups/prd-cn/apps/web.json")
    assert e.value.field == field and e.value.file == "groups/prd-cn/apps/web.json"


def test_valid_definitions_pass() -> None:
    for data in realistic():
        validate_app_definition(data, "x.json")
    validate_app_definition({"id": "/a.b/c-d/..", "cmd": "x", "instances": 0}, "x.json")


def test_server_side_422_becomes_input_error_naming_app_and_path(marathon: Served) -> None:
    deployer = MarathonDeployer()
    apps = [{"id": "/prod/ok", "cmd": "x"},
            {"id": "/prod/bad", "cmd": "x", "constraints": [["hostname", "SOMEWHERE"]]}]
    with pytest.raises(InputError) as e:
        deployer.start(marathon.url, apps)
    assert "/prod/bad" in str(e.value) and "/apps(1)/constraints(0)" in str(e.value)
    assert e.value.field == "/apps(1)/constraints(0)"
    assert marathon.client.list_apps() == []  # atomic: nothing was deployed


def test_conflict_waits_for_the_running_deployment(serve) -> None:
    m = serve(step_seconds=0.15)
    m.client._do_request("POST", "/v2/apps", data='{"id": "/prod/api", "cmd": "old", "instances": 1}')
    (running,) = m.client.list_deployments()
    deployer = MarathonDeployer(on_conflict="wait", poll_interval=0.05)
    t0 = time.monotonic()
    (dep,) = deployer.start(m.url, [{"id": "/prod/api", "cmd": "new", "instances": 1}])
    assert time.monotonic() - t0 >= 0.1  # it waited for the first deployment to finish
    assert running.id not in [d.id for d in m.client.list_deployments()]
    assert m.client.get_app("/prod/api").cmd == "new"
    wait_until_deployed(deployer, m.url, [dep], 5)


def test_conflict_forced(serve) -> None:
    m = serve(step_seconds=0.5)
    m.client._do_request("POST", "/v2/apps", data='{"id": "/prod/api", "cmd": "old", "instances": 1}')
    (running,) = m.client.list_deployments()
    (dep,) = MarathonDeployer(on_conflict="force").start(
        m.url, [{"id": "/prod/api", "cmd": "new", "instances": 1}])
    assert [d.id for d in m.client.list_deployments()] == [dep]


def test_conflict_wait_gives_up_after_its_timeout(serve) -> None:
    m = serve(step_seconds=0.2)
    m.client._do_request("POST", "/v2/apps", data='{"id": "/stuck", "cmd": "c", "instances": 1,'
                                                    '"healthChecks": [{"protocol": "TCP"}]}')
    m.emulator.set_health("/stuck", "unhealthy")
    deployer = MarathonDeployer(on_conflict="wait", conflict_timeout=0.3, poll_interval=0.05)
    with pytest.raises(StepFailed, match="stayed locked by deployment"):
        deployer.start(m.url, [{"id": "/stuck", "cmd": "d"}])


def test_stuck_deployment_cancelled_at_deadline_naming_the_app(marathon: Served) -> None:
    marathon.emulator.set_health("/prod/api", "unhealthy")
    deployer = MarathonDeployer()
    ids = deployer.start(marathon.url, realistic())
    readings: list[float] = []

    def clock() -> float:
        readings.append(time.monotonic())
        return readings[-1]
    with pytest.raises(StepFailed) as e:
        wait_until_deployed(deployer, marathon.url, ids, deadline_seconds=0.8, poll_interval=0.1,
                            clock=clock)
    assert readings[-1] - readings[0] >= 0.8  # given up once its deadline passed, on its clock
    msg = str(e.value)
    assert "/prod/api: 2/2 running, 0/2 healthy" in msg
    assert "/prod/worker" not in msg
    assert ids[0] not in [d.id for d in marathon.client.list_deployments()]
    # the revert removes what the cancelled deployment created
    assert marathon.client.list_apps() == []


def test_unavailable_marathon_survived_by_retries(marathon: Served, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    marathon.emulator.set_unavailable(0.6)
    deployer = MarathonDeployer("deployer", "s3cret-pw", backoff=0.1, max_backoff=0.3, attempts=10)
    ids = deployer.start(marathon.url, [{"id": "/a", "cmd": "x"}])
    assert len(ids) == 1
    assert marathon.emulator.requests["PUT /v2/groups"] >= 2  # the first answers were 503
    wait_until_deployed(deployer, marathon.url, ids, 5)

    marathon.emulator.set_unavailable(5)
    slept: list[float] = []
    quick = MarathonDeployer("deployer", "s3cret-pw", backoff=0.01, attempts=3, sleep=slept.append)
    with pytest.raises(TransientError) as e:
        quick.health(marathon.url, ["/a"])
    assert len(slept) == 2 and "503" in str(e.value)
    assert "s3cret-pw" not in str(e.value) and "s3cret-pw" not in caplog.text
    assert "s3cret-pw" not in repr(quick)


def test_pending_returns_early_on_event_stream(serve) -> None:
    m = serve(step_seconds=0.2)
    deployer = MarathonDeployer()
    ids = deployer.start(m.url, [{"id": "/e", "cmd": "x", "instances": 1}])
    answers: list = []
    waiting = threading.Thread(target=lambda: answers.append(deployer.pending(m.url, ids, wait=600)),
                               daemon=True)
    waiting.start()
    waiting.join(timeout=60)  # woken by the deployment's end (one 0.2 s step), not its 10 min
    assert not waiting.is_alive() and answers == [[]]
    assert m.emulator.requests["GET /v2/events"] == 1


def test_pending_polls_with_backoff_without_event_stream(serve) -> None:
    m = serve(step_seconds=0.2)
    slept: list[float] = []
    deployer = MarathonDeployer(use_events=False, poll_interval=0.1,
                                sleep=lambda s: (slept.append(s), time.sleep(s)))
    ids = deployer.start(m.url, [{"id": "/p", "cmd": "x", "instances": 1,
                                  "healthChecks": [{"protocol": "TCP"}]}])
    while deployer.pending(m.url, ids, wait=1):
        pass
    assert slept and slept[0] == 0.1
    assert m.emulator.requests["GET /v2/events"] == 0


def test_cancel_ignores_finished_deployments(marathon: Served) -> None:
    deployer = MarathonDeployer()
    deployer.cancel(marathon.url, ["0b7e6f7e-0000-0000-0000-000000000000"])
    r = requests.get(marathon.url + "/v2/deployments")
    assert r.json() == []
