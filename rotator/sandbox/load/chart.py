"""The report's PNG: requests per second stacked by slot, failures in red on top,
latency below, and the rotation's steps as vertical marks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .generator import LoadResult

SLOT_COLOURS = {"blue": "#1f77b4", "green": "#2ca02c", "unknown": "#9e9e9e"}
OTHER_COLOURS = ["#9467bd", "#8c564b", "#17becf", "#bcbd22", "#e377c2"]
FAILED = "#d62728"


def draw(result: LoadResult, report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display in the sandbox
    import matplotlib.pyplot as plt

    seconds = result.tally.timeline()
    xs = [s["t"] for s in seconds]
    slots = sorted({slot for s in seconds for slot in s["by_slot"]},
                   key=lambda k: (k not in SLOT_COLOURS, k == "unknown", k))
    extra = iter(OTHER_COLOURS * 4)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.3]})
    base = [0] * len(xs)
    for slot in slots:
        values = [s["by_slot"].get(slot, 0) for s in seconds]
        top.bar(xs, values, width=1.0, bottom=base, align="edge", label=f"served by {slot}",
                color=SLOT_COLOURS.get(slot) or next(extra), linewidth=0)
        base = [b + v for b, v in zip(base, values, strict=True)]
    failed = [s["failed"] for s in seconds]
    top.bar(xs, failed, width=1.0, bottom=base, align="edge", color=FAILED, linewidth=0,
            label=f"failed ({report['failed']})")
    top.axhline(result.settings.rps, color="#444444", linewidth=0.8, linestyle=":",
                label=f"target {result.settings.rps:g}/s")
    top.set_ylabel("requests per second")
    top.set_ylim(0, max([result.settings.rps, *(b + f for b, f in zip(base, failed, strict=True))]) * 1.35)
    top.set_title(f"{result.name}: {report['requests']} requests, {report['failed']} failed "
                  f"({', '.join(f'{c} {n}' for c, n in report['failed_by_cause'].items() if n) or 'none'})",
                  fontsize=11)

    p50 = [s["latency_ms"]["p50"] for s in seconds]
    p99 = [s["latency_ms"]["p99"] for s in seconds]
    mid = [x + 0.5 for x in xs]
    bottom.plot(mid, p50, color="#555555", linewidth=1.2, label="p50")
    bottom.plot(mid, p99, color="#ff7f0e", linewidth=1.2, label="p99")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel(f"seconds since {_clock(result.started_at)}")
    bottom.legend(loc="upper right", fontsize=8)

    for index, mark in enumerate(report.get("rotation_steps") or []):
        at = mark["started_at"] if mark["started_at"] is not None else mark["finished_at"]
        t = at - result.started_at
        if t < 0:
            continue  # a step already under way when the run began shows by its end only
        for axis in (top, bottom):
            axis.axvline(t, color="#333333", linewidth=0.8, linestyle="--", alpha=0.7)
        top.annotate(mark["step"], xy=(t, 1), xycoords=("data", "axes fraction"),
                     xytext=(2, -4 - 10 * (index % 3)), textcoords="offset points",
                     fontsize=7, rotation=0, ha="left", va="top",
                     bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    top.legend(loc="upper left", bbox_to_anchor=(0, 0.78), fontsize=8)
    if xs:
        top.set_xlim(0, max(xs) + 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _clock(wall: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(wall))
