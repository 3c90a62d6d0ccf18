"""`rotate` end to end on the sandbox: automatic rollbacks, bad input, failover.
Every check reads the emulated world itself."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.e2e.conftest import TTL, wait_for
from tests.e2e.world_checks import OTHER, assert_only_live

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("phase", ["verify", "shift", "bake"])
def test_candidate_turning_unhealthy_rolls_back(sandbox, phase):
    stable = sandbox.live_slot()
    candidate = OTHER[stable]
    ami = sandbox.bake()
    policy = {"verify": "slow-verify", "shift": "canary-fast", "bake": "bake-watch"}[phase]
    trigger = {
        "verify": lambda r: r["current"] == "verify",
        "shift": lambda r: r["weights"].get(candidate) == 5,
        "bake": lambda r: r["current"] == "bake",
    }[phase]

    def watch_and_break():
        def ready():
            rec = sandbox.record()
            if not rec or rec["ami"] != ami or rec["cursor"] >= len(rec["steps"]):
                return False
            rec["current"] = rec["steps"][rec["cursor"]]["kind"]
            return trigger(rec)
        wait_for(ready, timeout=240, interval=0.02)
        sandbox.set_app_health("prd-cn", candidate, "/prd/web", "unhealthy")

    breaker = threading.Thread(target=watch_and_break, daemon=True)
    breaker.start()
    run = sandbox.rotate("prd-cn", "--ami", ami, "--policy", policy)
    if run.returncode == 4:  # canary's approval came first: let it go on
        run = sandbox.rotate("promote", "prd-cn")
    breaker.join(5)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "rolled back" in run.stdout
    # the health watch names the service; the traffic guard, if it sees it first, refuses
    assert "web" in run.stdout or "services are not passing" in run.stdout
    record = sandbox.record()
    assert record["status"] == "rolled-back"
    assert_only_live(sandbox, stable)


@pytest.mark.parametrize("case", ["unknown group", "malformed group", "malformed policy",
                                  "invalid ami", "unknown ami", "invalid app", "terraform error"])
def test_bad_input_exits_2_and_changes_nothing(sandbox, case):
    root = sandbox.root
    ami = sandbox.bake()
    group, args = "prd-cn", ["prd-cn", "--ami", ami, "--policy", "fast"]
    restore: list[tuple] = []

    def spoil(path, old, new):
        text = path.read_text()
        restore.append((path, text))
        path.write_text(text.replace(old, new, 1) if old else new)

    if case == "unknown group":
        args = ["prd-mars", "--ami", ami]
    elif case == "malformed group":
        spoil(root / "groups/prd-cn/group.yaml", "consul:\n", "consul: [\n")
    elif case == "malformed policy":
        spoil(root / "policies/fast.yaml", "weight: 100", "weight: 120")
    elif case == "invalid ami":
        args = ["prd-cn", "--ami", "foo"]
    elif case == "unknown ami":
        args = ["prd-cn", "--ami", "ami-0123456789abcdef0", "--policy", "fast"]
    elif case == "invalid app":
        spoil(root / "groups/prd-cn/apps/web.json", '"instances": 2', '"instances": -3')
    elif case == "terraform error":
        spoil(root / "groups/prd-cn/main.tf", "module \"slot\" {", "module \"slot\" {{")
    before = sandbox.snapshot(group)
    try:
        run = sandbox.rotate(*args)
    finally:
        for path, text in restore:
            path.write_text(text)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "error:" in run.stderr
    expected = {"malformed group": "group.yaml", "malformed policy": "fast.yaml",
                "invalid ami": "--ami", "unknown ami": "does not exist",
                "invalid app": "web.json", "terraform error": "main.tf",
                "unknown group": "unknown group"}[case]
    assert expected in run.stderr
    assert sandbox.snapshot(group) == before


def test_failover_drill_while_the_master_fails_then_failback(sandbox):
    master, slave = "prd-sg-master", "prd-sg-slave"
    sg = "ap-southeast-1"
    master_slot = sandbox.record(master)["candidate"]
    for app in ("/prd/web", "/prd/api"):
        sandbox.set_app_health(master, master_slot, app, "unhealthy")
    run = sandbox.rotate("failover", master, "--to", slave, "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    snap = sandbox.snapshot("prd-sg", sg)
    weights = {ident: w for (_, ident), w in snap["records"].items()}
    assert weights[f"{slave}-blue"] == 100 and weights[f"{master}-{master_slot}"] == 0
    # the master now carries nothing: a rotation of it would split the pair's traffic
    before = sandbox.snapshot("prd-sg", sg)
    rotating = sandbox.rotate(master, "--ami", sandbox.bake(master), "--yes")
    assert rotating.returncode == 3, rotating.stdout + rotating.stderr
    assert "fail back first" in rotating.stderr
    assert sandbox.snapshot("prd-sg", sg) == before
    # failing back onto a master that still fails is refused: the target's health is checked
    refused = sandbox.rotate("failback", master, "--yes")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    for app in ("/prd/web", "/prd/api"):
        sandbox.set_app_health(master, master_slot, app, "healthy")
    back = wait_for(lambda: (r := sandbox.rotate("failback", master, "--yes")).returncode == 0
                    and r, timeout=60, interval=1)
    assert "failback" in back.stdout
    snap = sandbox.snapshot("prd-sg", sg)
    weights = {ident: w for (_, ident), w in snap["records"].items()}
    assert weights[f"{master}-{master_slot}"] == 100 and weights[f"{slave}-blue"] == 0
    kinds = [r.get("kind") for r in json.loads(
        sandbox.rotate("history", master, "--output", "json").stdout)]
    assert "failover" in kinds and "failback" in kinds


def test_a_failover_is_refused_during_a_rotation_and_resumes_after_kill_9(sandbox):
    """Failover is as careful as a rotation: it waits for no unfinished rotation of the pair,
    writes its record before moving weight, and `rotate resume` finishes it after kill -9."""
    import signal

    master, slave, sg = "prd-sg-master", "prd-sg-slave", "ap-southeast-1"
    # a canary of the master waits for approval (exit 4): the pair is mid-rotation
    waiting = sandbox.rotate(master, "--ami", sandbox.bake(master), "--policy", "canary-fast",
                             "--yes")
    assert waiting.returncode == 4, waiting.stdout + waiting.stderr
    rotation = sandbox.record(master)["id"]
    refused = sandbox.rotate("failover", master, "--to", slave, "--yes")
    assert refused.returncode == 3 and rotation in refused.stderr, refused.stderr
    aborted = sandbox.rotate("abort", master)
    assert aborted.returncode == 1, aborted.stdout + aborted.stderr  # rolled back
    # Route53 takes its time to propagate: kill the failover while it waits for INSYNC
    control = sandbox.control()
    control.set_route53_propagation(60)
    try:
        proc = sandbox.popen("failover", master, "--to", slave, "--yes")

        def waiting_for_insync():
            events = [r for r in json.loads(sandbox.rotate(
                "history", master, "--output", "json").stdout) if r.get("kind") == "failover"]
            return events and events[-1]["status"] == "running" and events[-1]["changes"]
        wait_for(waiting_for_insync, timeout=120, interval=0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        control.set_route53_propagation(0)
    # nothing else may start in between: the dead holder's lock is named, and even past
    # it the pair's move must be finished first
    ami = sandbox.bake(slave)
    again = sandbox.rotate(slave, "--ami", ami, "--yes")
    assert again.returncode == 3 and "its process is gone" in again.stderr, again.stderr
    again = sandbox.rotate(slave, "--ami", ami, "--yes", "--break-lock")
    assert again.returncode == 3 and "did not finish" in again.stderr, again.stderr
    resumed = sandbox.rotate("resume", master)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = [r for r in json.loads(sandbox.rotate("history", slave, "--output", "json").stdout)
              if r.get("kind") == "failover"]
    assert events[-1]["status"] == "done" and events[-1]["insync_at"]
    weights = {ident: w for (_, ident), w in sandbox.snapshot("prd-sg", sg)["records"].items()
               if w}
    assert list(weights) == [f"{slave}-blue"]
    back = sandbox.rotate("failback", master, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr


def test_failover_and_failback_under_load_drop_nothing(sandbox):
    """Both moves of a healthy pair, under load on the pair's shared name: not one failed
    request (the side that gives up traffic stays up; cached answers keep reaching it)."""
    master, slave = "prd-sg-master", "prd-sg-slave"
    with sandbox.load("www.rotator-demo.sg") as load:
        moved = sandbox.rotate("failover", master, "--to", slave, "--yes")
        assert moved.returncode == 0, moved.stdout + moved.stderr
        time.sleep(TTL + 2)  # clients follow the record, the edge at once
        back = sandbox.rotate("failback", master, "--yes")
        assert back.returncode == 0, back.stdout + back.stderr
        time.sleep(TTL + 2)
        report = load.stop()
    assert report["failed"] == 0, report["failed_by_cause"]
    served = {ami for ami in report["by_ami"]}
    assert len(served) == 2, report  # the master's slot and the slave's both served


def test_an_abort_during_the_canary_rolls_back_under_load_dropping_nothing(sandbox):
    stable = sandbox.live_slot()
    ami = sandbox.bake()
    with sandbox.load() as load:
        run = sandbox.rotate("prd-cn", "--ami", ami, "--policy", "canary-fast")
        assert run.returncode == 4, run.stdout + run.stderr
        aborted = sandbox.rotate("abort", "prd-cn", "--reason", "not today")
        assert aborted.returncode == 1, aborted.stdout + aborted.stderr
        report = load.stop()
    record = sandbox.record()
    assert record["status"] == "rolled-back" and "not today" in record["reason"]
    quiet = next(s for s in record["rollback_steps"] if s["kind"] == "rollback-quiet")
    assert quiet["finished_at"] >= record["cached_until"][OTHER[stable]]
    assert report["failed"] == 0, report["failed_by_cause"]
    assert report["by_slot"].get(OTHER[stable]), report  # the canary did serve
    assert_only_live(sandbox, stable)


def test_a_release_answering_500s_is_rolled_back_by_its_metrics_before_the_approval(
        sandbox, tmp_path):
    """A release whose /health passes but which answers 500 to a fifth of its requests: the
    canary analysis (CloudWatch, every period) rolls it back at 5 %. Failed requests are
    bounded by weight x rate x (time to detect + time to move), and none reach a
    TTL-honouring client once the weights are back plus one TTL."""
    stable = sandbox.live_slot()
    baked = sandbox.rotate("sandbox", "bake", "--group", "prd-cn", "--fault", "5xx",
                           "--rate", "0.2")
    assert baked.returncode == 0, baked.stderr
    ami = baked.stdout.strip()
    rps = 40
    with sandbox.load(rps=rps, clients=40, report_dir=tmp_path) as load:
        run = sandbox.rotate("prd-cn", "--ami", ami, "--policy", "canary-metrics")
        assert run.returncode == 1, run.stdout + run.stderr
        time.sleep(TTL + 2)
        report = load.stop()
    record = sandbox.record()
    assert record["status"] == "rolled-back"
    assert "metric analysis failed: error ratio" in record["reason"]
    approval = next(s for s in record["steps"] if s["kind"] == "approve")
    assert approval["status"] == "pending"  # it never got that far
    shifted = next(s for s in record["steps"] if s["name"].startswith("shift 5%"))
    back = next(s for s in record["rollback_steps"] if s["kind"] == "rollback-weights")
    exposure = back["finished_at"] - shifted["finished_at"] + TTL
    assert 0 < report["failed"] == report["failed_by_cause"]["5xx"]
    assert report["failed"] <= 0.05 * rps * exposure, (report["failed"], exposure)
    late = [s for s in json.loads((tmp_path / "timeline.json").read_text())["seconds"]
            if report["started_at"] + s["t"] > back["finished_at"] + TTL + 1]
    assert late and sum(s["failed"] for s in late) == 0
    assert report["by_slot"].get(OTHER[stable]), report
