"""Apply, no-op plan and destroy of one prd-cn slot in the sandbox, timed.

Each phase is the median of several runs, with the long-lived (reattached) provider and
with Terraform launching the provider itself, and split into:
  start-up   Terraform start, backend/state read, provider start or configuration,
             up to the first resource operation
  provider   time resources were in progress while the emulator was idle: the
             provider's own waiters (e.g. 10 s after RunInstances)
  emulator   time the emulator was serving at least one request
  other      the rest (planning, state writes, lock release)

    .venv/bin/python bench/terraform_slot.py [runs]
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import python_terraform

from rotator.infra.terraform import TerraformInfrastructure
from rotator.sandbox.aws import AwsEmulator
from rotator.sandbox.terraform_runtime import TerraformRuntime

REPO = Path(__file__).resolve().parents[1]
GROUP = "prd-cn"
REGION = "cn-north-1"
REFERENCE = {"apply": 26.8, "plan": 11.1, "destroy": 28.4}
TARGET = {"apply": 20.0, "plan": 5.0, "destroy": 20.0}


class TimedEmulator(AwsEmulator):
    """Records when it is busy serving requests."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.intervals: list[tuple[float, float]] = []
        self._ilock = threading.Lock()

    def __call__(self, environ, start_response):
        t0 = time.time()
        body = list(super().__call__(environ, start_response))
        with self._ilock:
            self.intervals.append((t0, time.time()))
        return body


def union(intervals, lo, hi):
    """Total length of the union of intervals clipped to [lo, hi]."""
    spans = sorted((max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi)
    total, end = 0.0, lo
    for a, b in spans:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def intersect(xs, ys):
    out = []
    for a, b in xs:
        for c, d in ys:
            lo, hi = max(a, c), min(b, d)
            if hi > lo:
                out.append((lo, hi))
    return out


def resource_intervals(out: str) -> list[tuple[float, float]]:
    """(start, end) of every resource operation in ``-json`` output."""
    starts: dict[str, float] = {}
    spans = []
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        kind = msg.get("type")
        if kind not in ("apply_start", "apply_complete", "refresh_start", "refresh_complete"):
            continue
        ts = dt.datetime.fromisoformat(msg["@timestamp"].replace("Z", "+00:00")).timestamp()
        addr = msg.get("hook", {}).get("resource", {}).get("addr", "")
        if kind.endswith("_start"):
            starts[addr] = ts
        elif addr in starts:
            spans.append((starts.pop(addr), ts))
    return spans


def timed(infra, emulator, slot, ami, phase):
    variables = infra._variables(slot, ami)
    opts = {"input": False, "json": python_terraform.IsFlagged, "var": variables}
    if phase == "plan":
        args, opts["detailed_exitcode"] = ("plan",), python_terraform.IsFlagged
    else:
        args = ("apply", "-destroy") if phase == "destroy" else ("apply",)
        opts["auto_approve"] = python_terraform.IsFlagged
    emulator.intervals.clear()
    t0 = time.time()
    res = infra._run(slot, *args, **opts)
    t1 = time.time()
    if res.rc not in (0, 2) or (phase == "plan" and res.rc != 0):
        raise SystemExit(f"{phase} failed (rc {res.rc}): {res.out[-2000:]}{res.err[-2000:]}")
    spans = resource_intervals(res.out)
    first = min((a for a, _ in spans), default=t1)
    busy = union(emulator.intervals, t0, t1)
    in_resources = union(spans, t0, t1)
    emu_in_resources = union(intersect(spans, emulator.intervals), t0, t1)
    return {
        "total": t1 - t0,
        "start-up": first - t0,
        "provider": max(0.0, in_resources - emu_in_resources),
        "emulator": busy,
        "other": max(0.0, (t1 - t0) - (first - t0) - (in_resources - emu_in_resources) - (busy - emu_in_resources)),
    }


def measure(reattach: bool, runs: int, work: Path):
    emulator = TimedEmulator(ami_validation=True).start()
    emulator.warm(REGION)
    runtime = TerraformRuntime(endpoint_url=emulator.url, state_dir=work / f"state-{reattach}", reattach=reattach)
    try:
        runtime.start([REGION])
        ami = emulator.register_ami("bench", region=REGION)
        infra = TerraformInfrastructure(
            REPO / "groups" / GROUP,
            group=GROUP,
            settings=runtime.settings(GROUP, key=f"bench/{reattach}/terraform.tfstate", data_dir=work / f"data-{reattach}"),
        )
        infra.init()
        infra._ensure_workspace("blue")
        # One untimed cycle: moto's per-region data, botocore's caches, the page cache.
        for phase in ("apply", "destroy"):
            timed(infra, emulator, "blue", ami, phase)
        results = {p: [] for p in ("apply", "plan", "destroy")}
        for _ in range(runs):
            for phase in ("apply", "plan", "destroy"):
                results[phase].append(timed(infra, emulator, "blue", ami, phase))
        return {
            phase: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            for phase, rows in results.items()
        }
    finally:
        runtime.stop()
        emulator.stop()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as tmp:
        table = {
            "long-lived provider": measure(True, runs, Path(tmp)),
            "provider launched per command": measure(False, runs, Path(tmp)),
        }
    print(f"\nprd-cn slot (22 resources, 5 instances), median of {runs} runs, seconds")
    print(f"{'mode':32} {'phase':8} {'total':>7} {'start-up':>9} {'provider':>9} {'emulator':>9} {'other':>7}  target  before")
    for mode, phases in table.items():
        for phase, f in phases.items():
            print(
                f"{mode:32} {phase:8} {f['total']:7.1f} {f['start-up']:9.1f} {f['provider']:9.1f} "
                f"{f['emulator']:9.1f} {f['other']:7.1f}  <{TARGET[phase]:4.0f}  {REFERENCE[phase]:6.1f}"
            )


if __name__ == "__main__":
    main()
