"""A full blue-green rotation of prd-cn in the sandbox, with N = 10, 50, 200 apps.

For each N: wall time per phase, split into the inherent part (Terraform apply and
destroy, the emulator's deployment time, configured bake, ELB draining) and rotator's
own overhead; the overhead ratio (total / inherent) and the rotator process's peak
memory. The rotation runs in a child process (one per N) so peak RSS is its own.

    .venv/bin/python bench/rotation.py [--sizes 10 50 200] [--step-seconds 0.5] [--runs 3]

Each N is rotated ``--runs`` times; the run with the median overhead is shown, with the
spread (the sandbox's emulators share one process and add some jitter). Before the first
step: ``open`` (configuration and app files), ``preflight`` (AMI lookup; Terraform's
``validate`` verdict, cached per configuration, was reached by ``rotate sandbox up``)
and ``plan`` (lock, traffic read, record).

Targets: overhead under 10 % and under 2 s at N = 50; memory under 200 MB at N = 200.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = """
name: bench
steps:
  - weight: 100
gate: {consecutive_successes: 1, no_data: 60s}
deadlines: {provision: 10m, deploy: 5m, verify: 5m, shift: 5m, retire: 10m}
retain_stable: 2s
"""
DEPLOY_STEPS = 2  # the emulator: staging -> running, then the first health check


def app(i: int) -> dict:
    return {
        "id": f"svc-{i:03d}", "cmd": "./serve --port $PORT0", "instances": 1, "cpus": 0.1,
        "mem": 64, "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "http"}],
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                          "gracePeriodSeconds": 30, "intervalSeconds": 10,
                          "timeoutSeconds": 5, "maxConsecutiveFailures": 3}],
    }


def prepare(root: Path) -> None:
    (root / "groups").mkdir(parents=True)
    for name in ("prd-cn", "_modules"):
        shutil.copytree(ROOT / "groups" / name, root / "groups" / name,
                        ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copytree(ROOT / "edge", root / "edge",
                    ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    (root / "policies").mkdir()
    for name in ("blue-green", "failover", "canary"):
        shutil.copy(ROOT / "policies" / f"{name}.yaml", root / "policies")
    (root / "policies" / "bench.yaml").write_text(POLICY.lstrip())
    for tf in (root / "edge").rglob("*.tf"):
        tf.write_text(re.sub(r"connection_draining_timeout\s*=\s*\d+",
                             "connection_draining_timeout = 2", tf.read_text()))


def set_apps(root: Path, n: int) -> None:
    folder = root / "groups" / "prd-cn" / "apps"
    shutil.rmtree(folder)
    folder.mkdir()
    for i in range(n):
        (folder / f"svc-{i:03d}.json").write_text(json.dumps(app(i)))


def child(ami: str) -> None:
    """Run one rotation in this process; print its record and peak RSS as JSON."""
    from rotator.config import Project
    from rotator.session import Session

    started = time.time()
    session = Session.open(Project(Path.cwd()), "prd-cn", "bench")
    opened = time.time()
    session.preflight(ami)
    checked = time.time()
    record = session.engine().start(ami)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"record": record.to_dict(), "rss_mb": rss_mb,
                      "total": time.time() - started, "open": opened - started,
                      "preflight": checked - opened, "started": checked}))


def analyse(result: dict, step_seconds: float) -> dict:
    rec = result["record"]
    # configuration and app files read, AMI and Terraform preflight, lock and planning
    phases: dict[str, float] = {"open": result["open"], "preflight": result["preflight"],
                                "plan": rec["steps"][0]["started_at"] - result["started"]}
    inherent = 0.0
    for st in rec["steps"]:
        took = (st["finished_at"] or 0) - (st["started_at"] or 0)
        phases[st["kind"]] = phases.get(st["kind"], 0.0) + took
        if st["kind"] in ("provision", "retire-destroy", "retire-traffic", "bake"):
            inherent += took  # Terraform, configured bake, ELB draining
        elif st["kind"] == "deploy":
            inherent += min(took, DEPLOY_STEPS * step_seconds)
    total = result["total"]
    return {"phases": phases, "total": total, "inherent": inherent,
            "overhead": total - inherent, "ratio": total / inherent, "rss_mb": result["rss_mb"],
            "status": rec["status"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--step-seconds", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=3,
                        help="rotations per N; the one with the median overhead is shown")
    args = parser.parse_args()
    if "child" in os.environ.get("ROTATOR_BENCH_ROLE", ""):
        child(os.environ["ROTATOR_BENCH_AMI"])
        return 0
    root = Path(tempfile.mkdtemp(prefix="rotator-bench-"))
    prepare(root)
    env = {**os.environ, "ROTATOR_ROOT": str(root)}
    env.pop("ROTATOR_ENV", None)
    rotate = str(Path(sys.executable).parent / "rotate")
    set_apps(root, args.sizes[0])
    print(f"sandbox in {root} ...", flush=True)
    up = subprocess.run([rotate, "sandbox", "up", "--step-seconds", str(args.step_seconds)],
                        cwd=root, env=env, capture_output=True, text=True)
    if up.returncode != 0:
        print(up.stdout, up.stderr)
        return 1
    rows = []
    try:
        for n in args.sizes:
            set_apps(root, n)
            runs = []
            for _ in range(args.runs):
                ami = subprocess.run([rotate, "sandbox", "bake", "--group", "prd-cn"], cwd=root,
                                     env=env, capture_output=True, text=True,
                                     check=True).stdout.strip()
                out = subprocess.run(
                    [sys.executable, __file__], cwd=root, capture_output=True, text=True,
                    env={**env, "ROTATOR_BENCH_ROLE": "child", "ROTATOR_BENCH_AMI": ami})
                if out.returncode != 0:
                    print(out.stdout[-3000:], out.stderr[-3000:])
                    return 1
                r = analyse(json.loads(out.stdout.strip().splitlines()[-1]), args.step_seconds)
                runs.append(r)
                print(f"N={n}: {r['status']}, total {r['total']:.1f}s, inherent "
                      f"{r['inherent']:.1f}s, overhead {r['overhead']:.2f}s, ratio "
                      f"{r['ratio']:.3f}, peak RSS {r['rss_mb']:.0f} MB", flush=True)
            runs.sort(key=lambda r: r["overhead"])
            median = dict(runs[len(runs) // 2])
            median["spread"] = (runs[0]["overhead"], runs[-1]["overhead"])
            median["rss_mb"] = max(r["rss_mb"] for r in runs)
            rows.append((n, median))
    finally:
        subprocess.run([rotate, "sandbox", "down"], cwd=root, env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    kinds = ["open", "preflight", "plan", "provision", "deploy", "verify", "shift", "bake",
             "retire-traffic", "retire-destroy"]
    print("\nwall time per phase (s)")
    print(f"{'N':>5} " + " ".join(f"{k:>9}" for k in kinds))
    for n, r in rows:
        print(f"{n:>5} " + " ".join(f"{r['phases'].get(k, 0):>9.2f}" for k in kinds))
    print(f"\nmedian of {args.runs} run(s) per N (overhead spread: min-max)")
    print(f"{'N':>5} {'total s':>9} {'inherent s':>11} {'overhead s':>11} {'spread s':>11} "
          f"{'ratio':>7} {'overhead %':>11} {'peak MB':>8}")
    for n, r in rows:
        low, high = r["spread"]
        print(f"{n:>5} {r['total']:>9.1f} {r['inherent']:>11.1f} {r['overhead']:>11.2f} "
              f"{f'{low:.2f}-{high:.2f}':>11} {r['ratio']:>7.3f} "
              f"{100 * r['overhead'] / r['inherent']:>10.1f}% {r['rss_mb']:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
