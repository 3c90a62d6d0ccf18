"""`rotate sandbox load`: find the sandbox's DNS and load balancer port, run, report."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .generator import LoadResult, LoadSettings, run_load
from .live import LiveLine
from .resolving import SandboxResolver
from .rotation_marks import groups_serving, state_folder, step_marks


class NotServing(Exception):
    """The running sandbox has no DNS server or no load balancers listening."""


def endpoints(info: dict[str, Any]) -> tuple[str, int, int]:
    """(DNS host, DNS port, load balancers' port) from the world's ``world.json``."""
    if not info.get("dns"):
        raise NotServing("this sandbox has no DNS server (world.json has no 'dns'): "
                         "`rotate sandbox reset` starts a current one")
    if not info.get("lb_port"):
        raise NotServing("this sandbox's load balancers do not serve traffic "
                         "(world.json has no 'lb_port')")
    host, port = str(info["dns"]).rsplit(":", 1)
    return host, int(port), int(info["lb_port"])


async def _run(name: str, settings: LoadSettings, dns_host: str, dns_port: int,
               live: TextIO | None) -> LoadResult:
    lookup = SandboxResolver(dns_host, dns_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # stopped early, it still reports
        loop.add_signal_handler(sig, stop.set)
    observers = ()
    ticker = None
    if live is not None:
        line = LiveLine(live, settings.duration)
        observers = (line,)
        ticker = asyncio.create_task(line.run(time.monotonic))
    try:
        return await run_load(name, settings, lookup, observers=observers, stop=stop)
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)


def run(project: Any, info: dict[str, Any], name: str, settings: LoadSettings, *,
        groups: list[str] | None = None, report_dir: Path | None = None,
        live: TextIO | None = None) -> dict[str, Any]:
    """Run the load and return the summary (with the report's paths when asked)."""
    from .report import summary, write_report

    dns_host, dns_port, lb_port = endpoints(info)
    settings = LoadSettings(**{**settings.__dict__, "lb_port": lb_port})
    result = asyncio.run(_run(name, settings, dns_host, dns_port, live))
    state = state_folder(project.root)
    wanted = groups if groups else groups_serving(project, name)
    if state is not None and wanted:
        result.steps = step_marks(state, wanted, result.started_at,
                                  result.started_at + result.elapsed)
    report = summary(result)
    report["groups"] = wanted
    if report_dir is not None:
        report.update(write_report(result, report, report_dir))
    return report


def live_stream() -> TextIO | None:
    """The live line goes to a terminal's stderr only: stdout stays for the summary."""
    return sys.stderr if sys.stderr.isatty() else None


def render(report: dict[str, Any], output: str) -> str:
    from .report import text

    return json.dumps(report, indent=1) if output == "json" else text(report)
