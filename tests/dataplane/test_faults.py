"""Item 2: bad releases a user can bake. The fault is recorded on the AMI (EC2 tags on the
image) and applies to the tasks of instances booted from it."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import requests
from click.testing import CliRunner

from rotator.sandbox.aws import AwsEmulatorControl
from rotator.sandbox.dataplane.faults import TAG_KIND, TAG_RATE, ReleaseFault
from tests.dataplane.conftest import REGION, app, deploy, http, wait_for


def _task_url(world, slot, app_id="/web"):
    task = slot.marathon.app_tasks(app_id)[0]
    return world.endpoint(slot, task["host"], task["ports"][0]).url, task


def test_a_5xx_release_fails_a_fifth_of_requests_while_its_health_check_passes(world):
    ami = world.bake(ReleaseFault.of("5xx", rate=0.2).tags())
    slot = world.slot(cidr="10.80.0.0/16", ami=ami)
    deploy(slot, app("/web", instances=1))
    url, _ = _task_url(world, slot)
    session = http()
    codes, health = [], []
    for _ in range(100):
        codes.append(session.get(url + "/", timeout=5).status_code)
        health.append(session.get(url + "/health", timeout=5).status_code)
    assert codes.count(500) == 20 and codes.count(200) == 80
    assert set(health) == {200}
    assert slot.marathon.app_tasks("/web")[0]["healthCheckResults"][0]["alive"] is True


def test_a_slow_release_adds_latency_to_its_share_of_requests(world):
    ami = world.bake(ReleaseFault.of("slow", rate=0.5, latency=0.3).tags())
    slot = world.slot(cidr="10.81.0.0/16", ami=ami)
    deploy(slot, app("/web", instances=1))
    url, _ = _task_url(world, slot)
    session = http()
    took = []
    for _ in range(6):
        started = time.monotonic()
        assert session.get(url + "/", timeout=5).status_code == 200
        took.append(time.monotonic() - started)
    assert sum(t >= 0.3 for t in took) == 3  # every other request


def test_an_unhealthy_release_fails_its_health_check_after_a_delay(world):
    ami = world.bake(ReleaseFault.of("unhealthy", after=2.0).tags())
    slot = world.slot(cidr="10.82.0.0/16", ami=ami)
    deploy(slot, app("/web", instances=1))  # healthy long enough to deploy
    url, task = _task_url(world, slot)
    assert http().get(url + "/health", timeout=5).status_code == 200
    wait_for(lambda: http().get(url + "/health", timeout=5).status_code == 503)
    assert http().get(url + "/", timeout=5).status_code == 200  # it still answers requests
    wait_for(lambda: any(r["alive"] is False for t in slot.marathon.app_tasks("/web")
                         for r in t["healthCheckResults"]) or
             task["id"] not in {t["id"] for t in slot.marathon.app_tasks("/web")})


def test_a_crashing_release_exits_and_marathon_starts_another_task(world, monkeypatch):
    ami = world.bake(ReleaseFault.of("crash", after=1.0).tags())
    slot = world.slot(cidr="10.83.0.0/16", ami=ami)
    deploy(slot, app("/web", instances=1))
    url, task = _task_url(world, slot)
    seen = []
    publish = slot.marathon.events.publish
    monkeypatch.setattr(slot.marathon.events, "publish",
                        lambda event: (seen.append(event), publish(event)))
    wait_for(lambda: task["id"] not in {t["id"] for t in slot.marathon.app_tasks("/web")})
    with pytest.raises(requests.ConnectionError):
        http().get(url + "/", timeout=5)
    assert any(e.get("taskId") == task["id"] and e.get("taskStatus") == "TASK_FAILED"
               for e in seen)
    wait_for(lambda: slot.marathon.app_tasks("/web"))  # a replacement is launched


def test_the_fault_is_recorded_on_the_image(world):
    fault = ReleaseFault.of("5xx", rate=0.2)
    ami = AwsEmulatorControl(world.aws.url).register_ami("bad-release", region=REGION,
                                                         tags=fault.tags())
    image = world.client("ec2").describe_images(ImageIds=[ami])["Images"][0]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags[TAG_KIND] == "5xx" and tags[TAG_RATE] == "0.2"
    assert ReleaseFault.from_tags(tags) == fault


def test_rotate_sandbox_bake_takes_a_fault(monkeypatch, tmp_path):
    from rotator.sandbox import cli, control

    baked = {}

    def bake(self, region, from_ami=None, name=None, fault=None):
        baked.update(region=region, fault=fault)
        return "ami-0123456789abcdef0"

    monkeypatch.setattr(control.Sandbox, "bake", bake)
    monkeypatch.setattr(cli, "_project", lambda: SimpleNamespace(root=tmp_path))
    out = CliRunner().invoke(cli.sandbox, ["bake", "--fault", "5xx", "--rate", "0.2"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == "ami-0123456789abcdef0"
    assert baked["fault"] == ReleaseFault("5xx", 0.2, 0.0)
    out = CliRunner().invoke(cli.sandbox, ["bake", "--fault", "crash", "--after", "30s"])
    assert baked["fault"] == ReleaseFault("crash", 1.0, 30.0)
    assert CliRunner().invoke(cli.sandbox, ["bake", "--rate", "0.2"]).exit_code == 2
