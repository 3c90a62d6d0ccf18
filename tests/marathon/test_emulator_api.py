"""The emulator's REST API, driven by the PyPI marathon client over real HTTP."""

from __future__ import annotations

import json
import time

import pytest
import requests
from marathon.models import MarathonApp, MarathonDeployment, MarathonGroup, MarathonInfo

from rotator.apps.marathon_compat import ConflictError, MarathonHttpError, NotFoundError

from .conftest import ManualClock, Served, wait_until


def wait_idle(client, timeout: float = 5.0) -> None:
    wait_until(lambda: not client.list_deployments(), timeout)


def web(instances: int = 2, **extra) -> MarathonApp:
    return MarathonApp(cmd="python3 -m http.server $PORT0", instances=instances, cpus=0.1, mem=64,
                       health_checks=[{"protocol": "HTTP", "path": "/health"}],
                       labels={"rotator.slot": "green"}, **extra)


def test_ping_info_leader_parse_with_client_models(marathon: Served) -> None:
    c = marathon.client
    assert c.ping() == b'"pong"'
    assert requests.get(marathon.url + "/ping").text == "pong"
    info = c.get_info()
    assert isinstance(info, MarathonInfo) and info.version == "1.6.322"
    assert info.marathon_config.hostname == "127.0.0.1" and info.zookeeper_config.zk_max_versions == 50
    assert c.get_leader() == {"leader": "127.0.0.1:8080"}
    r = requests.get(marathon.url + "/v2/info")
    assert r.headers["X-Marathon-Leader"] == "http://127.0.0.1:8080"
    assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"


def test_create_shows_one_deployment_then_tasks_healthy(marathon: Served) -> None:
    c = marathon.client
    created = c.create_app("/prod/web", web(instances=5))
    assert created.id == "/prod/web" and len(created.deployments) == 1
    deps = c.list_deployments()
    assert len(deps) == 1 and isinstance(deps[0], MarathonDeployment)
    assert deps[0].affected_apps == ["/prod/web"]
    # the new definition is visible at once, tasks catch up
    assert c.get_app("/prod/web").instances == 5
    wait_idle(c)
    app = c.get_app("/prod/web")  # a plain get embeds tasks
    assert (app.tasks_running, app.tasks_healthy, len(app.tasks)) == (5, 5, 5)
    task = app.tasks[0]
    assert task.host.endswith(".sandbox.internal") and task.ports and task.ports[0] >= 31000
    assert task.health_check_results[0].alive is True
    assert task.id.startswith("prod_web.instance-") and task.id.endswith("._app.1")
    assert app.port_definitions[0].port >= 10000  # port 0 became a service port
    with pytest.raises(ConflictError):
        c.create_app("/prod/web", web())


def test_health_results_empty_until_first_check(serve) -> None:
    clock = ManualClock()
    m = serve(step_seconds=0.3, clock=clock)
    m.client.create_app("/slow", web(instances=1))
    clock.advance(0.45)  # running (one step), first check not yet (two steps)
    (task,) = m.client.list_tasks("/slow")
    assert task.state == "TASK_RUNNING" and task.health_check_results == []
    app = m.client.get_app("/slow")
    assert (app.tasks_running, app.tasks_healthy, app.tasks_unhealthy) == (1, 0, 0)


def test_update_scale_restart_delete(marathon: Served) -> None:
    c = marathon.client
    c.create_app("/prod/web", web(instances=2))
    wait_idle(c)
    first = c.get_app("/prod/web")
    result = c.update_app("/prod/web", MarathonApp(cmd="sleep 1000"))
    assert set(result) == {"version", "deploymentId"}
    assert c.get_app("/prod/web").cmd == "sleep 1000"  # visible at once
    wait_idle(c)
    after = c.get_app("/prod/web")
    assert {t.id for t in after.tasks}.isdisjoint({t.id for t in first.tasks})  # replaced
    assert after.version_info.last_config_change_at > first.version_info.last_config_change_at

    c.scale_app("/prod/web", instances=4)
    wait_idle(c)
    scaled = c.get_app("/prod/web")
    assert scaled.tasks_running == 4
    assert {t.id for t in after.tasks} <= {t.id for t in scaled.tasks}  # scale keeps tasks
    assert scaled.version_info.last_config_change_at == after.version_info.last_config_change_at

    c.restart_app("/prod/web")
    wait_idle(c)
    restarted = c.get_app("/prod/web")
    assert restarted.tasks_running == 4
    assert {t.id for t in restarted.tasks}.isdisjoint({t.id for t in scaled.tasks})

    versions = c.list_versions("/prod/web")
    assert len(versions) == 4 and c.get_version("/prod/web", versions[-1]).cmd.startswith("python3")
    c.delete_app("/prod/web", force=True)
    with pytest.raises(NotFoundError):
        c.get_app("/prod/web")  # gone at once; tasks are killed by the deployment
    wait_idle(c)
    assert c.list_tasks() == []


def test_rollback_app_to_version(marathon: Served) -> None:
    c = marathon.client
    c.create_app("/svc", web(instances=1))
    wait_idle(c)
    v1 = c.list_versions("/svc")[0]
    c.update_app("/svc", MarathonApp(cmd="sleep 5"))
    wait_idle(c)
    c.rollback_app("/svc", v1)
    assert c.get_app("/svc").cmd.startswith("python3")
    with pytest.raises(NotFoundError):
        c.rollback_app("/svc", "2001-01-01T00:00:00.000Z")


def test_double_slashes_and_relative_ids(marathon: Served) -> None:
    c = marathon.client
    c.create_app("/a/b", web(instances=0))
    assert requests.get(marathon.url + "/v2/apps//a//b/").json()["app"]["id"] == "/a/b"
    assert c.get_app("/a/b").id == "/a/b"  # the client itself sends /v2/apps//a/b


def test_group_put_stops_unlisted_apps(serve) -> None:
    c = serve(step_seconds=0.2).client
    g = MarathonGroup(id="/stage", apps=[MarathonApp(id="api", cmd="a", instances=1),
                                         MarathonApp(id="worker", cmd="w", instances=2)])
    assert set(c.create_group(g)) == {"version", "deploymentId"}
    wait_idle(c)
    assert len(c.list_tasks()) == 3
    c.update_group("/stage", MarathonGroup(apps=[MarathonApp(id="api", cmd="a", instances=1)]))
    assert [a.id for a in c.get_group("/stage").apps] == ["/stage/api"]
    (dep,) = c.list_deployments()
    assert dep.steps[0].actions[0].action == "StopApplication"
    assert dep.steps[0].actions[0].app == "/stage/worker"
    wait_idle(c)
    assert {t.app_id for t in c.list_tasks()} == {"/stage/api"}  # api was not restarted
    root = c.get_group("/")
    assert [g.id for g in root.groups] == ["/stage"]


def test_group_dry_run_scale_by_rollback_versions(marathon: Served) -> None:
    c = marathon.client
    url = marathon.url
    body = {"apps": [{"id": "a", "cmd": "x", "instances": 2}]}
    dry = requests.put(url + "/v2/groups/g?dryRun=true", json=body).json()
    assert dry == {"steps": [{"actions": [{"action": "StartApplication", "app": "/g/a"}]},
                             {"actions": [{"action": "ScaleApplication", "app": "/g/a"}]}]}
    with pytest.raises(NotFoundError):
        c.get_group("/g")  # dry run changed nothing
    requests.put(url + "/v2/groups/g", json=body).raise_for_status()
    wait_idle(c)
    before = requests.get(url + "/v2/groups/g/versions").json()
    assert isinstance(before, list) and before
    c.scale_group("/g", 1.5)
    assert c.get_app("/g/a").instances == 3
    wait_idle(c)
    r = requests.put(url + "/v2/groups/g", json={"version": before[0]})
    assert r.status_code == 200 and "Marathon-Deployment-Id" in r.headers
    assert c.get_app("/g/a").instances == 2
    # marathon-python's rollback_group calls an endpoint Marathon never had
    with pytest.raises(MarathonHttpError) as e:
        c.rollback_group("/g", before[0])
    assert e.value.status_code == 400
    r = requests.put(url + "/v2/groups/g", json={"version": "2001-01-01T00:00:00.000Z"})
    assert r.status_code == 422


def test_locked_app_conflict_and_force(serve) -> None:
    m = serve(step_seconds=0.2)
    c = m.client
    c.create_app("/locked", web(instances=1))
    with pytest.raises(ConflictError) as e:
        c.update_app("/locked", MarathonApp(cmd="other"))
    body = e.value  # the lock body names the running deployment
    (dep,) = c.list_deployments()
    assert dep.id in body.error_message
    raw = requests.put(m.url + "/v2/apps/locked", json={"cmd": "other"})
    assert raw.status_code == 409 and raw.json()["deployments"] == [{"id": dep.id}]
    assert c.get_app("/locked").cmd.startswith("python3")  # nothing changed
    forced = c.update_app("/locked", MarathonApp(cmd="other"), force=True)
    assert [d.id for d in c.list_deployments()] == [forced["deploymentId"]]
    assert c.get_app("/locked").cmd == "other"


def test_invalid_definitions_and_bad_json(marathon: Served) -> None:
    # RAML constraint violations are Play reader errors: 422 "Invalid JSON" (mesosphere/marathon
    # v1.6.322 api/MarathonExceptionMapper.scala, docs/docs/rest-api/public/api/v2/types/app.raml)
    url = marathon.url
    r = requests.post(url + "/v2/apps", json={"id": "/x", "cmd": "c", "upgradeStrategy": {
        "minimumHealthCapacity": 1.5, "maximumOverCapacity": 1}})
    assert r.status_code == 422
    assert r.json() == {"message": "Invalid JSON", "details": [
        {"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["error.max"]}]}
    r = requests.post(url + "/v2/apps", json={"id": "/Bad_Id", "cmd": "c"})
    assert r.status_code == 422 and r.json()["details"] == [{"path": "/id", "errors": ["error.pattern"]}]
    r = requests.put(url + "/v2/groups/g", json={"apps": [{"id": "ok", "cmd": "c"},
                                                         {"id": "bad", "cmd": "c", "cpus": -1}]})
    assert r.status_code == 422 and r.json()["details"] == [{"path": "/apps(1)/cpus", "errors": ["error.min"]}]
    r = requests.post(url + "/v2/apps", data=b'{"id": "/x",', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["message"] == "Invalid JSON"
    assert isinstance(r.json()["details"], str)
    r = requests.post(url + "/v2/apps", data=b"")
    assert r.status_code == 400 and r.json()["message"] == "Please specify data in JSON format"
    r = requests.get(url + "/v2/nothing")
    assert r.status_code == 404 and r.json() == {"message": "URI not found: /v2/nothing"}
    assert marathon.client.list_apps() == []


def test_cancel_deployment_with_and_without_force(serve) -> None:
    m = serve(step_seconds=0.2)
    c = m.client
    created = c.create_app("/c1", web(instances=1))
    (dep,) = created.deployments
    revert = c.delete_deployment(dep.id)
    assert set(revert) == {"deploymentId", "version"} and revert["deploymentId"] != dep.id
    with pytest.raises(NotFoundError):
        c.get_app("/c1")  # reverted: the app did not exist before
    wait_idle(c)
    assert c.list_tasks() == []

    created = c.create_app("/c2", web(instances=1))
    assert c.delete_deployment(created.deployments[0].id, force=True) == {}
    assert c.list_deployments() == []
    assert c.get_app("/c2").instances == 1  # no revert: the app stays
    with pytest.raises(NotFoundError):
        c.delete_deployment("no-such-id")


def test_kill_tasks_replaced_or_scaled(marathon: Served) -> None:
    c = marathon.client
    c.create_app("/k", web(instances=3))
    wait_idle(c)
    tasks = c.list_tasks("/k")
    assert c.kill_given_tasks([tasks[0].id]) is True
    killed = c.kill_task("/k", tasks[1].id)
    assert killed.id == tasks[1].id
    killed_ids = {tasks[0].id, tasks[1].id}
    wait_until(lambda: len(ts := c.list_tasks("/k")) == 3 and killed_ids.isdisjoint(
        {t.id for t in ts}))
    after = c.list_tasks("/k")
    assert len(after) == 3 and {tasks[0].id, tasks[1].id}.isdisjoint({t.id for t in after})
    c.kill_task("/k", after[0].id, scale=True)
    assert c.get_app("/k").instances == 2
    wait_idle(c)
    assert len(c.list_tasks("/k")) == 2
    r = requests.post(marathon.url + "/v2/tasks/delete", json={"ids": ["garbage"]})
    assert r.status_code == 400 and r.json()["message"] == "Invalid task id 'garbage'."


def test_queue_and_unique_constraint(serve) -> None:
    clock = ManualClock()
    c = serve(clock=clock).client
    c.create_app("/u", MarathonApp(cmd="x", instances=4, constraints=[["hostname", "UNIQUE"]]))
    clock.advance(0.2)
    (item,) = c.list_queue()  # three agents: the fourth task has nowhere to go
    assert item.app.id == "/u" and item.count == 1
    assert len({t.host for t in c.list_tasks("/u")}) == 3
    assert len(c.list_deployments()) == 1
    c.reset_delay("/u")
    with pytest.raises(NotFoundError):
        c.reset_delay("/nothing")


def test_label_and_id_filters(marathon: Served) -> None:
    c = marathon.client
    c.create_app("/prod/web-blue", MarathonApp(cmd="x", instances=0, labels={"rotator.slot": "blue"}))
    c.create_app("/prod/web-green", MarathonApp(cmd="x", instances=0, labels={"rotator.slot": "green"}))
    assert [a.id for a in c.list_apps(label="rotator.slot==green")] == ["/prod/web-green"]
    assert [a.id for a in c.list_apps(app_id="blue")] == ["/prod/web-blue"]
    assert len(c.list_apps(embed_tasks=True, embed_counts=True, embed_deployments=True)) == 2


def test_sandbox_health_controls_over_http(marathon: Served) -> None:
    c = marathon.client
    c.create_app("/h", web(instances=2))
    wait_idle(c)
    requests.post(marathon.url + "/_sandbox/apps/h/health", json={"mode": "unhealthy"}).raise_for_status()
    wait_until(lambda: c.get_app("/h").tasks_unhealthy == 2)
    app = c.get_app("/h")
    assert (app.tasks_healthy, app.tasks_unhealthy) == (0, 2)
    requests.post(marathon.url + "/_sandbox/apps/h/health", json={"mode": "flapping"}).raise_for_status()
    seen = set()
    deadline = time.monotonic() + 2
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(c.get_app("/h").tasks_healthy)
        time.sleep(0.02)
    assert {0, 2} <= seen
    bad = requests.post(marathon.url + "/_sandbox/apps/h/health", json={"mode": "sideways"})
    assert bad.status_code == 422


def test_unavailable_answers_503_then_recovers(serve) -> None:
    clock = ManualClock()
    marathon = serve(clock=clock)
    requests.post(marathon.url + "/_sandbox/unavailable", json={"seconds": 0.3}).raise_for_status()
    r = requests.get(marathon.url + "/v2/apps")
    assert r.status_code == 503
    clock.advance(0.29)
    assert requests.get(marathon.url + "/v2/apps").status_code == 503
    clock.advance(0.02)
    assert requests.get(marathon.url + "/v2/apps").status_code == 200
    stats = requests.get(marathon.url + "/_sandbox/stats").json()
    assert stats["by_route"]["GET /v2/apps"] == 3


def test_step_time_control(serve) -> None:
    clock = ManualClock()
    marathon = serve(clock=clock)
    r = requests.post(marathon.url + "/_sandbox/step", json={"seconds": 0.5})
    assert r.json()["step_seconds"] == 0.5 and marathon.emulator.step_seconds == 0.5
    marathon.client.create_app("/s", MarathonApp(cmd="x", instances=1))
    clock.advance(0.49)
    assert len(marathon.client.list_deployments()) == 1
    assert json.loads(requests.get(marathon.url + "/v2/deployments").text)[0]["currentStep"] == 2
