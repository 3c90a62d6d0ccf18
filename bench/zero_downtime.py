"""Requests that fail while rotator works, per policy, and how fast a bad release is undone.

    .venv/bin/python bench/zero_downtime.py [--rps 40] [--quiet-for 20s] [--hold 25s]
                                            [--only blue-green canary failover 5xx unhealthy]
                                            [--json out.json]

One sandbox in a copy of the project (the shipped groups, edge roots and policies; the
sandbox's CloudWatch period and record TTL are printed). Clients run beside every case
through the sandbox's DNS (10 % of them keep answers 30 s past the TTL, as a JVM does)
and, at the same time, through the group's edge load balancer. Per case:

* requests, failed requests (by cause and by client kind);
* split accuracy per traffic step: the share the candidate served against its weight,
  through the edge from the step's weight change on, through DNS once one TTL passed;
* for a retire: how long it waited after the old slot's weight reached 0, and for what
  (cached answers, draining, the old slot's last request, the quiet window).

Bad releases, each under the canary policy:

* ``5xx``: an AMI baked with ``--fault 5xx`` (a fifth of its answers are 500, /health
  passes). Time from the first failing request to the rollback's first weight change
  against the bound of one metric period + CloudWatch's delay (a failing request's period
  must end and be published before anything can judge it; the analysis runs the moment it
  is; target: within 2 s of that bound); failed requests against weight x rate x (time to detect +
  time to move weight + one TTL); failed requests from TTL-honouring clients once the
  weights were back plus one TTL (target: none).
* ``unhealthy``: an AMI baked with ``--fault unhealthy`` (health checks fail ``--after``
  the tasks start, while the canary carries 5 %). Time from the first critical check in
  Consul (seen by a blocking query of this bench) to the rollback's first weight change
  (target: within 1 s).

The shipped policies are used with two changes, printed: the retire's quiet window is
``--quiet-for`` (production: 2 minutes) and the canary's pauses last ``--hold`` so each
step can be measured once cached answers turned over. Nothing else differs from
production: the detection runs on the sandbox's CloudWatch period, a setting.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rotator.durations import parse_duration  # noqa: E402
from tests.e2e.conftest import TTL, Load, Sandbox, prepare_project, wait_for  # noqa: E402

NAMES = {"prd-cn": "www.rotator-demo.cn", "prd-sg": "www.rotator-demo.sg"}
OTHER = {"blue": "green", "green": "blue"}
OVERSTAY = 30  # the load generator's TTL-ignoring clients keep answers this long past the TTL
CASES = ("blue-green", "canary", "failover", "5xx", "unhealthy")


# --------------------------------------------------------------------- policies


def cloudwatch_setting(box: Sandbox) -> tuple[float, float]:
    """(period, delay) of the sandbox's environment: what the analysis works with."""
    env = yaml.safe_load((box.root / ".rotator/sandbox/environment.yaml").read_text())
    return float(env["cloudwatch"]["period"]), float(env["cloudwatch"]["delay"])


def bench_policies(root: Path, quiet_for: str, hold: str) -> dict[str, str]:
    """The shipped blue-green and canary with the bench's quiet window and pauses."""
    changed = {}
    for name in ("blue-green", "canary"):
        policy = yaml.safe_load((root / "policies" / f"{name}.yaml").read_text())
        policy["name"] = f"bench-{name}"
        policy["retire"] = {**policy.get("retire", {}), "quiet_for": quiet_for}
        policy["steps"] = [{"pause": hold} if "pause" in step else step
                           for step in policy["steps"]]
        (root / "policies" / f"bench-{name}.yaml").write_text(yaml.safe_dump(policy))
        changed[name] = f"retire.quiet_for {quiet_for}" + (
            f", pauses {hold}" if name == "canary" else "")
    return changed


# ---------------------------------------------------------------- reading runs


@dataclass
class Run:
    """One load run's report and per-second timeline."""

    report: dict[str, Any]
    seconds: list[dict[str, Any]]

    @classmethod
    def of(cls, load: Load, folder: Path) -> Run:
        report = load.stop()
        timeline = json.loads((folder / "timeline.json").read_text())
        return cls(report, timeline["seconds"])

    def share(self, slot: str, lo: float, hi: float, *, honouring_only: bool) -> tuple[float, int]:
        """The share of requests ``slot`` served in the whole seconds inside [lo, hi)."""
        start, served, mine = self.report["started_at"], 0, 0
        for second in self.seconds:
            t = start + second["t"]
            if t < lo or t + 1 > hi:
                continue
            counts = (second["by_client_kind"].get("ttl-honouring", {}) if honouring_only
                      else second["by_slot"])
            served += sum(counts.values())
            mine += counts.get(slot, 0)
        return (100.0 * mine / served if served else float("nan")), served

    def group_share(self, group: str, lo: float, hi: float) -> tuple[float, int]:
        """The share of requests ``group`` served (every client) in [lo, hi)."""
        start, served, mine = self.report["started_at"], 0, 0
        for second in self.seconds:
            t = start + second["t"]
            if lo <= t and t + 1 <= hi:
                served += sum(second["by_group"].values())
                mine += second["by_group"].get(group, 0)
        return (round(100.0 * mine / served, 1) if served else float("nan")), served

    def last_served_by(self, slot: str) -> float | None:
        times = [self.report["started_at"] + s["t"] + 1 for s in self.seconds
                 if s["by_slot"].get(slot)]
        return max(times) if times else None

    def failed_after(self, moment: float, kind: str = "ttl-honouring") -> int:
        """Failed requests of ``kind`` clients in the seconds that began at or after it."""
        start = self.report["started_at"]
        return sum(s.get("failed_by_client_kind", {}).get(kind, 0) for s in self.seconds
                   if start + s["t"] >= moment)

    @property
    def first_failure(self) -> float | None:
        between = self.report.get("failed_between_s")
        return None if between is None else self.report["started_at"] + between[0]


@dataclass
class Case:
    name: str
    status: str = ""
    runs: dict[str, Run] = field(default_factory=dict)
    splits: list[dict[str, Any]] = field(default_factory=list)
    retire: str = ""
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def totals(self) -> dict[str, Any]:
        out = {"requests": 0, "failed": 0, "by_cause": {}, "by_kind": {}}
        for run in self.runs.values():
            r = run.report
            out["requests"] += r["requests"]
            out["failed"] += r["failed"]
            for key, src in (("by_cause", "failed_by_cause"), ("by_kind", "failed_by_client_kind")):
                for k, n in r[src].items():
                    out[key][k] = out[key].get(k, 0) + n
        return out


def traffic_steps(record: dict) -> list[dict]:
    """Steps that moved weight, in order, each with its moment and the candidate's weight."""
    moved = []
    for step in [*record["steps"], *record.get("rollback_steps", [])]:
        params = step.get("params", {})
        if step["status"] != "done":
            continue
        if step["kind"] == "shift":
            moved.append({"name": step["name"], "weight": params["weight"],
                          "at": params.get("insync_at") or step["finished_at"]})
        elif step["kind"] == "rollback-weights":
            moved.append({"name": step["name"], "weight": 0,
                          "at": params.get("insync_at") or step["finished_at"]})
    return moved


def measure_splits(case: Case, record: dict, until: float) -> None:
    candidate = record["candidate"]
    moved = traffic_steps(record)
    for i, step in enumerate(moved):
        end = moved[i + 1]["at"] if i + 1 < len(moved) else until
        edge_share, edge_n = case.runs["edge"].share(candidate, step["at"], end,
                                                     honouring_only=False)
        dns_share, dns_n = case.runs["dns"].share(candidate, step["at"] + TTL, end,
                                                  honouring_only=True)
        case.splits.append({"step": step["name"], "weight": step["weight"],
                            "edge": round(edge_share, 1), "edge_n": edge_n,
                            "dns": round(dns_share, 1), "dns_n": dns_n})


def measure_retire(case: Case, record: dict) -> None:
    steps = {s["kind"]: s for s in [*record["steps"], *record.get("rollback_steps", [])]}
    traffic = steps.get("retire-traffic") or steps.get("rollback-traffic")
    quiet = steps.get("retire-quiet") or steps.get("rollback-quiet")
    if traffic is None or quiet is None or quiet["finished_at"] is None:
        return
    old = traffic["params"]["slot"]
    zero = traffic["params"].get("insync_at") or traffic["started_at"]
    moved = [s["at"] for s in traffic_steps(record)]
    if record["status"] == "done" and moved:
        zero = min(zero, moved[-1])  # the last shift already took the old slot's weight
    last = max(filter(None, (run.last_served_by(old) for run in case.runs.values())),
               default=None)
    waited = quiet["finished_at"] - zero
    parts = [f"draining {traffic['finished_at'] - traffic['started_at']:.0f}s",
             f"cached answers until +{record['cached_until'][old] - zero:.0f}s"]
    if last is not None:
        parts.append(f"last request to {old} at +{last - zero:.0f}s")
    parts.append(f"then quiet for its window: destroyed at +{waited:.0f}s")
    case.retire = f"{waited:.0f}s after {old}'s weight reached 0: " + ", ".join(parts)
    case.figures["retire_waited_s"] = round(waited, 1)
    case.figures["old_slot_last_request_s"] = None if last is None else round(last - zero, 1)


# ------------------------------------------------------------------- the cases


class Bench:
    def __init__(self, box: Sandbox, rps: int, work: Path):
        self.box, self.rps, self.work = box, rps, work

    def loads(self, case: str, group: str, name: str) -> dict[str, tuple[Load, Path]]:
        """DNS clients (a tenth ignore the TTL) and edge clients, both until stopped."""
        dns_dir, edge_dir = self.work / case / "dns", self.work / case / "edge"
        return {
            "dns": (self.box.load(name, rps=self.rps, clients=40, ttl_ignoring=0.1,
                                  report_dir=dns_dir), dns_dir),
            "edge": (self.box.load(self.box.edge_name(group, self.region(group)),
                                   rps=self.rps // 2, clients=10, report_dir=edge_dir), edge_dir),
        }

    def region(self, group: str) -> str:
        return "ap-southeast-1" if group.startswith("prd-sg") else "cn-north-1"

    @staticmethod
    def stop(case: Case, loads: dict[str, tuple[Load, Path]]) -> None:
        for key, (load, folder) in loads.items():
            case.runs[key] = Run.of(load, folder)

    def rotation(self, policy: str) -> Case:
        case = Case(policy)
        ami = self.box.bake()
        loads = self.loads(policy, "prd-cn", NAMES["prd-cn"])
        try:
            run = self.box.rotate("prd-cn", "--ami", ami, "--policy", f"bench-{policy}",
                                  "--yes", timeout=1200)
            if run.returncode == 4:  # the canary waits for approval: let the split show
                time.sleep(self.hold)
                run = self.box.rotate("promote", "prd-cn", timeout=1200)
        finally:
            self.stop(case, loads)
        record = self.box.record()
        case.status = record["status"] if run.returncode == 0 else (
            f"{record['status']} (exit {run.returncode}): {record['reason']}")
        measure_splits(case, record, until=(record.get("finished_at") or time.time()))
        measure_retire(case, record)
        return case

    def failover(self) -> Case:
        case = Case("failover")
        master, slave = "prd-sg-master", "prd-sg-slave"
        loads = self.loads("failover", master, NAMES["prd-sg"])
        marks = []
        try:
            for args in (("failover", master, "--to", slave), ("failback", master)):
                run = self.box.rotate(*args, "--yes", timeout=600)
                marks.append((args[0], time.time(), run.returncode))
                # every cached answer turns over, the overstaying ones too; the split shows
                time.sleep(TTL + OVERSTAY + self.hold)
        finally:
            self.stop(case, loads)
        case.status = ", ".join(f"{what} exit {rc}" for what, _, rc in marks)
        groups = {"failover": slave, "failback": master}
        for i, (what, at, _) in enumerate(marks):
            end = marks[i + 1][1] if i + 1 < len(marks) else time.time()
            share = {key: case.runs[key].group_share(groups[what], at + lag, end)
                     for key, lag in (("edge", 0), ("dns", TTL + OVERSTAY))}
            case.splits.append({"step": what, "weight": 100, "group": groups[what],
                                "edge": share["edge"][0], "edge_n": share["edge"][1],
                                "dns": share["dns"][0], "dns_n": share["dns"][1]})
        case.retire = "none: the side that gives up traffic stays up"
        return case

    def bad_release(self, fault: str, after: str | None) -> Case:
        case = Case(f"{fault} release")
        stable = self.box.live_slot()
        args = ["sandbox", "bake", "--group", "prd-cn", "--fault", fault]
        args += ["--rate", "0.2"] if fault == "5xx" else ["--after", after]
        baked = self.box.rotate(*args)
        assert baked.returncode == 0, baked.stderr
        watcher = CriticalChecks(self.box.info["consul"], f"prd-cn-{OTHER[stable]}")
        loads = self.loads(fault, "prd-cn", NAMES["prd-cn"])
        try:
            run = self.box.rotate("prd-cn", "--ami", baked.stdout.strip(), "--policy",
                                  "bench-canary", "--yes", timeout=1200)
            time.sleep(TTL + 2)  # failures stop one TTL after the weights are back
        finally:
            self.stop(case, loads)
            watcher.stop()
        record = self.box.record()
        case.status = f"{record['status']} (exit {run.returncode}): {record['reason']}"
        back = next((s for s in record.get("rollback_steps", [])
                     if s["kind"] == "rollback-weights"), None)
        moved = traffic_steps(record)
        if back is None or not moved:
            case.notes.append("no weight moved back: nothing to time")
            return case
        back_at = back["started_at"]
        back_done = back["params"].get("insync_at") or back["finished_at"]
        weight = max(s["weight"] for s in moved if s["name"] != back["name"])
        measure_splits(case, record, until=back_at)
        period, delay = cloudwatch_setting(self.box)
        if fault == "5xx":
            first = min(filter(None, (r.first_failure for r in case.runs.values())))
            detect = back_at - first
            bound = period + delay  # the failing request's period ends, then is published
            rps = self.rps + self.rps // 2
            exposure = back_done - first + TTL
            allowed = weight / 100 * rps * exposure
            failed = sum(r.report["failed"] for r in case.runs.values())
            late = case.runs["dns"].failed_after(back_done + TTL + 1)
            case.figures.update({
                "first_failure_to_weight_change_s": round(detect, 2),
                "bound_s": bound, "over_bound_s": round(detect - bound, 2),
                "failed": failed, "failed_bound": round(allowed, 1),
                "ttl_honouring_failed_after_back_plus_ttl": late})
            case.notes.append(
                f"first failing request -> rollback's first weight change {detect:.1f}s; bound "
                f"{bound:.1f}s (period {period:g}s + CloudWatch delay {delay:g}s): "
                f"{detect - bound:+.1f}s (target <= +2s)")
            case.notes.append(
                f"failed {failed} <= {weight}% x {rps} req/s x {exposure:.1f}s = {allowed:.0f} "
                f"(detect + move + one TTL); TTL-honouring failures once weights were back "
                f"+ TTL: {late}")
        else:
            first = watcher.first
            if first is None:
                case.notes.append("Consul never reported a critical check of the candidate")
                return case
            detect = back_at - first
            case.figures.update({"first_critical_to_weight_change_s": round(detect, 2),
                                 "first_critical_to_insync_s": round(back_done - first, 2)})
            case.notes.append(
                f"first critical check -> rollback's first weight change {detect:.2f}s "
                f"(target <= 1s); weights in sync {back_done - first:.2f}s after it")
        return case

    hold = 25.0


class CriticalChecks:
    """Watches Consul for the first check of a service carrying ``tag`` that turns from
    passing to critical (a new task's check starts critical: that is not a failure)."""

    def __init__(self, address: str, tag: str):
        import consul

        host, port = address.split("://")[-1].rsplit(":", 1)
        self.client = consul.Consul(host=host, port=int(port))
        self.tag, self.first = tag, None
        self._passed: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = None
        while not self._stop.is_set() and self.first is None:
            try:
                index, checks = self.client.health.state("any", index=index, wait="2s")
            except Exception:  # the emulator restarting: ask again
                index = None
                self._stop.wait(0.2)
                continue
            now = time.time()
            for check in checks:
                if self.tag not in (check.get("ServiceTags") or []):
                    continue
                key = (check["Node"], check["CheckID"])
                if check["Status"] == "passing":
                    self._passed.add(key)
                elif check["Status"] == "critical" and key in self._passed:
                    self.first = self.first or now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# --------------------------------------------------------------------- output


def show(cases: list[Case], changed: dict[str, str], info: dict, rps: int) -> None:
    print(f"\nsandbox: CloudWatch period {info['metric_period']:g}s (production 60s), record "
          f"TTL {TTL}s; load: {rps} req/s through DNS (10% of clients keep answers 30s past "
          f"the TTL) + {rps // 2} req/s through the edge")
    for name, what in changed.items():
        print(f"policy {name}: as shipped except {what}")
    print(f"\n{'case':<18} {'requests':>9} {'failed':>7}  {'by cause':<28} by client kind")
    for case in cases:
        t = case.totals()
        causes = " ".join(f"{k} {n}" for k, n in t["by_cause"].items() if n) or "-"
        kinds = " ".join(f"{k} {n}" for k, n in t["by_kind"].items())
        print(f"{case.name:<18} {t['requests']:>9} {t['failed']:>7}  {causes:<28} {kinds}")
    print("\nsplit per step: the candidate's share of requests (edge: from the weight change; "
          "DNS: TTL-honouring clients, one TTL later)")
    print(f"{'case':<18} {'step':<28} {'weight':>6} {'edge %':>7} {'n':>6} {'dns %':>7} {'n':>6}")
    for case in cases:
        for s in case.splits:
            print(f"{case.name:<18} {s['step'][:28]:<28} {s['weight']:>6} {s['edge']:>7} "
                  f"{s['edge_n']:>6} {s['dns']:>7} {s['dns_n']:>6}")
    print()
    for case in cases:
        print(f"{case.name}: {case.status}")
        if case.retire:
            print(f"  retire: {case.retire}")
        for note in case.notes:
            print(f"  {note}")


def to_json(cases: list[Case]) -> list[dict[str, Any]]:
    return [{"case": c.name, "status": c.status, **c.totals(), "splits": c.splits,
             "retire": c.retire, "notes": c.notes, **c.figures} for c in cases]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rps", type=int, default=60, help="DNS clients' rate (edge: half)")
    parser.add_argument("--quiet-for", default="20s")
    parser.add_argument("--hold", default="25s", help="the canary's pauses")
    parser.add_argument("--after", default="40s",
                        help="when the unhealthy release's checks start failing")
    parser.add_argument("--only", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--step-seconds", default="0.3")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rotator-zero-downtime-"))
    root = work / "project"
    prepare_project(root, draining=None)
    changed = bench_policies(root, args.quiet_for, args.hold)
    box = Sandbox(root)
    print(f"sandbox in {root} ...", flush=True)
    up = box.rotate("sandbox", "up", "--step-seconds", args.step_seconds, timeout=900)
    if up.returncode != 0:
        print(up.stdout, up.stderr)
        return 1
    bench = Bench(box, args.rps, work / "loads")
    bench.hold = parse_duration(args.hold)
    cases: list[Case] = []
    try:
        for name in args.only:
            print(f"== {name}", flush=True)
            if name in ("blue-green", "canary"):
                cases.append(bench.rotation(name))
            elif name == "failover":
                cases.append(bench.failover())
            else:
                cases.append(bench.bad_release(name, args.after))
            wait_for(lambda: box.record() is None or box.record()["status"] != "running",
                     timeout=60)
    finally:
        info = box.info
        box.rotate("sandbox", "down", timeout=300)
    show(cases, changed, info, args.rps)
    if args.json:
        args.json.write_text(json.dumps(to_json(cases), indent=1) + "\n")
    return 0 if all(c.totals()["failed"] == 0 for c in cases
                    if c.name in ("blue-green", "canary", "failover")) else 1


if __name__ == "__main__":
    sys.exit(main())
