"""`rotate` end to end on the sandbox: rotations, canary, rollbacks, crashes, locks, bad input,
failover. Every check reads the emulated world itself, not only what rotator says."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.slow

OTHER = {"blue": "green", "green": "blue"}


def assert_only_live(box, slot: str, group: str = "prd-cn", region: str = "cn-north-1"):
    """Nothing orphaned: only ``slot`` has instances, records weight, ELB members, state."""
    snap = box.snapshot(group, region)
    assert set(snap["instances"]) == {slot}, snap
    assert snap["workspaces"] == [slot], snap
    weights = {ident.rsplit("-", 1)[1]: w for (_, ident), w in snap["records"].items()}
    assert weights.get(slot) == 100 and not weights.get(OTHER[slot]), snap
    record = box.record(group)
    edge = snap["elb_members"][f"{group}-edge"]
    assert sorted(edge) == sorted(record["slots"][slot]["instances"]["proxy"]), snap


def test_blue_green_rotation_while_a_second_one_is_refused(sandbox):
    before = sandbox.live_slot()
    ami = sandbox.bake()
    first = sandbox.popen("prd-cn", "--ami", ami, "--policy", "fast")
    wait_for(lambda: sandbox.record() and sandbox.record()["ami"] == ami, timeout=30)
    second = sandbox.rotate("prd-cn", "--ami", ami, "--policy", "fast")
    assert second.returncode == 3, second.stderr
    assert "locked by" in second.stderr and "pid" in second.stderr
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    record = sandbox.record()
    assert record["status"] == "done" and record["candidate"] == OTHER[before]
    assert_only_live(sandbox, OTHER[before])
    status = json.loads(sandbox.rotate("status", "prd-cn", "--output", "json").stdout)
    assert status["live_slots"] == [OTHER[before]]
    assert status["slots"][OTHER[before]]["ami"] == ami
    assert all(app["ok"] for app in status["slots"][OTHER[before]]["apps"].values())


def test_canary_stops_for_approval_then_promote_finishes(sandbox):
    stable = sandbox.live_slot()
    ami = sandbox.bake()
    run = sandbox.rotate("prd-cn", "--ami", ami, "--policy", "canary-fast")
    assert run.returncode == 4, run.stdout + run.stderr
    assert "rotate promote prd-cn" in run.stdout
    weights = {ident.rsplit("-", 1)[1]: w
               for (_, ident), w in sandbox.snapshot()["records"].items()}
    assert weights == {stable: 75, OTHER[stable]: 25}
    seen = [e["msg"] for e in sandbox.record()["events"] if "carries" in e["msg"]]
    assert seen[:2] == [f"{OTHER[stable]} carries 5%", f"{OTHER[stable]} carries 25%"]
    promote = sandbox.rotate("promote", "prd-cn")
    assert promote.returncode == 0, promote.stdout + promote.stderr
    assert_only_live(sandbox, OTHER[stable])


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


def test_killed_at_every_step_boundary_and_inside_waits_then_resumed(sandbox):
    """SIGKILL the rotate process again and again; each `rotate resume` carries on."""
    stable = sandbox.live_slot()
    ami = sandbox.bake()

    def at(kind: str, *, done: bool = False, acted: bool = False):
        def check():
            rec = sandbox.record()
            if not rec or rec["ami"] != ami:
                return False
            steps = {s["kind"]: s for s in rec["steps"]}
            step = steps.get(kind)
            if step is None:
                return False
            if done:
                return step["status"] == "done"
            return step["status"] == "running" and (step["acted"] or not acted)
        return check

    kill_points = [
        at("provision", done=True),            # boundary
        at("deploy", acted=True),              # inside the deploy wait
        at("deploy", done=True),               # boundary
        at("verify"),                          # inside the verify wait
        at("shift", done=True),                # boundary
        at("retire-traffic", acted=True),      # inside the draining wait
        at("retire-traffic", done=True),       # boundary
    ]
    proc = sandbox.popen("prd-cn", "--ami", ami, "--policy", "fast")
    kills = 0
    for point in kill_points:
        try:
            wait_for(lambda p=point, q=proc: p() or q.poll() is not None, timeout=240,
                     interval=0.01)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(30)
        rec = sandbox.record()
        if rec["status"] in ("done", "rolled-back"):
            break
        proc = sandbox.popen("resume", "prd-cn")
    if proc.poll() is None or sandbox.record()["status"] not in ("done", "rolled-back"):
        proc.wait(300)
        if sandbox.record()["status"] not in ("done", "rolled-back"):
            final = sandbox.rotate("resume", "prd-cn")
            assert final.returncode in (0, 1), final.stdout + final.stderr
    assert kills >= 5
    record = sandbox.record()
    assert record["status"] == "done", record["reason"]
    assert_only_live(sandbox, OTHER[stable])


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
