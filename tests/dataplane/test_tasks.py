"""Item 1: every task is a real HTTP server on loopback; Marathon's health checks and the
registrator's Consul checks are real probes of it.

Facts: Marathon-level health checks "begin immediately when a task is launched"; a check
passes on an HTTP code "between 200 and 399 inclusive" within ``timeoutSeconds``; failures
are ignored within ``gracePeriodSeconds`` or until the task is healthy once; "if a task
fails more than maxConsecutiveFailures health checks consecutively, that task is killed"
(mesosphere/marathon docs/docs/health-checks.md; DC/OS "Marathon Health Checks").
gliderlabs/registrator registers an HTTP check from ``SERVICE_CHECK_HTTP`` (path) and
``SERVICE_CHECK_INTERVAL``, which Consul's agent runs against the service's address.
"""

from __future__ import annotations

from tests.dataplane.conftest import REGION, app, deploy, http, wait_for


def _alive(marathon, app_id):
    return [r["alive"] for t in marathon.app_tasks(app_id) for r in t["healthCheckResults"]]


def test_a_task_answers_its_identity_at_its_host_port(world):
    slot = world.slot(cidr="10.61.0.0/16")
    deploy(slot, app("/shop/web", instances=2))
    tasks = slot.marathon.app_tasks("/shop/web")
    version = slot.marathon.get_app("/shop/web")["version"]
    agents = {a["InstanceId"]: a for a in slot.agents}
    for task in tasks:
        endpoint = world.endpoint(slot, task["host"], task["ports"][0])
        assert endpoint is not None and endpoint.host == "127.0.0.1"
        body = http().get(endpoint.url + "/", timeout=5).json()
        agent = agents[task["slaveId"]]
        assert body == {"app": "/shop/web", "task": task["id"], "slot": "blue",
                        "ami": agent["ImageId"], "version": version,
                        "group": slot.group}
        assert http().get(endpoint.url + "/health", timeout=5).status_code == 200
    # tasks of one agent listen on distinct loopback ports
    assert len({world.endpoint(slot, t["host"], t["ports"][0]) for t in tasks}) == 2


def test_marathon_health_follows_the_task_endpoint_and_kills_a_failing_task(world):
    slot = world.slot(cidr="10.62.0.0/16")
    deploy(slot, app("/web", instances=1))
    assert _alive(slot.marathon, "/web") == [True]
    first = slot.marathon.app_tasks("/web")[0]
    endpoint = world.endpoint(slot, first["host"], first["ports"][0])

    slot.marathon.set_health("/web", "unhealthy")  # the task's /health now answers 503
    assert http().get(endpoint.url + "/health", timeout=5).status_code == 503
    wait_for(lambda: _alive(slot.marathon, "/web") == [False])
    result = slot.marathon.app_tasks("/web")[0]["healthCheckResults"][0]
    assert "503" in result["lastFailureCause"]
    # three failures in a row: Marathon kills the task and starts another
    wait_for(lambda: all(t["id"] != first["id"] for t in slot.marathon.app_tasks("/web")))
    assert world.endpoint(slot, first["host"], first["ports"][0]) != endpoint or \
        wait_for(lambda: world.endpoint(slot, first["host"], first["ports"][0]) != endpoint)

    slot.marathon.set_health("/web", "healthy")
    wait_for(lambda: _alive(slot.marathon, "/web") == [True])


def test_consul_checks_pass_and_fail_from_real_probes(world):
    slot = world.slot(cidr="10.63.0.0/16")
    deploy(slot, app("/api", instances=2, env={"SERVICE_NAME": "api", "SERVICE_TAGS": "t1"}))
    dc = world.consul.dc(REGION)

    def statuses():
        _, entries = dc.health_service("api", ["t1"], False)
        return sorted(c["Status"] for e in entries for c in e["Checks"]
                      if c["CheckID"].startswith("service:"))

    wait_for(lambda: statuses() == ["passing", "passing"])
    _, entries = dc.health_service("api", ["t1"], False)
    check = next(c for c in entries[0]["Checks"] if c["CheckID"].startswith("service:"))
    task = next(t for t in slot.marathon.app_tasks("/api") if t["id"] == entries[0]["Service"]["ID"])
    assert check["Type"] == "http"  # Consul probes the task's private address (mapped)
    stored = dc.checks[(check["Node"], check["CheckID"])]
    assert stored.target == f"http://{task['host']}:{task['ports'][0]}/health"
    slot.marathon.set_health("/api", "unhealthy")
    wait_for(lambda: "critical" in statuses())
    slot.marathon.set_health("/api", "healthy")
    wait_for(lambda: statuses() == ["passing", "passing"])


def test_the_address_book_answers_over_http_where_a_task_listens(world):
    slot = world.slot(cidr="10.64.0.0/16")
    deploy(slot, app("/lookup/web", instances=1))
    task = slot.marathon.app_tasks("/lookup/web")[0]
    session = http()
    url = world.plane.lookup.url
    found = session.get(url, params={"ip": task["host"], "port": task["ports"][0],
                                     "region": REGION}, timeout=5).json()
    mine = [e for e in found if e["network"] == slot.vpc]
    assert len(mine) == 1
    endpoint = world.endpoint(slot, task["host"], task["ports"][0])
    assert (mine[0]["host"], mine[0]["endpoint_port"]) == (endpoint.host, endpoint.port)
    body = session.get(f"http://{mine[0]['host']}:{mine[0]['endpoint_port']}/", timeout=5).json()
    assert body["task"] == task["id"]
    every = session.get(url, timeout=5).json()
    assert mine[0] in every and len(every) >= len(found)
    assert session.get(url, params={"port": "x"}, timeout=5).status_code == 400
    assert session.get(url.replace("/addresses", "/"), timeout=5).status_code == 404
