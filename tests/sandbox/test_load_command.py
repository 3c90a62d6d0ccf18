"""`rotate sandbox load` against a stand-in sandbox: the JSON it prints, the report folder,
and the rotation steps it reads from the group's records."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from rotator.cli import main
from rotator.config import Project
from rotator.sandbox.dns import RecordSet, SandboxDns, StaticZones
from rotator.sandbox.load.rotation_marks import groups_serving, step_marks

from .standins import Behaviour, EvenDraws, StandInBalancers

ROOT = Path(__file__).resolve().parents[2]
BLUE, GREEN = "127.0.0.41", "127.0.0.42"
NAME = "www.rotator-test.cn"
LBS = {"blue-lb.us-east-1.elb.amazonaws.com": BLUE, "green-lb.us-east-1.elb.amazonaws.com": GREEN,
       "prd-cn-edge-5f3a.cn-north-1.elb.amazonaws.com.cn": GREEN}


@pytest.fixture
def world(tmp_path):
    """A project folder whose sandbox 'runs' in this process: DNS, balancers, a record."""
    zones = StaticZones({"rotator-test.cn": [
        RecordSet(NAME, "CNAME", 1, ("blue-lb.us-east-1.elb.amazonaws.com",), "prd-cn-blue", 75),
        RecordSet(NAME, "CNAME", 1, ("green-lb.us-east-1.elb.amazonaws.com",), "prd-cn-green", 25),
    ]})
    balancers = StandInBalancers({BLUE: Behaviour(slot="blue", ami="ami-0aaa"),
                                  GREEN: Behaviour(slot="green", ami="ami-0bbb")})
    with SandboxDns(zones, LBS.get, rng=EvenDraws()) as dns_server, balancers:
        folder = tmp_path / ".rotator" / "sandbox"
        folder.mkdir(parents=True)
        (tmp_path / "groups").mkdir()
        (tmp_path / "policies").mkdir()
        (folder / "world.pid").write_text(str(os.getpid()))
        (folder / "world.json").write_text(json.dumps({
            "pid": os.getpid(), "aws": "http://127.0.0.1:1", "consul": "http://127.0.0.1:1",
            "marathon_proxy": "http://127.0.0.1:1", "terraform": "terraform", "reattach": {},
            "dns": dns_server.address, "lb_port": balancers.port}))
        (folder / "environment.yaml").write_text(yaml.safe_dump(
            {"state": {"backend": "file", "path": ".rotator/state-sandbox"}}))
        yield tmp_path, balancers


def write_record(root: Path, steps: list[tuple[str, float, float | None]]) -> None:
    history = root / ".rotator" / "state-sandbox" / "prd-cn" / "history"
    history.mkdir(parents=True, exist_ok=True)
    record = {"id": "prd-cn-r1", "group": "prd-cn", "kind": "rotation", "status": "running",
              "steps": [{"name": n, "status": "done", "started_at": s, "finished_at": f}
                        for n, s, f in steps], "rollback_steps": []}
    (history / "prd-cn-r1.json").write_text(json.dumps(record))


def load(root: Path, *args: str):
    return CliRunner().invoke(main, ["sandbox", "load", *args], env={"ROTATOR_ROOT": str(root)},
                              catch_exceptions=False)


def test_json_output_is_one_object_with_the_promised_fields(world):
    root, balancers = world
    out = load(root, NAME, "--rps", "120", "--duration", "1s", "--clients", "6",
               "--output", "json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    for key in ("requests", "failed", "failed_by_cause", "by_slot", "by_ami", "latency_ms"):
        assert key in report
    assert report["failed"] == 0
    assert set(report["failed_by_cause"]) == {"refused", "reset", "timeout", "5xx", "dns", "other"}
    assert report["requests"] == sum(report["by_slot"].values()) == sum(balancers.hits.values())
    assert report["by_ami"] == {"ami-0aaa": balancers.hits[BLUE], "ami-0bbb": balancers.hits[GREEN]}
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert report["settings"]["lb_port"] == balancers.port


def test_the_report_folder_has_a_timeline_and_a_chart_with_the_rotation_steps(world, tmp_path):
    root, _ = world
    now = time.time()
    write_record(root, [("provision green", now - 300, now - 200),  # before the run: not shown
                        ("shift 25%", now + 0.3, now + 0.6), ("pause 6s", now + 0.6, None)])
    out = load(root, NAME, "--rps", "100", "--duration", "2s", "--clients", "5",
               "--report", str(tmp_path / "report"), "--group", "prd-cn")
    assert out.exit_code == 0, out.output
    assert "failed   0" in out.output and "by slot: blue" in out.output
    timeline = json.loads((tmp_path / "report" / "timeline.json").read_text())
    assert [s["t"] for s in timeline["seconds"]][:2] == [0, 1]
    assert sum(s["requests"] for s in timeline["seconds"]) == timeline["summary"]["requests"]
    assert [m["step"] for m in timeline["summary"]["rotation_steps"]] == ["shift 25%", "pause 6s"]
    with Image.open(tmp_path / "report" / "chart.png") as chart:
        chart.verify()
        assert chart.format == "PNG" and chart.size[0] >= 800


def test_a_name_that_does_not_resolve_counts_as_dns_failures(world):
    root, balancers = world
    out = load(root, "nowhere.rotator-test.cn", "--rps", "50", "--duration", "0.5s",
               "--clients", "2", "--output", "json")
    report = json.loads(out.output)
    assert report["requests"] == report["failed"] == report["failed_by_cause"]["dns"] > 0
    assert sum(balancers.hits.values()) == 0


def test_the_command_refuses_when_the_sandbox_has_no_load_balancers(world):
    root, _ = world
    info_file = root / ".rotator" / "sandbox" / "world.json"
    info = json.loads(info_file.read_text())
    del info["lb_port"]
    info_file.write_text(json.dumps(info))
    out = load(root, NAME, "--duration", "1s")
    assert out.exit_code == 2 and "lb_port" in out.output


def test_the_groups_behind_a_name_come_from_their_records_or_edge_balancer():
    project = Project(ROOT)
    assert groups_serving(project, "www.rotator-demo.cn.") == ["prd-cn"]
    assert groups_serving(project, "api.rotator-demo.sg") == ["prd-sg-master", "prd-sg-slave"]
    assert groups_serving(project, "prd-cn-edge-5f3a.cn-north-1.elb.amazonaws.com.cn") == ["prd-cn"]
    # a pair's edge belongs to its master and carries both groups
    assert groups_serving(project, "prd-sg-master-edge-1.ap-southeast-1.elb.amazonaws.com") == [
        "prd-sg-master", "prd-sg-slave"]
    assert groups_serving(project, "elsewhere.example") == []


def test_step_marks_keep_the_steps_inside_the_run(tmp_path):
    write_record(tmp_path, [("a", 10.0, 20.0), ("b", 20.0, 40.0), ("c", 60.0, None)])
    marks = step_marks(tmp_path / ".rotator" / "state-sandbox", ["prd-cn"], 15.0, 50.0)
    assert [(m["step"], m["started_at"]) for m in marks] == [("a", 10.0), ("b", 20.0)]
