"""`rotate` end to end on the sandbox: rotations, canary and approval, crashes and resume,
two rotations at once. Every check reads the emulated world itself."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from rotator.infra.stale_lock import terraform_runs
from tests.e2e.conftest import TTL, wait_for
from tests.e2e.world_checks import OTHER, assert_only_live

pytestmark = pytest.mark.slow


def test_blue_green_rotation_while_a_second_one_is_refused(sandbox):
    """Under load: no request fails while the rotation moves traffic and retires the old
    slot (clients cache their DNS answers for the records' TTL)."""
    before = sandbox.live_slot()
    ami = sandbox.bake()
    with sandbox.load() as load:
        first = sandbox.popen("prd-cn", "--ami", ami, "--policy", "fast")
        wait_for(lambda: sandbox.record() and sandbox.record()["ami"] == ami, timeout=30)
        second = sandbox.rotate("prd-cn", "--ami", ami, "--policy", "fast")
        assert second.returncode == 3, second.stderr
        assert "locked by" in second.stderr and "pid" in second.stderr
        out, _ = first.communicate(timeout=300)
        assert first.returncode == 0, out
        report = load.stop()
    assert report["failed"] == 0, report["failed_by_cause"]
    assert report["by_slot"].get(before) and report["by_slot"].get(OTHER[before]), report
    record = sandbox.record()
    assert record["status"] == "done" and record["candidate"] == OTHER[before]
    assert_only_live(sandbox, OTHER[before])
    status = json.loads(sandbox.rotate("status", "prd-cn", "--output", "json").stdout)
    assert status["live_slots"] == [OTHER[before]]
    assert status["slots"][OTHER[before]]["ami"] == ami
    assert all(app["ok"] for app in status["slots"][OTHER[before]]["apps"].values())


def test_canary_stops_for_approval_then_promote_finishes(sandbox):
    """At 25 % the edge listener sends a quarter of its requests to the candidate (exactly,
    per request) and DNS a quarter of the answers once cached ones turned over; no request
    fails from the first step to the end of the retire."""
    stable = sandbox.live_slot()
    candidate = OTHER[stable]
    ami = sandbox.bake()
    with sandbox.load(rps=30) as load:
        run = sandbox.rotate("prd-cn", "--ami", ami, "--policy", "canary-fast")
        assert run.returncode == 4, run.stdout + run.stderr
        assert "rotate promote prd-cn" in run.stdout
        weights = {ident.rsplit("-", 1)[1]: w
                   for (_, ident), w in sandbox.snapshot()["records"].items()}
        assert weights == {stable: 75, candidate: 25}
        assert sandbox.snapshot()["edge_weights"] == {stable: 75, candidate: 25}
        seen = [e["msg"] for e in sandbox.record()["events"] if "carries" in e["msg"]]
        assert seen[:2] == [f"{candidate} carries 5%", f"{candidate} carries 25%"]
        time.sleep(TTL + 1)  # the record's TTL: the clients' cached answers turn over
        with sandbox.load(sandbox.edge_name("prd-cn"), rps=80, clients=20,
                          duration="15s") as edge, \
                sandbox.load(rps=80, clients=80, duration="15s") as dns:
            split = {"edge": edge.finished(), "dns": dns.finished()}
        promote = sandbox.rotate("promote", "prd-cn")
        assert promote.returncode == 0, promote.stdout + promote.stderr
        report = load.stop()
    for path, tolerance in (("edge", 3), ("dns", 5)):
        served = split[path]["by_slot"]
        share = 100 * served.get(candidate, 0) / sum(served.values())
        assert abs(share - 25) <= tolerance, (path, served)
    assert report["failed"] == 0, report["failed_by_cause"]
    assert_only_live(sandbox, candidate)


def test_killed_at_every_step_boundary_and_inside_waits_then_resumed(sandbox):
    """SIGKILL the rotate process again and again; each `rotate resume` carries on.

    Two kills land inside Terraform: the apply and the destroy go on detached, finish and
    release their state lock, and the resumed run waits for it instead of leaving orphans."""
    stable = sandbox.live_slot()
    ami = sandbox.bake()
    running_since: dict[str, float] = {}

    def at(kind: str, *, done: bool = False, acted: bool = False, after: float = 0.0):
        """The step has reached the point (or gone past it: a point is never missed)."""
        def check():
            rec = sandbox.record()
            if not rec or rec["ami"] != ami:
                return False
            steps = {s["kind"]: s for s in rec["steps"]}
            step = steps.get(kind)
            if step is None:
                return False
            if step["status"] in ("done", "failed") or rec["status"] != "running":
                return True
            if done or step["status"] != "running" or (acted and not step["acted"]):
                return False
            first = running_since.setdefault(kind, time.monotonic())
            return time.monotonic() - first >= after
        return check

    kill_points = [
        at("provision", after=4.0),            # inside terraform apply
        at("provision", done=True),            # boundary
        at("deploy", acted=True),              # inside the deploy wait
        at("deploy", done=True),               # boundary
        at("verify"),                          # inside the verify wait
        at("verify", done=True),               # boundary
        at("shift", done=True),                # boundary
        at("retire-traffic", acted=True),      # inside the draining wait
        at("retire-traffic", done=True),       # boundary
        at("retire-quiet", acted=True),        # inside the quiet wait
        at("retire-destroy", after=4.0),       # inside terraform destroy
    ]
    group_dir = (sandbox.root / "groups" / "prd-cn").resolve()
    load = sandbox.load()
    proc = sandbox.popen("prd-cn", "--ami", ami, "--policy", "fast")
    kills = survivors = 0
    for point in kill_points:
        try:
            wait_for(lambda p=point, q=proc: p() or q.poll() is not None, timeout=240,
                     interval=0.01)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(30)
        survivors += any(cwd == group_dir for cwd, _ in terraform_runs())
        rec = sandbox.record()
        if rec["status"] in ("done", "rolled-back"):
            break
        proc = sandbox.popen("resume", "prd-cn")
    if proc.poll() is None or sandbox.record()["status"] not in ("done", "rolled-back"):
        proc.wait(300)
        if sandbox.record()["status"] not in ("done", "rolled-back"):
            final = sandbox.rotate("resume", "prd-cn")
            assert final.returncode in (0, 1), final.stdout + final.stderr
    report = load.stop()
    assert kills >= 8
    assert survivors >= 2  # the apply and the destroy outlived their rotate
    record = sandbox.record()
    assert record["status"] == "done", record["reason"]
    assert_only_live(sandbox, OTHER[stable])
    # killed during the shift and the retire, resumed: not one request failed
    assert report["failed"] == 0, report["failed_by_cause"]

