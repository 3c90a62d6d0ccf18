"""Requests per second the sandbox's data plane sustains through DNS, load balancer and
task while a rotation runs, and the latency the path adds over going to a task directly.

    .venv/bin/python bench/data_plane.py [--rps 500] [--clients 100] [--policy demo]
    .venv/bin/python bench/data_plane.py --up          # bring the project's sandbox up first
    .venv/bin/python bench/data_plane.py --runs 5      # five rotations, one after the other
    .venv/bin/python bench/data_plane.py --stand-in    # DNS + load generator, stand-in LB/task

Sandbox mode uses the project's running sandbox (``rotate sandbox up``; ``--project`` or
``ROTATOR_ROOT`` name another project folder). The baseline comes first: the same paced
clients sent straight to one task of the live slot, at the loopback endpoint the world's
address book names for the task's private address (``--baseline-url`` names another
target). Then it bakes an AMI, starts ``rotate --env FILE prd-cn --ami ... --policy demo``
(FILE: the sandbox's environment with records written at ``--record-ttl`` seconds, so
the old slot is soon quiet) and drives ``--rps`` through ``www.rotator-demo.cn`` (the
sandbox's DNS, the slot's load balancer, its proxies, their tasks) from the rotation's
start until it ends (or for ``--duration``): provisioning, deploying, the shift, the
quiet wait and the old slot's destruction all happen under load. The latency is also
given per rotation step, so a tail can be laid at the step that made it; ``--runs N``
measures N rotations in a row and sums up how the p99 varies between them.

Stand-in mode needs no sandbox: the AWS emulator holds two weighted records whose
weights flip every few seconds, the sandbox's DNS server answers from them, and a
stand-in load balancer per slot (an aiohttp reverse proxy, in a process of its own as
the world is) forwards to a stand-in task. It measures the DNS server and the load
generator, with one proxy hop in the path.

Targets: at least 500 requests/s with no failed request; p99 added latency under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from rotator.sandbox.load.generator import LoadSettings, run_load
from rotator.sandbox.load.report import summary
from rotator.sandbox.load.resolving import SandboxResolver
from rotator.sandbox.load.tally import percentile

ROOT = Path(__file__).resolve().parent.parent
TARGET_RPS = 500
TARGET_P99_ADDED_MS = 20.0
GROUP, NAME = "prd-cn", "www.rotator-demo.cn"
ROTATE = str(Path(sys.executable).parent / "rotate")


# ----------------------------------------------------------------- the baseline


async def direct(url: str, rps: float, duration: float, clients: int,
                 warmup: float = 2.0) -> dict:
    """The same pacing as the load generator, straight to one URL (no DNS, no balancer);
    latency counts after ``warmup`` (every client opening its first connection at once)."""
    latencies: list[float] = []
    failed = requests = 0
    interval = clients / rps
    start = time.monotonic()
    end = start + duration

    async def one(index: int) -> None:
        nonlocal failed, requests
        async with aiohttp.ClientSession(trust_env=False,
                                         timeout=aiohttp.ClientTimeout(total=7)) as session:
            due = start + index / rps
            while due < end:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                began = time.monotonic()
                requests += 1
                try:
                    async with session.get(url) as response:
                        await response.read()
                        ok = response.status < 500
                except (aiohttp.ClientError, OSError, TimeoutError):
                    ok = False
                if not ok:
                    failed += 1
                elif began >= start + warmup:
                    latencies.append(time.monotonic() - began)
                due = max(due + interval, time.monotonic() - interval)

    await asyncio.gather(*(one(i) for i in range(clients)))
    return {"requests": requests, "failed": failed,
            "achieved_rps": round(requests / duration, 1),
            "latency_ms": _percentiles(latencies)}


def _percentiles(latencies) -> dict:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50": None, "p99": None}
    return {"p50": round(percentile(ordered, 0.5) * 1000, 2),
            "p99": round(percentile(ordered, 0.99) * 1000, 2)}


def loaded_figures(result, warmup: float = 2.0) -> dict:
    """The load's summary, with its latency taken after the same warm-up as the baseline."""
    figures = summary(result)
    steady = [x for second, counts in result.tally.seconds.items() if second >= warmup
              for x in counts.latencies]
    figures["latency_ms"] = _percentiles(steady)
    return figures


class OtherLoad:
    """CPU used by processes outside the run (other users of a shared machine), sampled
    from /proc every second in a process of its own (so it takes nothing from the load's
    clients): neither this bench and what it started nor the world and what it started.
    Linux only; elsewhere it records nothing."""

    QUIET = 0.25  # of a core: a second in which others used less is a quiet one

    def __init__(self, world_pid: int) -> None:
        self.roots = {os.getpid(), world_pid}
        self.by_second: dict[int, float] = {}  # wall-clock second -> cores used by others
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_sample_others, daemon=True,
                                        args=(self.roots, self._stop, send))

    def __enter__(self) -> OtherLoad:
        if Path("/proc/self/stat").exists():
            self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process.is_alive():
            self._stop.set()
            if self._receive.poll(10):
                self.by_second = self._receive.recv()
            self._process.join(5)

    def during(self, result) -> dict:
        """Others' mean and peak load over the run, and the p99 of its quiet seconds."""
        seconds = {s: self.by_second.get(int(result.started_at + s)) for s in result.tally.seconds}
        known = [v for v in seconds.values() if v is not None]
        if not known:
            return {}
        quiet = [x for s, counts in result.tally.seconds.items() if s >= 2
                 and seconds[s] is not None and seconds[s] < self.QUIET for x in counts.latencies]
        return {"mean_cores": round(sum(known) / len(known), 2), "max_cores": round(max(known), 2),
                "quiet_seconds": sum(1 for v in known if v < self.QUIET),
                "seconds": len(known), "quiet_latency_ms": _percentiles(quiet)}


def by_step(result, steps: list[dict], warmup: float = 2.0) -> list[dict]:
    """Latency per rotation step: which part of the rotation the slow requests met. A
    second counts for every step running in it; seconds with no step are ``between``."""
    spans = []
    for mark in steps:
        begin = (mark["started_at"] or mark["finished_at"]) - result.started_at
        end = (mark["finished_at"] or result.started_at + result.elapsed) - result.started_at
        spans.append((mark["step"], int(begin), int(end)))
    latencies: dict[str, list[float]] = {}
    for second, counts in result.tally.seconds.items():
        if second < warmup:
            continue
        names = [name for name, begin, end in spans if begin <= second <= end] or ["between"]
        for name in names:
            latencies.setdefault(name, []).extend(counts.latencies)
    rows = []
    for name, values in latencies.items():
        slow = sum(1 for x in values if x > TARGET_P99_ADDED_MS / 1000)
        rows.append({"step": name, "requests": len(values), **_percentiles(values),
                     "slower_than_target": slow})
    return rows


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks so far)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            found[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def _others(roots: set[int], processes: dict[int, tuple[int, int]]) -> set[int]:
    def ours(pid: int) -> bool:
        for _ in range(64):
            if pid in roots:
                return True
            if pid <= 1:
                return False
            pid = processes.get(pid, (0, 0))[0]
        return False
    return {pid for pid in processes if not ours(pid)}


def _sample_others(roots: set[int], stop, send) -> None:
    hz = os.sysconf("SC_CLK_TCK")
    by_second: dict[int, float] = {}
    before, at = _processes(), time.time()
    while not stop.wait(1.0):
        now, current = time.time(), _processes()
        others = _others(roots, current)
        ticks = sum(t - before[pid][1] for pid, (_, t) in current.items()
                    if pid in before and pid in others)
        by_second[int(at)] = ticks / hz / (now - at)
        before, at = current, now
    send.send(by_second)


# ------------------------------------------------------------------- stand-ins


def _stand_in_world(port: int, slots: dict[str, str], task: str, flip_every: float,
                    record_ttl: int, started, ready) -> None:
    """Child process, as the sandbox's world is one: the AWS emulator with the weighted
    records, the sandbox's DNS server, one task and one reverse proxy per slot."""
    import threading

    from aiohttp import web

    from rotator.sandbox.aws import AwsEmulator
    from rotator.sandbox.dns import MotoHostedZones, SandboxDns

    emulator = AwsEmulator().start()
    r53 = emulator.client("route53", "cn-north-1")
    zone = r53.create_hosted_zone(Name="rotator-demo.cn", CallerReference="bench")["HostedZone"]["Id"]
    lbs = {f"{s}-elb.us-east-1.elb.amazonaws.com": a for s, a in slots.items()}

    def weights(blue: int) -> None:
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": {
                "Name": NAME, "Type": "CNAME", "SetIdentifier": f"{GROUP}-{slot}", "Weight": w,
                "TTL": record_ttl, "ResourceRecords": [{"Value": f"{slot}-elb.us-east-1.elb.amazonaws.com"}]}}
            for slot, w in (("blue", blue), ("green", 100 - blue))]})

    def rotate() -> None:  # a canary's steps, in seconds instead of minutes
        started.wait()
        for blue in (95, 75, 50, 0, 0, 100):
            time.sleep(flip_every)
            weights(blue)

    weights(100)
    dns_server = SandboxDns(MotoHostedZones(), lambda n: lbs.get(n.lower().rstrip("."))).start()
    threading.Thread(target=rotate, daemon=True).start()

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"app": "/prd/web", "task": "web.1", "slot": request.headers.get(
            "X-Slot", "blue"), "ami": "ami-0bench", "version": "1"})

    def proxy(slot: str):
        upstream = {}

        async def forward(request: web.Request) -> web.Response:
            if "session" not in upstream:
                upstream["session"] = aiohttp.ClientSession(trust_env=False)
            async with upstream["session"].get(f"http://{task}:{port}/",
                                               headers={"X-Slot": slot}) as response:
                return web.Response(body=await response.read(), status=response.status,
                                    content_type="application/json")
        return forward

    async def main() -> None:
        for address, handler in [(task, answer), *[(a, proxy(s)) for s, a in slots.items()]]:
            app = web.Application()
            app.router.add_get("/", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, address, port).start()
        ready.put(dns_server.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def stand_in(args) -> None:
    import socket

    slots = {"blue": "127.0.0.61", "green": "127.0.0.62"}
    task = "127.0.0.71"
    with socket.socket() as s:
        s.bind((task, 0))
        port = s.getsockname()[1]
    started, ready = multiprocessing.Event(), multiprocessing.Queue()
    world = multiprocessing.Process(target=_stand_in_world, daemon=True, args=(
        port, slots, task, args.duration / 7, args.record_ttl, started, ready))
    world.start()
    try:
        dns_port = ready.get(timeout=60)
        baseline = asyncio.run(direct(f"http://{task}:{port}/", args.rps, args.baseline_duration,
                                      args.clients))
        started.set()
        loaded = loaded_figures(asyncio.run(run_load(NAME, settings(args, port),
                                                     SandboxResolver("127.0.0.1", dns_port))))
    finally:
        world.terminate()
    show("stand-in (sandbox DNS + load generator; one aiohttp proxy hop as the balancer)",
         baseline, loaded, args, path="DNS+stand-in LB+task")


# --------------------------------------------------------------------- sandbox


def project_root(args) -> Path:
    return Path(args.project or os.environ.get("ROTATOR_ROOT") or ROOT).resolve()


def rotate_cmd(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([ROTATE, *args], cwd=root, env={**os.environ, "ROTATOR_ROOT": str(root)},
                          text=True, capture_output=True, **kwargs)


def sandbox(args) -> None:
    from rotator.config import Project
    from rotator.sandbox.control import Sandbox
    from rotator.sandbox.load.command import NotServing, endpoints

    root = project_root(args)
    box = Sandbox(Project(root))
    if box.info() is None:
        if not args.up:
            sys.exit("the sandbox is not running: `rotate sandbox up` (or --up), or --stand-in")
        up = rotate_cmd(root, "sandbox", "up", timeout=1800)
        if up.returncode:
            sys.exit(up.stdout + up.stderr)
    info = box.info()
    try:
        dns_host, dns_port, lb_port = endpoints(info)
    except NotServing as exc:
        sys.exit(f"{exc}\n(--stand-in measures this branch's part without the serving data plane)")

    added = []
    for run in range(1, args.runs + 1):
        report = None if not args.report else (
            Path(args.report) / f"run-{run}" if args.runs > 1 else Path(args.report))
        figures = measure_rotation(root, info, args, dns_host, dns_port, lb_port, report)
        added.append(figures["added_ms"]["p99"])
        if args.runs > 1:
            print(f"  run {run} of {args.runs}: p99 added {_cell(added[-1])} ms\n")
    if args.runs > 1:
        known = sorted(a for a in added if a is not None)
        met = sum(1 for a in known if a < TARGET_P99_ADDED_MS)
        median = known[len(known) // 2] if known else None
        print(f"p99 added latency over {args.runs} rotations: "
              f"{', '.join(_cell(a) for a in added)} ms; median {_cell(median)} ms, worst "
              f"{_cell(known[-1] if known else None)} ms; under {TARGET_P99_ADDED_MS:g} ms in "
              f"{met} of {args.runs}")


def measure_rotation(root: Path, info: dict, args, dns_host: str, dns_port: int, lb_port: int,
                     report: Path | None) -> dict:
    """One baseline and one rotation of GROUP under load; prints and returns the figures."""
    target = args.baseline_url or task_endpoint(root, info)
    baseline = asyncio.run(direct(target, args.rps, args.baseline_duration, args.clients))
    bake = rotate_cmd(root, "sandbox", "bake", "--group", GROUP)
    if bake.returncode:
        sys.exit(bake.stdout + bake.stderr)
    ami = bake.stdout.strip()
    env_file = short_ttl_environment(root, args.record_ttl)
    rotation = subprocess.Popen(
        [ROTATE, "--env", str(env_file), GROUP, "--ami", ami, "--policy", args.policy, "--yes"],
        cwd=root, env={**os.environ, "ROTATOR_ROOT": str(root)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with OtherLoad(info["pid"]) as others:
            result = asyncio.run(load_during(rotation, args, lb_port,
                                             SandboxResolver(dns_host, dns_port)))
    finally:
        code = rotation.wait(timeout=1800)
    result.steps = rotation_steps(root, result)
    loaded = loaded_figures(result)
    loaded["others"] = others.during(result)
    steps = result.steps
    loaded["by_step"] = by_step(result, steps)
    if report is not None:
        from rotator.sandbox.load.report import write_report

        loaded.update(write_report(result, {**summary(result), **loaded}, report))
    return show(f"sandbox: {GROUP} rotating onto {ami} (policy {args.policy}, record TTL "
                f"{args.record_ttl} s, rotate exit code {code})", baseline, loaded, args,
                target=target, steps=steps)


def short_ttl_environment(root: Path, ttl: int) -> Path:
    """The sandbox's environment with weighted records written at ``ttl`` seconds, so the
    old slot is quiet soon after the shift (as the demo's rotation does)."""
    import yaml

    folder = root / ".rotator" / "sandbox"
    env = yaml.safe_load((folder / "environment.yaml").read_text())
    env["traffic"] = {**(env.get("traffic") or {}), "record_ttl": ttl}
    path = folder / "bench-environment.yaml"
    path.write_text(yaml.safe_dump(env, sort_keys=False))
    return path


async def load_during(rotation: subprocess.Popen, args, lb_port: int, lookup):
    """The load from the rotation's start until it ends (or for ``--duration``)."""
    stop = asyncio.Event()

    async def watch() -> None:
        while rotation.poll() is None:
            await asyncio.sleep(0.5)
        if args.duration is None:
            stop.set()

    watcher = asyncio.create_task(watch())
    try:
        return await run_load(NAME, settings(args, lb_port, args.duration or args.max_duration),
                              lookup, stop=stop)
    finally:
        watcher.cancel()


def task_endpoint(root: Path, info: dict) -> str:
    """The loopback endpoint of one task of the app behind NAME in the live slot, from the
    world's address book (the task's identity confirms it)."""
    import requests

    from rotator.sandbox.load.rotation_marks import state_folder

    state = state_folder(root) or root / ".rotator" / "state-sandbox"
    record = json.loads((state / GROUP / "current.json").read_text())
    weights = record.get("weights") or {}
    live = max(weights, key=weights.get) if weights else record["candidate"]
    marathon = record["slots"][live]["marathon_url"].rstrip("/")
    session = requests.Session()
    session.trust_env = False  # loopback only
    apps = session.get(f"{marathon}/v2/apps", params={"embed": "apps.tasks"},
                       proxies={"http": info["marathon_proxy"]}, timeout=10).json()["apps"]
    tasks = [t for a in apps if NAME in a.get("labels", {}).get("HAPROXY_0_VHOST", "").split(",")
             for t in a.get("tasks", []) if t.get("ports")]
    for task in tasks:
        found = session.get(info["addresses"], params={"ip": task["host"],
                                                       "port": task["ports"][0]}, timeout=10)
        for entry in found.json():
            url = f"http://{entry['host']}:{entry['endpoint_port']}/"
            if session.get(url, timeout=5).json().get("task") == task["id"]:
                return url
    sys.exit(f"no task of {NAME}'s app in {GROUP}'s slot {live} answers at its loopback endpoint")


def rotation_steps(root: Path, result) -> list[dict]:
    from rotator.sandbox.load.rotation_marks import state_folder, step_marks

    state = state_folder(root)
    if state is None:
        return []
    return step_marks(state, [GROUP], result.started_at, result.started_at + result.elapsed)


# ---------------------------------------------------------------------- output


def settings(args, lb_port: int, duration: float | None = None) -> LoadSettings:
    return LoadSettings(rps=args.rps, duration=duration or args.duration, clients=args.clients,
                        ttl_ignoring=args.ttl_ignoring, lb_port=lb_port)


def _cell(value, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}" if isinstance(value, float) else str(value)


def table(baseline: dict, loaded: dict, path: str) -> tuple[list[list[str]], dict]:
    """Rows of (measure, direct, path, added, target, ratio) and the figures as numbers."""
    b, p = baseline["latency_ms"], loaded["latency_ms"]
    added = {q: None if b[q] is None or p[q] is None else round(p[q] - b[q], 2)
             for q in ("p50", "p99")}
    ratio = {q: None if not b[q] or p[q] is None else round(p[q] / b[q], 2) for q in ("p50", "p99")}
    rps_share = round(loaded["achieved_rps"] / TARGET_RPS, 2)
    p99_share = None if added["p99"] is None else round(added["p99"] / TARGET_P99_ADDED_MS, 2)
    rows = [
        ["measure", "direct to a task", path, "added", "target", "ratio"],
        ["requests/s", _cell(baseline["achieved_rps"]), _cell(loaded["achieved_rps"]), "",
         f">= {TARGET_RPS}", f"{rps_share:.2f} of target"],
        ["p50 latency ms", _cell(b["p50"]), _cell(p["p50"]), _cell(added["p50"]), "",
         f"{_cell(ratio['p50'])}x direct"],
        ["p99 latency ms", _cell(b["p99"]), _cell(p["p99"]), _cell(added["p99"]),
         f"added < {TARGET_P99_ADDED_MS:g}",
         f"{_cell(p99_share)} of target, {_cell(ratio['p99'])}x direct"],
        ["failed requests", f"{baseline['failed']} of {baseline['requests']}",
         f"{loaded['failed']} of {loaded['requests']}", "", "0", ""],
    ]
    figures = {"added_ms": added, "path_over_direct": ratio, "rps_of_target": rps_share,
               "p99_added_of_target": p99_share,
               "met": {"rps": loaded["achieved_rps"] >= TARGET_RPS * 0.99,
                       "failed": loaded["failed"] == 0,
                       "p99_added": added["p99"] is not None
                       and added["p99"] < TARGET_P99_ADDED_MS}}
    return rows, figures


def show(title: str, baseline: dict, loaded: dict, args, target: str | None = None,
         steps: list[dict] | None = None, path: str = "DNS+ELB+proxy+task") -> dict:
    print(title)
    if target:
        print(f"  direct: {target} (a task's loopback endpoint, before the rotation)")
    print(f"  load: {loaded['elapsed_s']:.1f} s at {args.rps:g} req/s, {args.clients} clients; "
          "latency after a 2 s warm-up (every client opening its first connection)")
    if steps:
        names = list(dict.fromkeys(s["step"] for s in steps))
        print(f"  rotation steps during the load: {', '.join(names)}")
    rows, figures = table(baseline, loaded, path)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    print(f"  served by slot {loaded['by_slot']}; failed by cause "
          f"{ {k: v for k, v in loaded['failed_by_cause'].items() if v} or 'none'}; "
          f"DNS lookups {loaded['dns_lookups']}; skipped ticks {loaded['skipped_ticks']}")
    others = loaded.get("others")
    if others:
        quiet = others["quiet_latency_ms"]
        print(f"  other processes on this machine used {others['mean_cores'] * 100:.0f}% of a core "
              f"on average during the load (peak {others['max_cores'] * 100:.0f}%); in the "
              f"{others['quiet_seconds']} of {others['seconds']} seconds they used under "
              f"{OtherLoad.QUIET * 100:.0f}%: p50 {_cell(quiet['p50'])} ms, p99 "
              f"{_cell(quiet['p99'])} ms through the path")
    if loaded.get("by_step"):
        width = max(len(row["step"]) for row in loaded["by_step"])
        print("  latency by rotation step (a second counts for every step running in it):")
        for row in loaded["by_step"]:
            print(f"    {row['step']:<{width}} {row['requests']:>7} requests  p50 "
                  f"{_cell(row['p50'])} ms  p99 {_cell(row['p99'])} ms  "
                  f"{row['slower_than_target']} took over {TARGET_P99_ADDED_MS:g} ms")
    if loaded.get("chart"):
        print(f"  timeline {loaded['timeline']}, chart {loaded['chart']}")
    met = figures["met"]
    print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    if args.json:
        print(json.dumps({"baseline": baseline, "load": loaded, **figures}))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=TARGET_RPS)
    parser.add_argument("--duration", type=float,
                        help="seconds of load (default: the whole rotation; stand-in: 60)")
    parser.add_argument("--max-duration", type=float, default=900.0,
                        help="the longest a load that follows the rotation runs")
    parser.add_argument("--baseline-duration", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--ttl-ignoring", type=float, default=0.1)
    parser.add_argument("--policy", default="demo")
    parser.add_argument("--baseline-url", help="instead of a task of the live slot")
    parser.add_argument("--project", help="the project folder (default: ROTATOR_ROOT, or this "
                                          "checkout)")
    parser.add_argument("--stand-in", action="store_true")
    parser.add_argument("--record-ttl", type=int,
                        help="weighted records' TTL (default 10 s in the sandbox, so the old "
                             "slot is soon quiet; 5 s in the stand-in, so the run makes many "
                             "DNS lookups)")
    parser.add_argument("--runs", type=int, default=1,
                        help="rotations to measure one after the other (sandbox mode); the "
                             "p99 varies from one rotation to the next")
    parser.add_argument("--up", action="store_true", help="bring the sandbox up if it is not")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--report", help="a folder for the load's timeline.json and chart.png")
    args = parser.parse_args()
    if args.stand_in:
        args.duration = args.duration or 60.0
        args.record_ttl = 5 if args.record_ttl is None else args.record_ttl
        stand_in(args)
    else:
        args.record_ttl = 10 if args.record_ttl is None else args.record_ttl
        sandbox(args)


if __name__ == "__main__":
    main()
