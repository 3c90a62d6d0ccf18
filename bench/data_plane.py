"""Requests per second the sandbox's data plane sustains through DNS, load balancer and
task while a rotation runs, and the latency the path adds over going to a task directly.

    .venv/bin/python bench/data_plane.py [--rps 500] [--duration 60] [--clients 100]
    .venv/bin/python bench/data_plane.py --up          # bring the project's sandbox up first
    .venv/bin/python bench/data_plane.py --stand-in    # DNS + load generator, stand-in LB/task

Sandbox mode uses the project's running sandbox (``rotate sandbox up``): it bakes an
AMI, starts ``rotate prd-cn --ami ... --policy blue-green`` beside it, waits until the
rotation moves traffic, then drives ``--rps`` through ``www.rotator-demo.cn`` (the
sandbox's DNS, the slots' load balancers, their tasks) for ``--duration``. The baseline
is the same paced client sent straight to one task of the live slot, through the
sandbox's Marathon fleet proxy, the way the sandbox reaches a private address
(``--baseline-url`` names another target).

Stand-in mode needs no sandbox: the AWS emulator holds two weighted records whose
weights flip every few seconds, the sandbox's DNS server answers from them, and a
stand-in load balancer per slot (an aiohttp reverse proxy, in a process of its own as
the world is) forwards to a stand-in task. It measures what this branch owns: the DNS
server and the load generator, with one proxy hop in the path.

Targets: at least 500 requests/s; p99 added latency under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
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


# ----------------------------------------------------------------- the baseline


async def direct(url: str, rps: float, duration: float, clients: int,
                 proxy: str | None = None, warmup: float = 2.0) -> dict:
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
                    async with session.get(url, proxy=proxy) as response:
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
         baseline, loaded, args)


# --------------------------------------------------------------------- sandbox


def rotate_cmd(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "rotate"), *args], cwd=ROOT,
                          text=True, capture_output=True, **kwargs)


def sandbox(args) -> None:
    from rotator.config import Project
    from rotator.sandbox.control import Sandbox
    from rotator.sandbox.load.command import NotServing, endpoints

    box = Sandbox(Project(ROOT))
    if box.info() is None:
        if not args.up:
            sys.exit("the sandbox is not running: `rotate sandbox up` (or --up), or --stand-in")
        up = rotate_cmd("sandbox", "up", timeout=1800)
        if up.returncode:
            sys.exit(up.stdout + up.stderr)
    info = box.info()
    try:
        dns_host, dns_port, lb_port = endpoints(info)
    except NotServing as exc:
        sys.exit(f"{exc}\n(--stand-in measures this branch's part without the serving data plane)")

    baseline_url, proxy = args.baseline_url, None
    if baseline_url is None:
        baseline_url, proxy = task_through_fleet(box, info)
    baseline = asyncio.run(direct(baseline_url, args.rps, args.baseline_duration, args.clients,
                                  proxy=proxy))

    ami = rotate_cmd("sandbox", "bake", "--group", GROUP).stdout.strip()
    rotation = subprocess.Popen([str(Path(sys.executable).parent / "rotate"), GROUP, "--ami", ami,
                                 "--policy", args.policy, "--yes"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_traffic_steps(box, ami, timeout=900)
        result = asyncio.run(run_load(NAME, settings(args, lb_port),
                                      SandboxResolver(dns_host, dns_port)))
        loaded = loaded_figures(result)
    finally:
        rotation.wait(timeout=1800)
    show(f"sandbox ({GROUP} rotating onto {ami}, policy {args.policy})", baseline, loaded, args)


def task_through_fleet(box, info) -> tuple[str, str]:
    """One task of the live slot, reached through the fleet proxy as Marathon is."""
    import requests

    record = json.loads((ROOT / ".rotator" / "state-sandbox" / GROUP / "current.json").read_text())
    live = max(record["weights"], key=record["weights"].get) if record.get("weights") else record["candidate"]
    marathon = record["slots"][live]["marathon_url"].rstrip("/")
    session = requests.Session()
    session.trust_env = False
    tasks = session.get(f"{marathon}/v2/tasks", proxies={"http": info["marathon_proxy"]},
                        timeout=10).json()["tasks"]
    task = next(t for t in tasks if t.get("ports"))
    return f"http://{task['host']}:{task['ports'][0]}/", info["marathon_proxy"]


def wait_for_traffic_steps(box, ami: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    current = ROOT / ".rotator" / "state-sandbox" / GROUP / "current.json"
    while time.monotonic() < deadline:
        try:
            record = json.loads(current.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            record = {}
        if record.get("ami") == ami:
            steps = record.get("steps", [])
            cursor = record.get("cursor", 0)
            if record.get("status") not in (None, "running") or (
                    cursor < len(steps) and steps[cursor]["kind"] not in ("provision", "deploy", "verify")):
                return
        time.sleep(1)
    sys.exit("the rotation did not reach its traffic steps in time")


# ---------------------------------------------------------------------- output


def settings(args, lb_port: int) -> LoadSettings:
    return LoadSettings(rps=args.rps, duration=args.duration, clients=args.clients,
                        ttl_ignoring=args.ttl_ignoring, lb_port=lb_port)


def show(title: str, baseline: dict, loaded: dict, args) -> None:
    print(title)
    print("  latency after a 2s warm-up (every client opening its first connection)")
    if baseline["latency_ms"]["p50"] is not None:
        print(f"  direct to a task     {baseline['achieved_rps']:7.1f} req/s  p50 "
              f"{baseline['latency_ms']['p50']} ms  p99 {baseline['latency_ms']['p99']} ms  "
              f"failed {baseline['failed']}")
    else:
        print(f"  direct to a task     no answer ({baseline['failed']} failed): "
              "--baseline-url names a task that answers")
    print(f"  through DNS + LB     {loaded['achieved_rps']:7.1f} req/s  p50 "
          f"{loaded['latency_ms']['p50']} ms  p99 {loaded['latency_ms']['p99']} ms  "
          f"failed {loaded['failed']} {loaded['failed_by_cause']}")
    print(f"  served by slot       {loaded['by_slot']}   DNS lookups {loaded['dns_lookups']}")
    print(f"  sustained            {loaded['achieved_rps']:.0f} / {TARGET_RPS} req/s target "
          f"= {loaded['achieved_rps'] / TARGET_RPS:.2f}x")
    added = None
    if baseline["latency_ms"]["p50"] is not None and loaded["latency_ms"]["p50"] is not None:
        added = {q: round(loaded["latency_ms"][q] - baseline["latency_ms"][q], 2)
                 for q in ("p50", "p99")}
        print(f"  added latency        p50 {added['p50']:.2f} ms   p99 {added['p99']:.2f} ms "
              f"(target p99 < {TARGET_P99_ADDED_MS:g} ms: "
              f"{added['p99'] / TARGET_P99_ADDED_MS:.2f} of it)")
    if args.json:
        print(json.dumps({"baseline": baseline, "load": loaded, "added_ms": added}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=TARGET_RPS)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--baseline-duration", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--ttl-ignoring", type=float, default=0.1)
    parser.add_argument("--policy", default="blue-green")
    parser.add_argument("--baseline-url")
    parser.add_argument("--stand-in", action="store_true")
    parser.add_argument("--record-ttl", type=int, default=5,
                        help="stand-in records' TTL: shorter than production's 60 s, so the "
                             "run makes many DNS lookups")
    parser.add_argument("--up", action="store_true", help="bring the sandbox up if it is not")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    if args.stand_in:
        stand_in(args)
    else:
        sandbox(args)


if __name__ == "__main__":
    main()
