"""What a load run reports: the summary (text or one JSON object) and the report folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .generator import LoadResult
from .outcomes import CAUSES


def summary(result: LoadResult) -> dict[str, Any]:
    s = result.settings
    counts = result.tally.total.summary()
    return {
        "name": result.name,
        "settings": {"rps": s.rps, "duration_s": s.duration, "clients": s.clients,
                     "ttl_ignoring": s.ttl_ignoring, "ttl_ignoring_clients": s.ignoring_clients,
                     "overstay_s": s.overstay, "connect_timeout_s": s.connect_timeout,
                     "read_timeout_s": s.read_timeout, "lb_port": s.lb_port},
        "started_at": round(result.started_at, 3),
        "elapsed_s": round(result.elapsed, 3),
        "achieved_rps": round(counts["requests"] / result.elapsed, 1) if result.elapsed else 0.0,
        **counts,
        "dns_lookups": result.dns_lookups,
        "skipped_ticks": result.skipped_ticks,
        "rotation_steps": result.steps,
    }


def _shares(counts: dict[str, int], total: int) -> str:
    if not counts:
        return "-"
    return "  ".join(f"{k} {v} ({100 * v / total:.1f}%)" for k, v in counts.items())


def text(report: dict[str, Any]) -> str:
    s = report["settings"]
    served = report["served"]
    latency = report["latency_ms"]
    lines = [
        f"load on {report['name']}: {report['requests']} requests in {report['elapsed_s']:.1f}s "
        f"({report['achieved_rps']}/s, target {s['rps']:g}/s), {s['clients']} clients "
        f"({s['ttl_ignoring_clients']} keep DNS answers {s['overstay_s']:g}s past their TTL)",
        f"  served   {served}   by slot: {_shares(report['by_slot'], served)}",
        f"           by AMI: {_shares(report['by_ami'], served)}",
        f"  failed   {report['failed']}   "
        + "  ".join(f"{c} {report['failed_by_cause'][c]}" for c in CAUSES)
        + "   by client: " + "  ".join(f"{k} {n}"
                                       for k, n in report["failed_by_client_kind"].items()),
        "  latency  " + (f"p50 {latency['p50']} ms  p99 {latency['p99']} ms  max {latency['max']} ms"
                         if latency["p50"] is not None else "-"),
        f"  dns      {report['dns_lookups']} lookups",
    ]
    if report["rotation_steps"]:
        lines.append(f"  rotation {len(report['rotation_steps'])} steps during the run")
    for key in ("timeline", "chart"):
        if report.get(key):
            lines.append(f"  {key:<8} {report[key]}")
    return "\n".join(lines)


def write_report(result: LoadResult, report: dict[str, Any], folder: Path) -> dict[str, str]:
    """``timeline.json`` (per second) and ``chart.png`` in ``folder``; returns their paths."""
    from .chart import draw

    folder.mkdir(parents=True, exist_ok=True)
    timeline = folder / "timeline.json"
    timeline.write_text(json.dumps({"summary": report, "seconds": result.tally.timeline()},
                                   indent=1) + "\n")
    chart = folder / "chart.png"
    draw(result, report, chart)
    return {"timeline": str(timeline), "chart": str(chart)}
