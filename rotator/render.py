"""How a rotation shows itself: a live view on a terminal, plain lines in logs, JSON for tools."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rotator.durations import format_duration
from rotator.engine import Event
from rotator.model import RotationRecord, StepState, StepStatus

_ICON = {
    StepStatus.PENDING: ("·", "dim"),
    StepStatus.RUNNING: ("▶", "bold yellow"),
    StepStatus.DONE: ("✔", "green"),
    StepStatus.FAILED: ("✘", "bold red"),
}


def _elapsed(step: StepState, now: float) -> str:
    if step.started_at is None:
        return ""
    end = step.finished_at or now
    return format_duration(end - step.started_at)


def weights_text(weights: dict[str, int]) -> str:
    return " / ".join(f"{s} {w}%" for s, w in sorted(weights.items())) or "-"


def summary(record: RotationRecord) -> dict[str, Any]:
    return {
        "event": "summary",
        "rotation": record.id,
        "group": record.group,
        "environment": record.environment,
        "status": record.status.value,
        "reason": record.reason,
        "ami": record.ami,
        "stable": record.stable,
        "candidate": record.candidate,
        "weights": record.weights,
        "duration": round((record.finished_at or record.updated_at) - record.created_at, 3),
        "steps": [
            {"name": s.name, "status": s.status.value, "reason": s.reason}
            for s in record.steps + record.rollback_steps
        ],
        "analysis": record.analysis.get("last"),
    }


class PlainRenderer:
    """One line per event: for logs and CI. A countdown is shown once, not every second."""

    def __init__(self, out: IO[str] | None = None):
        self.out = out or sys.stdout
        self._last_progress = ""

    def __call__(self, event: Event) -> None:
        if event.kind == "step-progress":
            shape = re.sub(r"\d+", "#", f"{event.step.name if event.step else ''} {event.message}")
            if shape == self._last_progress:
                return
            self._last_progress = shape
        stamp = time.strftime("%H:%M:%S")
        rec = event.record
        step = f" [{event.step.name}]" if event.step else ""
        msg = f" {event.message}" if event.message else ""
        extra = ""
        if event.kind == "started" and rec.environment:
            extra = f" (environment {rec.environment})"
        if event.kind in ("step-done", "finished") and rec.weights:
            extra = f" (weights {weights_text(rec.weights)})"
        print(f"{stamp} {rec.group} {event.kind}{step}{msg}{extra}", file=self.out, flush=True)

    def close(self) -> None:
        pass


class JsonRenderer:
    """One JSON object per event, then a summary object."""

    def __init__(self, out: IO[str] | None = None):
        self.out = out or sys.stdout

    def __call__(self, event: Event) -> None:
        rec = event.record
        obj = {
            "event": event.kind,
            "time": round(time.time(), 3),
            "rotation": rec.id,
            "group": rec.group,
            "environment": rec.environment,
            "status": rec.status.value,
            "step": event.step.name if event.step else None,
            "message": event.message,
            "weights": rec.weights,
        }
        print(json.dumps(obj), file=self.out, flush=True)

    def close(self) -> None:
        pass


class LiveRenderer:
    """A live table of the steps on a terminal."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.record: RotationRecord | None = None
        self.note = ""
        self.analysis = ""  # the last metric verdict of the canary
        self.live = Live(console=self.console, refresh_per_second=4, transient=False,
                         get_renderable=self._render)
        self.live.start()

    def __call__(self, event: Event) -> None:
        self.record = event.record
        if event.kind in ("step-progress", "waiting", "paused", "rollback", "step-failed"):
            self.note = event.message
        elif event.kind == "analysis":
            self.analysis = event.message
        elif event.kind in ("step-started", "step-done"):
            self.note = ""
        self.live.refresh()

    def _render(self):
        rec = self.record
        if rec is None:
            return Text("starting…", style="dim")
        now = time.time()
        head = Text.assemble(
            (f"{rec.group}", "bold"), (f" [{rec.environment}]" if rec.environment else "", "magenta"),
            f"  rotation {rec.id}  ",
            (f"{rec.stable or '-'} → {rec.candidate}", "cyan"), f"  ami {rec.ami}  ",
            ("weights ", "dim"), weights_text(rec.weights),
        )
        table = Table(box=None, pad_edge=False, show_header=False)
        table.add_column(width=2)
        table.add_column()
        table.add_column(justify="right", style="dim")
        table.add_column(style="dim")
        steps = rec.steps + ([] if not rec.rollback_steps else rec.rollback_steps)
        for st in steps:
            icon, style = _ICON[st.status]
            label = Text(st.name, style=style if st.status is not StepStatus.PENDING else "dim")
            table.add_row(Text(icon, style=style), label, _elapsed(st, now),
                          st.reason if st.status is not StepStatus.RUNNING else "")
        parts = [head, table]
        if self.analysis:
            style = "bold red" if "failed" in self.analysis.split(":")[0] else "cyan"
            parts.append(Text(f"  {self.analysis}", style=style))
        if self.note:
            parts.append(Text(f"  {self.note}", style="yellow"))
        return Group(*parts)

    def close(self) -> None:
        self.live.stop()


def make_renderer(output: str, interactive: bool):
    if output == "json":
        return JsonRenderer()
    if interactive:
        return LiveRenderer()
    return PlainRenderer()


def left_behind(record: RotationRecord) -> str:
    """What a rotation that stopped half-way leaves where: weights, slots, the failing step."""
    weights = " / ".join(f"{s} {w}%" for s, w in sorted(record.weights.items())) or "unknown"
    slots = ", ".join(f"{s} ({o.get('ami') or '?'})" for s, o in sorted(record.slots.items()))
    step = record.current_step
    lines = [f"  weights last set: {weights}",
             f"  slots with resources: {slots or 'none recorded'}"]
    if step is not None:
        lines.append(f"  stopped at: {step.name} ({step.status.value}"
                     + (f": {step.reason}" if step.reason else "") + ")")
    return "\n".join(lines)
