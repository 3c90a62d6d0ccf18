"""`make demo`: bring the sandbox up, bake an AMI, rotate prd-cn onto it while clients send
requests, then show what they saw and where traffic is.

Each step runs the real `rotate` command, exactly as a user would type it. The rotation
uses the `demo` policy (blue-green with a 10 s quiet window before the old slot is
destroyed) in the sandbox's environment (records written with a 10 s TTL); both are said
in the output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

NAME = "www.rotator-demo.cn"


def _rotate() -> str:
    here = Path(sys.executable).parent / "rotate"
    return str(here) if here.exists() else (shutil.which("rotate") or "rotate")


def _run(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [_rotate(), *args]
    print(f"\n$ rotate {' '.join(args)}", flush=True)
    return subprocess.run(cmd, text=True, capture_output=capture, check=False)


def _start_load(report: Path) -> subprocess.Popen:
    args = ["sandbox", "load", NAME, "--rps", "50", "--clients", "25", "--duration", "10m",
            "--output", "json", "--report", str(report)]
    print(f"\n$ rotate {' '.join(args)} &   # clients beside the rotation, stopped after it",
          flush=True)
    return subprocess.Popen([_rotate(), *args], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def _stop_load(load: subprocess.Popen) -> dict:
    load.send_signal(signal.SIGTERM)
    out, _ = load.communicate(timeout=120)
    return json.loads(out) if out.strip() else {}


def _say_load(summary: dict) -> None:
    if not summary:
        print("the load generator reported nothing")
        return
    slots = ", ".join(f"{s} {n}" for s, n in sorted(summary["by_slot"].items()))
    causes = ", ".join(f"{c} {n}" for c, n in summary["failed_by_cause"].items() if n)
    print(f"\nclients sent {summary['requests']} requests to {NAME} during the rotation: "
          f"{summary['failed']} failed{f' ({causes})' if causes else ''}; served by {slots}; "
          f"latency p50 {summary['latency_ms']['p50']:.1f} ms, "
          f"p99 {summary['latency_ms']['p99']:.1f} ms")
    if summary.get("chart"):
        print(f"chart of every second (requests by slot, failures in red, the steps marked): "
              f"{summary['chart']}")


def main() -> int:
    started = time.monotonic()
    os.environ["ROTATOR_ENV"] = "sandbox"  # the demo always runs in the project's sandbox
    from rotator.config import Project
    from rotator.sandbox.control import Sandbox

    project = Project.find()
    box = Sandbox(project)
    if box.info() is None or not box.seed():
        up = _run("sandbox", "up")
        if up.returncode != 0:
            return up.returncode
    else:
        print("the sandbox is already up (`rotate sandbox status` shows it)")
    bake = _run("sandbox", "bake", "--group", "prd-cn", capture=True)
    if bake.returncode != 0:
        sys.stderr.write(bake.stderr)
        return bake.returncode
    ami = bake.stdout.strip()
    print(ami)
    report = project.root / ".rotator" / "demo-load"
    load = _start_load(report)
    rotation_started = time.monotonic()
    try:
        print("(the demo policy waits 10 s of quiet before destroying the old slot; "
              "production policies wait 2 minutes)")
        rotation = _run("prd-cn", "--ami", ami, "--policy", "demo", "--yes")
        took = time.monotonic() - rotation_started
    finally:
        summary = _stop_load(load)
    _say_load(summary)
    _run("status", "prd-cn")
    print(f"\nrotation took {took:.0f}s; the whole demo {time.monotonic() - started:.0f}s.")
    print("The sandbox keeps running: try `.venv/bin/rotate sandbox status`, "
          "`.venv/bin/rotate history prd-cn`,\n"
          f"`.venv/bin/rotate sandbox load {NAME} --duration 20s`, "
          f"`.venv/bin/rotate plan prd-cn --ami {ami} --policy canary`. "
          "Stop it with `.venv/bin/rotate sandbox down` (or `make sandbox-down`).")
    failed = summary.get("failed", 1)
    return rotation.returncode or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
