"""`rotate serve` against a sandbox of its own: its endpoints on loopback, the dashboard in
headless Chromium following a live canary (promote moves it on, abort rolls it back), and
a canary waiting for approval after a non-interactive run rolled back by the controller when
its candidate turns bad, under load, on the data plane."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import requests

from tests.e2e.conftest import ROTATE, wait_for
from tests.e2e.world_checks import OTHER
from tests.serve.browser import chromium_missing, chromium_page

pytestmark = pytest.mark.slow
needs_browser = pytest.mark.skipif(chromium_missing() is not None,
                                   reason=chromium_missing() or "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, **kw) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.get(url, timeout=10, **kw)


class Served(NamedTuple):
    url: str
    proc: subprocess.Popen
    log: Path


@pytest.fixture(scope="module")
def served(sandbox, tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "w")
    proc = subprocess.Popen([ROTATE, "serve", "--listen", f"127.0.0.1:{port}"],
                            cwd=sandbox.root, env=sandbox.env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return _get(f"{url}/healthz").status_code == 200
        except requests.ConnectionError:
            assert proc.poll() is None, open(log.name).read()
            return False
    wait_for(up, timeout=60)
    yield Served(url, proc, Path(log.name))
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
    log.close()


def canary_waiting(sandbox) -> tuple[dict, subprocess.CompletedProcess]:
    """A canary started without a terminal: it stops at the approval and exits 4."""
    ami = sandbox.bake()
    run = sandbox.rotate("prd-cn", "--ami", ami, "--policy", "canary-fast", "--yes")
    assert run.returncode == 4, run.stdout + run.stderr
    return sandbox.record(), run


def why(served: Served, sandbox) -> str:
    """What a failed wait shows: the rotation's record, and what `rotate serve` logged,
    ending with where each of its threads is (`kill -USR1`)."""
    rec = sandbox.record() or {}
    events = "\n".join(f"  {e.get('t')}: {e.get('msg')}" for e in rec.get("events", [])[-12:])
    served.proc.send_signal(signal.SIGUSR1)
    time.sleep(3)  # the dump is written by the signal handler, in its own time
    log = served.log.read_text().splitlines()[-150:]
    return (f"rotation {rec.get('id')} is {rec.get('status')} ({rec.get('reason')!r}), "
            f"last events:\n{events}\nrotate serve's log:\n" + "\n".join(log))


def settles(served: Served, sandbox, rotation_id: str, status: str,
            timeout: float = 240) -> dict:
    """The rotation's record once it stops moving; fails at once, saying why, when it
    stops anywhere but ``status``."""
    def stopped():
        rec = sandbox.record() or {}
        return rec.get("id") == rotation_id and rec.get("status") in (
            "done", "rolled-back", "paused", "rollback-failed") and rec
    try:
        rec = wait_for(stopped, timeout=timeout, interval=0.5)
    except AssertionError:
        raise AssertionError(f"not settled in {timeout} s: {why(served, sandbox)}") from None
    assert rec["status"] == status, why(served, sandbox)
    return rec


def wait_held(served: Served, sandbox, rotation_id: str) -> None:
    """Until `rotate serve`'s controller runs the rotation (it took it over, holds its lock)."""
    def held():
        controller = _get(f"{served.url}/api/groups/prd-cn").json().get("controller") or {}
        return controller.get("rotation_id") == rotation_id and controller.get("acting")
    try:
        wait_for(held, timeout=60)
    except AssertionError:
        raise AssertionError(f"not taken over in 60 s: {why(served, sandbox)}") from None


def test_serve_answers_on_loopback(served):
    url = served.url
    assert '<script src="/static/app.js"' in _get(f"{url}/").text
    groups = {g["name"]: g for g in _get(f"{url}/api/groups").json()}
    assert set(groups) == {"prd-cn", "prd-sg-master", "prd-sg-slave"}
    wait_for(lambda: _get(f"{url}/api/groups").json()[0]["live_read_at"], timeout=60)
    prd = {g["name"]: g for g in _get(f"{url}/api/groups").json()}["prd-cn"]
    assert prd["live_slot"] in ("blue", "green")
    assert prd["weights"]["edge"][prd["live_slot"]] == 100
    assert all(w[prd["live_slot"]] == 100 for w in prd["weights"]["dns"].values())
    metrics = _get(f"{url}/metrics").text
    assert "rotator_controller_up 1.0" in metrics
    assert f'rotator_edge_weight{{group="prd-cn",load_balancer="prd-cn-edge",slot="{prd["live_slot"]}"}} 100.0' in metrics
    history = _get(f"{url}/api/groups/prd-cn/history").json()
    assert history and history[0]["status"] == "done"


@needs_browser
def test_the_page_follows_a_canary_and_its_buttons_act(served, sandbox, tmp_path):
    url = served.url
    ami = sandbox.bake()
    with chromium_page() as page:
        page.goto(f"{url}/")
        page.wait_for_selector('[data-group="prd-cn"] .rotation')
        cli = sandbox.popen("prd-cn", "--ami", ami, "--policy", "canary-fast", "--yes")
        steps_done = page.locator('[data-group="prd-cn"] .steps li[data-step-status="done"]')
        seen: list[int] = []

        def advanced():  # what the page shows, pushed to it, never reloaded
            count = steps_done.count()
            if page.locator('[data-group="prd-cn"] [data-rotation-status="waiting"]').count():
                return True
            if not seen or count != seen[-1]:
                seen.append(count)
            return False
        wait_for(advanced, timeout=240, interval=0.1)
        assert cli.wait(timeout=60) == 4
        assert len([n for n in seen if n > 0]) >= 3, seen  # steps advanced one by one
        rotation_id = sandbox.record()["id"]
        wait_held(served, sandbox, rotation_id)

        page.on("dialog", lambda dialog: dialog.accept())
        page.click('[data-group="prd-cn"] button.promote')
        sent = page.wait_for_selector('[data-group="prd-cn"] .notice.ok', timeout=30_000)
        assert sent.inner_text() == "promote sent as dashboard@127.0.0.1"
        settles(served, sandbox, rotation_id, "done")
        page.wait_for_selector('[data-group="prd-cn"] [data-rotation-status="done"]',
                               timeout=60_000)
        assert "promoted by dashboard@127.0.0.1" in page.inner_text(
            '[data-group="prd-cn"] .history')
        page.screenshot(path=str(tmp_path / "dashboard-done.png"))
    record = sandbox.record()
    assert record["status"] == "done" and record["ami"] == ami
    assert record["operator_actions"][0]["via"] == "dashboard"


@needs_browser
def test_the_abort_button_rolls_a_waiting_canary_back(served, sandbox):
    url = served.url
    stable = sandbox.live_slot()
    record, _ = canary_waiting(sandbox)
    wait_held(served, sandbox, record["id"])
    with chromium_page() as page:
        page.goto(f"{url}/")
        page.wait_for_selector('[data-group="prd-cn"] [data-rotation-status="waiting"]')
        page.on("dialog", lambda dialog: dialog.accept())
        page.click('[data-group="prd-cn"] button.abort')
        sent = page.wait_for_selector('[data-group="prd-cn"] .notice.ok', timeout=30_000)
        assert sent.inner_text() == "abort sent as dashboard@127.0.0.1"
        settles(served, sandbox, record["id"], "rolled-back")
        page.wait_for_selector('[data-group="prd-cn"] [data-rotation-status="rolled-back"]',
                               timeout=60_000)
        assert "aborted by dashboard@127.0.0.1" in page.inner_text(
            '[data-group="prd-cn"] .history')
    assert sandbox.record()["status"] == "rolled-back"
    assert sandbox.live_slot() == stable


def test_a_waiting_canary_turning_bad_is_rolled_back_by_the_controller_under_load(
        served, sandbox):
    url = served.url
    stable = sandbox.live_slot()
    candidate = OTHER[stable]
    record, _ = canary_waiting(sandbox)
    wait_held(served, sandbox, record["id"])

    load: dict = {}

    def run_load():  # bounded: 15 requests a second for 50 s, loopback only
        out = subprocess.run([ROTATE, "sandbox", "load", "www.rotator-demo.cn", "--rps", "15",
                              "--duration", "50s", "--clients", "10", "--output", "json"],
                             cwd=sandbox.root, env=sandbox.env, capture_output=True, text=True,
                             timeout=180, stdin=subprocess.DEVNULL)
        load.update(json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr})
    loader = threading.Thread(target=run_load, daemon=True)
    loader.start()

    def stable_serves_load():  # seen in CloudWatch, as the dashboard's chart sees it
        slots = _get(f"{url}/api/groups/prd-cn/traffic").json()["slots"]
        return sum((slots.get(stable) or {}).get("requests", [0])[-2:]) > 0
    wait_for(stable_serves_load, timeout=90, interval=1.0)

    sandbox.set_app_health("prd-cn", candidate, "/prd/web", "unhealthy")
    rolled = settles(served, sandbox, record["id"], "rolled-back")
    assert "health gate failed" in rolled["reason"], rolled["reason"]
    approval = next(s for s in rolled["steps"] if s["kind"] == "approve")
    assert approval["status"] == "failed"  # judged while it waited, by the controller
    assert not rolled["operator_actions"]  # nobody pressed anything
    assert sandbox.live_slot() == stable
    loader.join(timeout=180)
    assert "error" not in load, load
    assert load["requests"] > 0 and load["by_slot"].get(stable), load
    started, ended = load["started_at"], load["started_at"] + load["elapsed_s"]
    rollback_at = next(e["t"] for e in rolled["events"] if e["msg"].startswith("rolling back"))
    assert started <= rollback_at <= ended  # the rollback happened under the load
    assert served.proc.poll() is None
