"""The dashboard's HTTP side, served by a real uvicorn on loopback: pages, the JSON API, the
event stream, /metrics, the buttons' controls, tokens, CSRF, and no secret anywhere."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from rotator.environment import Environment, NotifyEnv
from rotator.errors import InputError
from rotator.serve import serve
from rotator.serve.app import create_app
from rotator.serve.auth import Access
from rotator.serve.feed import FileChangeFeed
from rotator.serve.service import ServeSettings, Service
from rotator.state.file_store import FileRecordStore
from tests.engine_harness import GROUP, PROJECT, policy
from tests.fake_aws import client_error
from tests.fakes import FakeWorld
from tests.serve.browser import chromium_missing, chromium_page
from tests.serve.harness import Served, back_at_the_approval, fake_engine, fake_runner, wait_for

SECRETS = {
    "CN_CONSUL_TOKEN": "consul-token-5f1e0c",
    "CN_AWS_SECRET_ACCESS_KEY": "aws-secret-9Qx7Lm2Kp",
    "PRD_CN_MARATHON_PASSWORD": "marathon-pass-77ab",
}
HOOK_SECRET = "hook-secret-3c9d81"
SERVE_TOKEN = "serve-token-b4d2e6a1"


class NoCharts:
    def series(self, group):
        return {"group": group, "period": 60, "start": 0, "end": 3600, "error": "",
                "slots": {"blue": {"requests": [1.0, 5.0, 3.0], "errors": [0.0, 1.0, 0.0]}}}


def live_data(group: str) -> dict:
    """What rotator.status.group_status answers, with a secret where a careless error
    message could put one."""
    return {
        "group": group, "environment": "test", "live_slots": ["blue"],
        "records": {"rotator-demo.cn./www.rotator-demo.cn./CNAME": {"blue": 100, "green": 0}},
        "edge": {"load_balancer": "prd-cn-edge", "weights": {"blue": 100, "green": 0},
                 "targets": {"blue": [{"ip": "10.1.0.10", "state": "healthy"}], "green": []}},
        "slots": {"blue": {"ami": "ami-00000001",
                           "apps": {"/prd/web": {"running": 2, "healthy": 2, "wanted": 2,
                                                 "ok": True}}},
                  "green": {"ami": None, "apps_error":
                            f"ConnectionError: http://admin:{SECRETS['PRD_CN_MARATHON_PASSWORD']}"
                            "@10.2.0.5:8080/v2/apps refused"}},
    }


@pytest.fixture
def world():
    w = FakeWorld()
    w.seed_live("blue")
    return w


@pytest.fixture
def setup(tmp_path, world, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    store = FileRecordStore(tmp_path / "state")
    env = Environment(name="test", notify=NotifyEnv(
        urls=[f"json://127.0.0.1:9/hooks/{HOOK_SECRET}"]))
    return store, env


def start(setup, world, *, token=None, loopback=True):
    store, env = setup
    service = Service(PROJECT, env, store, ServeSettings(token=token, sweep_every=0.2),
                      feed=FileChangeFeed(store.root, [GROUP.name], interval=0.01),
                      runner=fake_runner(world, store, policy("canary")), live_reader=live_data,
                      charts=NoCharts(), groups=[GROUP.name], send=lambda t, n: True)
    served = Served(create_app(service, Access(token, loopback_only=loopback)))
    return service, served


@pytest.fixture
def served(setup, world):
    service, srv = start(setup, world)
    yield service, srv
    srv.close()


def browser(srv) -> tuple[requests.Session, str]:
    """A page's session: its cookie and the CSRF token only a same-origin page can read."""
    s = requests.Session()
    s.trust_env = False
    csrf = s.get(f"{srv.url}/api/session", timeout=5).json()["csrf"]
    return s, csrf


def post(s, srv, path, csrf=None, **headers):
    if csrf is not None:
        headers["X-Rotator-CSRF"] = csrf
    return s.post(f"{srv.url}{path}", json={}, headers=headers, timeout=10)


def test_the_page_the_api_and_metrics(served, world, setup):
    service, srv = served
    store, _ = setup
    fake_engine(world, store, policy("canary")).start("ami-0123abcd")  # waits for approval
    wait_for(lambda: service.controller.holding() and back_at_the_approval(store, GROUP.name))
    page = requests.get(f"{srv.url}/", timeout=5)
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert requests.get(f"{srv.url}/static/app.js", timeout=5).status_code == 200

    groups = requests.get(f"{srv.url}/api/groups", timeout=5).json()
    assert [g["name"] for g in groups] == ["prd-cn"]
    wait_for(lambda: requests.get(f"{srv.url}/api/groups", timeout=5).json()[0]["live_read_at"])
    g = requests.get(f"{srv.url}/api/groups", timeout=5).json()[0]
    assert g["live_slot"] == "blue" and g["ami"] == "ami-00000001"
    assert g["weights"]["edge"] == {"blue": 100, "green": 0}
    assert g["rotation"]["status"] == "waiting" and g["rotation"]["waiting_approval"]

    detail = requests.get(f"{srv.url}/api/groups/prd-cn", timeout=5).json()
    assert detail["targets"]["blue"] == [{"ip": "10.1.0.10", "state": "healthy"}]
    assert detail["controller"]["reason"] == "waiting for approval"
    kinds = [s["kind"] for s in detail["rotation"]["steps"]]
    assert kinds[:4] == ["provision", "deploy", "verify", "shift"]
    assert {v["verdict"] for v in detail["rotation"]["gates"]} == {"passed", "pending"}
    history = requests.get(f"{srv.url}/api/groups/prd-cn/history", timeout=5).json()
    assert history[0]["status"] == "waiting" and history[0]["kind"] == "rotation"
    assert requests.get(f"{srv.url}/api/groups/nope", timeout=5).status_code == 404

    svg = requests.get(f"{srv.url}/api/groups/prd-cn/traffic.svg", timeout=5)
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<polyline" in svg.text

    metrics = requests.get(f"{srv.url}/metrics", timeout=5).text
    for line in ('rotator_controller_up 1.0', 'rotator_controller_holding{group="prd-cn"} 1.0',
                 'rotator_rotations_unfinished{group="prd-cn",status="waiting"} 1.0',
                 'rotator_rotations_total{group="prd-cn",outcome="done"} 0.0',
                 'rotator_edge_weight{group="prd-cn",load_balancer="prd-cn-edge",slot="blue"} 100.0',
                 'rotator_gate_verdicts_total{group="prd-cn",verdict="passed"} 3.0'):
        assert line in metrics, line
    assert "rotator_step_duration_seconds_bucket" in metrics


def test_promote_and_abort_act_through_the_control_channel(served, world, setup):
    service, srv = served
    store, _ = setup
    record = fake_engine(world, store, policy("canary")).start("ami-0123abcd")
    wait_for(lambda: service.controller.holding())
    s, csrf = browser(srv)
    answer = post(s, srv, "/api/groups/prd-cn/promote", csrf)
    assert answer.status_code == 202, answer.text
    assert answer.json()["by"] == "dashboard@127.0.0.1"
    wait_for(lambda: store.load(GROUP.name)["status"] == "done")
    action = store.load(GROUP.name)["operator_actions"][0]
    assert (action["by"], action["via"], action["outcome"]) == (
        "dashboard@127.0.0.1", "dashboard", "approved approval")
    assert record.id == store.load(GROUP.name)["id"]

    again = post(s, srv, "/api/groups/prd-cn/promote", csrf)
    assert again.status_code == 409 and "has no unfinished rotation" in again.json()["error"]


@pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")
def test_a_press_on_promote_survives_the_card_being_redrawn(served, world, setup):
    """Every pushed change redraws the card: a button pressed while that happens still
    acts, on the rotation shown then (a replaced button would swallow the click)."""
    service, srv = served
    store, _ = setup
    record = fake_engine(world, store, policy("canary")).start("ami-0123abcd")
    wait_for(lambda: service.controller.holding())
    asked: list[str] = []
    with chromium_page() as page:
        page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
        page.goto(f"{srv.url}/")
        card = '[data-group="prd-cn"]'
        box = page.wait_for_selector(f"{card} button.promote:not([disabled])").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.evaluate(f"document.querySelector('{card}').dataset.drawn = 'before'")
        page.mouse.down()
        service.hub.publish("group", service.detail(GROUP.name))  # a change, mid-press
        page.wait_for_selector(f"{card}:not([data-drawn])", state="attached")  # redrawn
        page.mouse.up()
        assert page.locator(f"{card} button.promote").count() == 1
    assert asked == [f"Promote prd-cn: approve 'approval' of rotation {record.id} and "
                     "carry it on?"]
    assert store.read_control(GROUP.name) == {}  # dismissed: nothing sent


def test_promote_when_no_approval_waits_says_so_as_the_cli_does(served, world, setup):
    service, srv = served
    store, _ = setup
    world.faults["route53:ChangeResourceRecordSets"] = [
        client_error("InvalidChangeBatch", "RRSet with DNS name is not permitted")]
    fake_engine(world, store, policy("canary", on_failure="pause")).start("ami-0123abcd")
    s, csrf = browser(srv)
    answer = post(s, srv, "/api/groups/prd-cn/promote", csrf)
    assert answer.status_code == 409
    assert "nothing is waiting for approval" in answer.json()["error"]
    assert store.read_control(GROUP.name) == {}


def test_a_post_without_the_pages_csrf_token_or_from_another_site_does_nothing(
        served, world, setup):
    service, srv = served
    store, _ = setup
    fake_engine(world, store, policy("canary")).start("ami-0123abcd")
    s, csrf = browser(srv)
    anonymous = requests.Session()
    anonymous.trust_env = False
    for who, token, headers in [
            (anonymous, None, {}),  # no session at all
            (s, None, {}),  # the cookie alone (what a forged form would send)
            (s, "0" * 64, {}),  # a guessed token
            (s, csrf, {"Origin": "http://evil.example"}),
            (s, csrf, {"Sec-Fetch-Site": "cross-site"})]:
        answer = post(who, srv, "/api/groups/prd-cn/abort", token, **headers)
        assert answer.status_code == 403, (token, headers, answer.text)
    assert store.read_control(GROUP.name) == {}
    rebinding = requests.get(f"{srv.url}/api/groups", headers={"Host": "evil.example"},
                             timeout=5)
    assert rebinding.status_code == 421


def test_beyond_loopback_a_token_is_required(setup, world, tmp_path):
    with pytest.raises(InputError, match="give a token"):
        serve(PROJECT, listen="0.0.0.0:8686")
    service, srv = start(setup, world, token=SERVE_TOKEN, loopback=False)
    store, _ = setup
    try:
        fake_engine(world, store, policy("canary")).start("ami-0123abcd")
        plain = requests.Session()
        plain.trust_env = False
        assert plain.get(f"{srv.url}/api/groups", timeout=5).status_code == 401
        assert plain.get(f"{srv.url}/metrics", timeout=5).status_code == 401
        assert plain.get(f"{srv.url}/", timeout=5, allow_redirects=False).status_code == 303
        wrong = {"Authorization": "Bearer not-the-token"}
        assert plain.get(f"{srv.url}/api/groups", headers=wrong, timeout=5).status_code == 401
        assert post(plain, srv, "/api/groups/prd-cn/abort", **wrong).status_code == 401
        # a browser that did not log in gets neither a session nor a CSRF token
        s = requests.Session()
        s.trust_env = False
        assert s.get(f"{srv.url}/api/session", timeout=5).status_code == 401
        assert post(s, srv, "/api/groups/prd-cn/abort", "0" * 64).status_code == 401
        assert store.read_control(GROUP.name) == {}

        right = {"Authorization": f"Bearer {SERVE_TOKEN}"}
        assert plain.get(f"{srv.url}/api/groups", headers=right, timeout=5).status_code == 200
        failed = s.post(f"{srv.url}/login", data={"token": "nope", "name": "mallory"},
                        allow_redirects=False, timeout=5)
        assert failed.headers["location"] == "/login?failed=1"
        ok = s.post(f"{srv.url}/login", data={"token": SERVE_TOKEN, "name": "alice"},
                    allow_redirects=False, timeout=5)
        assert ok.status_code == 303 and "httponly" in ok.headers["set-cookie"].lower()
        assert "samesite=strict" in ok.headers["set-cookie"].lower()
        csrf = s.get(f"{srv.url}/api/session", timeout=5).json()["csrf"]
        answer = post(s, srv, "/api/groups/prd-cn/abort", csrf)
        assert answer.status_code == 202, answer.text
        wait_for(lambda: store.load(GROUP.name)["status"] == "rolled-back")
        assert store.load(GROUP.name)["operator_actions"][0]["by"] == "alice@127.0.0.1"
    finally:
        srv.close()


def test_no_secret_on_any_page_answer_or_stream(served, world, setup):
    service, srv = served
    store, _ = setup
    world.fail_health_after["green"] = 0
    record = fake_engine(world, store, policy("blue-green")).start("ami-0123abcd")
    data = store.load(GROUP.name)  # a reason quoting what it should not (an adapter's bug)
    data["reason"] += f" (token {SECRETS['CN_CONSUL_TOKEN']}, https://u:p4ss@consul.internal)"
    store.save(data)
    wait_for(lambda: service.board.state(GROUP.name).record["reason"] == data["reason"])
    wait_for(lambda: service.live.view(GROUP.name).read_at)
    s, csrf = browser(srv)
    bodies = [s.get(f"{srv.url}{path}", timeout=5).text for path in (
        "/", "/login", "/static/app.js", "/api/session", "/api/groups", "/api/groups/prd-cn",
        "/api/groups/prd-cn/history", "/api/groups/prd-cn/traffic",
        "/api/groups/prd-cn/traffic.svg", "/metrics")]
    bodies.append(first_events(srv, 1)[0])
    text = "\n".join(bodies)
    assert record.id in text and "health gate failed" in text
    for secret in [*SECRETS.values(), HOOK_SECRET, "p4ss", "127.0.0.1:9/hooks"]:
        assert secret not in text, secret
    assert "***" in text


def first_events(srv, n: int, after=None) -> list[str]:
    """The data of the stream's first ``n`` group events (``after`` runs once it is open)."""
    out: list[str] = []
    with requests.get(f"{srv.url}/api/events", stream=True, timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                out.append(line[6:])
                if after is not None and len(out) == 1:
                    threading.Thread(target=after, daemon=True).start()
                if len(out) >= n:
                    return out
    return out


def test_a_record_change_is_pushed_to_the_open_stream(served, world, setup):
    service, srv = served
    store, _ = setup
    fake_engine(world, store, policy("canary")).start("ami-0123abcd")
    wait_for(lambda: service.controller.holding() and back_at_the_approval(store, GROUP.name))

    def promote():
        s, csrf = browser(srv)
        post(s, srv, "/api/groups/prd-cn/promote", csrf)

    seen = []
    with requests.get(f"{srv.url}/api/events", stream=True, timeout=10) as resp:
        for line in resp.iter_lines(decode_unicode=True):
            if not line.startswith("data: "):
                continue
            group = json.loads(line[6:])
            seen.append(group["rotation"]["status"])
            if len(seen) == 1:
                threading.Thread(target=promote, daemon=True).start()
            if group["rotation"]["status"] == "done":
                break
    assert seen[0] == "waiting" and seen[-1] == "done"
    assert len(seen) > 3  # the steps in between arrived one by one
