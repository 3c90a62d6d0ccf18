"""Event stream, fleet routing through an HTTP proxy, and the standalone command."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import requests
from marathon.models.events import (
    MarathonDeploymentInfo,
    MarathonDeploymentSuccess,
    MarathonEventStreamAttached,
    MarathonHealthStatusChangedEvent,
    MarathonStatusUpdateEvent,
)

from rotator.apps.marathon import MarathonDeployer, wait_until_deployed
from rotator.apps.marathon_compat import MarathonClient
from rotator.sandbox.marathon import Agent, MarathonEmulator, MarathonFleet, ServerThread

from .conftest import Served


def test_event_stream_parsed_by_the_client(marathon: Served) -> None:
    events: queue.Queue = queue.Queue()

    def listen() -> None:
        try:
            for event in marathon.client.event_stream():
                events.put(event)
        except requests.RequestException:
            pass  # the server stopped at teardown

    threading.Thread(target=listen, daemon=True).start()
    first = events.get(timeout=5)
    assert isinstance(first, MarathonEventStreamAttached)
    body = {"id": "/ev", "cmd": "x", "instances": 1, "healthChecks": [{"protocol": "TCP"}]}
    requests.post(marathon.url + "/v2/apps", json=body).raise_for_status()
    seen: list = []
    deadline = time.monotonic() + 5
    while not any(isinstance(e, MarathonDeploymentSuccess) for e in seen):
        assert time.monotonic() < deadline
        seen.append(events.get(timeout=5))
    types = [e.event_type for e in seen]
    assert {"api_post_event", "group_change_success", "deployment_info", "status_update_event",
            "health_status_changed_event", "deployment_step_success",
            "deployment_success"} <= set(types)
    info = next(e for e in seen if isinstance(e, MarathonDeploymentInfo))
    assert info.plan.target.apps[0]["id"] == "/ev"
    running = [e for e in seen if isinstance(e, MarathonStatusUpdateEvent)
               and e.task_status == "TASK_RUNNING"]
    assert running and running[0].app_id == "/ev" and running[0].host.endswith(".sandbox.internal")
    health = next(e for e in seen if isinstance(e, MarathonHealthStatusChangedEvent))
    assert health.alive is True


def test_event_type_filter(marathon: Served) -> None:
    r = requests.get(marathon.url + "/v2/events", params={"event_type": "deployment_success"},
                     headers={"Accept": "text/event-stream"}, stream=True, timeout=5)
    lines = r.iter_lines()
    assert next(lines).startswith(b"event: event_stream_attached")
    requests.post(marathon.url + "/v2/apps", json={"id": "/f", "cmd": "x", "instances": 1})
    kinds = []
    while b"event: deployment_success" not in kinds:
        line = next(lines)
        if line.startswith(b"event: "):
            kinds.append(line)
    r.close()
    assert kinds == [b"event: deployment_success"]  # nothing else got through the filter


def _fleet(emulators: dict[str, MarathonEmulator]) -> ServerThread:
    return ServerThread(MarathonFleet(emulators.get, lambda: list(emulators.values())))


def test_fleet_routes_by_host_through_a_proxy() -> None:
    slots = {
        "10.0.3.7:8080": MarathonEmulator([Agent("i-1", "10.0.3.10")], step_seconds=0.05),
        "10.0.4.7:8080": MarathonEmulator([Agent("i-2", "10.0.4.10")], step_seconds=0.05),
    }
    with _fleet(slots) as proxy:
        session = requests.Session()
        session.trust_env = False
        session.proxies = {"http": proxy}
        blue = MarathonClient("http://10.0.3.7:8080", session=session, timeout=5)
        green = MarathonClient("http://10.0.4.7:8080", session=session, timeout=5)
        blue.create_app("/web", _app())
        assert [a.id for a in blue.list_apps()] == ["/web"]
        assert green.list_apps() == []
        r = session.get("http://10.0.9.9:8080/v2/apps")
        assert r.status_code == 502 and "10.0.9.9:8080" in r.json()["message"]
        # the adapter, given the proxy, deploys and waits through the event stream
        deployer = MarathonDeployer(proxy=proxy)
        ids = deployer.start("http://10.0.4.7:8080", [{"id": "/api", "cmd": "x", "instances": 2}])
        wait_until_deployed(deployer, "http://10.0.4.7:8080", ids, 5)
        (h,) = deployer.health("http://10.0.4.7:8080", ["/api"])
        assert h.ok and h.running == 2
        assert {t.host for t in green.list_tasks()} == {"10.0.4.10"}
        assert slots["10.0.4.7:8080"].requests["GET /v2/events"] >= 1


def test_fleet_accepts_origin_form_with_host_header() -> None:
    em = MarathonEmulator(step_seconds=0.05)
    with _fleet({"10.1.0.5:8080": em}) as url:
        r = requests.get(url + "/v2/apps", headers={"Host": "10.1.0.5:8080"})
        assert r.status_code == 200 and r.json() == {"apps": []}


def _app():
    from marathon.models import MarathonApp

    return MarathonApp(cmd="x", instances=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_standalone_command_serves_then_stops_on_sigterm() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator.sandbox.marathon", "--host", "127.0.0.1", "--port",
         str(port), "--agents", "2", "--step-seconds", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(url + "/ping", timeout=1).text == "pong":
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        client = MarathonClient(url)
        client.create_app("/one", _app())
        assert client.list_apps()[0].id == "/one"
        assert client.get_info().leader == f"127.0.0.1:{port}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
