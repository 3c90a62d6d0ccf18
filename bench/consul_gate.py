"""Consul gate benchmark: detection latency, scale, idle CPU.

Runs the Consul emulator as a separate process (so this process's CPU time is
the gate's alone) and drives it over HTTP with py-consul.

    .venv/bin/python bench/consul_gate.py [--flips 100] [--scales 10,100,1000] [--idle 5]

Detection latency: from the HTTP call that fails a TTL check to the gate's
FAILED verdict. The 10-second polling gate is computed analytically: a
change lands uniformly within the poll period, so its detection delay is
uniform on [0, 10 s] (p50 = 5 s, p99 = 9.9 s), plus one request.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

import consul

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rotator.health.consul import ConsulHealthSource  # noqa: E402
from rotator.ports import GateSpec, ServiceRequirement, Verdict  # noqa: E402

DC = "cn-north-1"
TAG = "prd-cn-green"
POLL_INTERVAL = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rotator.sandbox.consul", "--port", str(port),
                             "--datacenter", DC], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client = consul.Consul(port=port, dc=DC)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.status.leader()
            return proc, port
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def register(client: consul.Consul, services: int, instances: int) -> None:
    for s in range(services):
        for i in range(instances):
            sid = f"svc{s}-{i}"
            client.agent.service.register(f"svc{s}", service_id=sid, tags=[TAG],
                                          check=consul.Check.ttl("1h"))
            client.agent.check.ttl_pass(f"service:{sid}")


def wait_for(watch, verdict: Verdict, timeout: float = 10.0) -> float:
    start = time.perf_counter()
    while True:
        result = watch.poll(1.0)
        if result.verdict == verdict:
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"no {verdict}: {result}")


def flip_latencies(client: consul.Consul, watch, service: str, flips: int) -> list[float]:
    latencies = []
    check = f"service:{service}-0"
    for _ in range(flips):
        client.agent.check.ttl_pass(check)
        wait_for(watch, Verdict.SUCCESSFUL)
        start = time.perf_counter()
        client.agent.check.ttl_fail(check, notes="flip")
        result = watch.poll(5.0)
        while result.verdict != Verdict.FAILED:
            result = watch.poll(5.0)
        latencies.append(time.perf_counter() - start)
    client.agent.check.ttl_pass(check)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flips", type=int, default=100)
    parser.add_argument("--scales", default="10,100,1000")
    parser.add_argument("--scale-flips", type=int, default=20)
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args()

    rows = []
    proc, port = start_emulator()
    try:
        client = consul.Consul(port=port, dc=DC)
        register(client, 1, 3)
        source = ConsulHealthSource(f"http://127.0.0.1:{port}", DC, block_seconds=60)
        with source.watch([ServiceRequirement("svc0", 3, TAG)], GateSpec()) as watch:
            wait_for(watch, Verdict.SUCCESSFUL)
            lat = flip_latencies(client, watch, "svc0", args.flips)
        p50, p99 = pct(lat, 50), pct(lat, 99)
        print(f"detection latency over {args.flips} flips (1 service, 3 instances):")
        print(f"  blocking-query gate   p50 {p50 * 1000:8.1f} ms   p99 {p99 * 1000:8.1f} ms   "
              f"max {max(lat) * 1000:.1f} ms")
        print(f"  10 s polling gate     p50 {POLL_INTERVAL * 0.5 * 1000:8.1f} ms   "
              f"p99 {POLL_INTERVAL * 0.99 * 1000:8.1f} ms   (analytic: uniform on [0, 10 s])")
        print(f"  ratio (poll / blocking)  p50 x{POLL_INTERVAL * 0.5 / p50:,.0f}   "
              f"p99 x{POLL_INTERVAL * 0.99 / p99:,.0f}   target p99 < 200 ms: "
              f"{'met' if p99 < 0.2 else 'MISSED'}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    for n in [int(x) for x in args.scales.split(",") if x]:
        proc, port = start_emulator()
        try:
            client = consul.Consul(port=port, dc=DC)
            t0 = time.perf_counter()
            register(client, n, 1)
            setup = time.perf_counter() - t0
            source = ConsulHealthSource(f"http://127.0.0.1:{port}", DC, block_seconds=60)
            reqs = [ServiceRequirement(f"svc{s}", 1, TAG) for s in range(n)]
            t0 = time.perf_counter()
            with source.watch(reqs, GateSpec()) as watch:
                wait_for(watch, Verdict.SUCCESSFUL, timeout=60)
                first = time.perf_counter() - t0
                cpu0, wall0 = time.process_time(), time.perf_counter()
                time.sleep(args.idle)
                idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
                lat = flip_latencies(client, watch, f"svc{n // 2}", args.scale_flips)
            rows.append((n, setup, first, pct(lat, 50), pct(lat, 99), idle_cpu))
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print()
    print(f"scale ({args.scale_flips} flips each, idle CPU over {args.idle:.0f} s, gate process only):")
    print(f"  {'services':>8} {'register':>9} {'1st verdict':>12} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'idle CPU':>9}")
    for n, setup, first, p50, p99, cpu in rows:
        print(f"  {n:>8} {setup:>8.2f}s {first:>11.2f}s {p50 * 1000:>8.1f} {p99 * 1000:>8.1f} "
              f"{cpu * 100:>8.2f}%")
    print(f"  mean p99 across scales: {statistics.mean(r[4] for r in rows) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
