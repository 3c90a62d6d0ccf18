"""Deploy N apps to an empty emulated Marathon: wall time against the inherent deployment
time, and HTTP calls, for the adapter's strategies and a naive client.

    .venv/bin/python bench/marathon_deploy.py [--step 1.0] [--sizes 10 50 200]

Inherent time: every app has one instance and a health check, so one app's deployment
takes two emulator steps (staging -> running -> first check) and N apps deployed in
parallel take the same. Overhead = wall / inherent - 1.
"""

from __future__ import annotations

import argparse
import json
import time

from rotator.apps.marathon import MarathonDeployer, wait_until_deployed
from rotator.apps.marathon_compat import MarathonClient
from rotator.sandbox.marathon import Agent, MarathonEmulator, ServerThread, create_app


def apps(n: int) -> list[dict]:
    return [{"id": f"/bench/app-{i:03d}", "cmd": "serve", "instances": 1, "cpus": 0.1,
             "mem": 64, "healthChecks": [{"protocol": "TCP"}]} for i in range(n)]


def adapter(strategy: str):
    def run(url: str, defs: list[dict]) -> None:
        deployer = MarathonDeployer(strategy=strategy)
        ids = deployer.start(url, defs)
        wait_until_deployed(deployer, url, ids, deadline_seconds=600)
    return run


def naive(url: str, defs: list[dict], interval: float = 1.0) -> None:
    """Sequential POST /v2/apps, then GET /v2/deployments every ``interval`` seconds."""
    client = MarathonClient(url)
    for d in defs:
        client._do_request("POST", "/v2/apps", data=json.dumps(d))
    while client.list_deployments():
        time.sleep(interval)


def measure(run, n: int, step: float) -> tuple[float, int]:
    agents = [Agent(f"i-{k}", f"10.0.{k // 250}.{k % 250 + 1}") for k in range(64)]
    em = MarathonEmulator(agents, step_seconds=step)
    with ServerThread(create_app(em)) as url:
        t0 = time.perf_counter()
        run(url, apps(n))
        wall = time.perf_counter() - t0
        calls = sum(em.requests.values())
    return wall, calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", type=float, default=1.0, help="emulator seconds per step")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    args = parser.parse_args()
    inherent = 2 * args.step
    runs = [("group PUT + events (chosen)", adapter("group")),
            ("per-app PUT x8 + events", adapter("apps")),
            ("naive: sequential POST + 1s poll", naive)]
    print(f"inherent deployment time: {inherent:.2f} s ({args.step:g} s per step, 2 steps)")
    print(f"{'N':>4}  {'strategy':<34} {'wall s':>7} {'overhead':>9} {'HTTP calls':>10}")
    for n in args.sizes:
        for name, run in runs:
            wall, calls = measure(run, n, args.step)
            print(f"{n:>4}  {name:<34} {wall:>7.2f} {100 * (wall / inherent - 1):>8.1f}% {calls:>10}",
                  flush=True)


if __name__ == "__main__":
    main()
