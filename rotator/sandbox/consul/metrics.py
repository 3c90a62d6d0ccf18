"""``/v1/agent/metrics``: the agent's telemetry in go-metrics' in-memory sink shape.

JSON (consul/api ``MetricsInfo``)::

    {"Timestamp": "2024-05-01 10:00:00 +0000 UTC",
     "Gauges":   [{"Name": ..., "Value": ..., "Labels": {}}],
     "Points":   [],
     "Counters": [{"Name", "Count", "Rate", "Sum", "Min", "Max", "Mean", "Stddev", "Labels"}],
     "Samples":  [... same shape as Counters ...]}

``consul.api.http`` samples the duration (ms) of each HTTP request by method and path,
the path with key/service parts as ``_`` (``v1.kv._``), as the Consul telemetry reference
describes. The Prometheus form needs ``telemetry.prometheus_retention_time``; without it
Consul answers 200 with an empty body and an ``X-Consul-Reason`` header.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
from dataclasses import dataclass, field
from typing import Any

INTERVAL_SECONDS = 10
PROMETHEUS_DISABLED = "Prometheus is not enabled since its retention time is not positive"


@dataclass
class _Sample:
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.squares += value * value
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def to_json(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        mean = self.total / self.count
        variance = max(self.squares / self.count - mean * mean, 0.0)
        return {"Name": name, "Count": self.count, "Rate": self.total / INTERVAL_SECONDS,
                "Sum": self.total, "Min": self.low, "Max": self.high, "Mean": mean,
                "Stddev": math.sqrt(variance), "Labels": labels}


@dataclass
class Metrics:
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _samples: dict[tuple[str, tuple[tuple[str, str], ...]], _Sample] = field(default_factory=dict)
    _counters: dict[tuple[str, tuple[tuple[str, str], ...]], _Sample] = field(default_factory=dict)

    def sample(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._samples.setdefault((name, tuple(sorted(labels.items()))), _Sample()).add(value)

    def count(self, name: str, value: float = 1.0, **labels: str) -> None:
        with self._lock:
            self._counters.setdefault((name, tuple(sorted(labels.items()))), _Sample()).add(value)

    def summary(self, gauges: dict[str, float]) -> dict[str, Any]:
        now = _dt.datetime.now(_dt.UTC)
        start = now.replace(second=now.second - now.second % INTERVAL_SECONDS, microsecond=0)
        with self._lock:
            counters = [s.to_json(n, dict(lbl)) for (n, lbl), s in sorted(self._counters.items())]
            samples = [s.to_json(n, dict(lbl)) for (n, lbl), s in sorted(self._samples.items())]
        return {
            "Timestamp": start.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
            "Gauges": [{"Name": n, "Value": float(v), "Labels": {}} for n, v in sorted(gauges.items())],
            "Points": [],
            "Counters": counters,
            "Samples": samples,
        }

    def prometheus(self, gauges: dict[str, float]) -> str:
        """The exposition text (only served when Prometheus retention is configured)."""
        lines: list[str] = []
        for name, value in sorted(gauges.items()):
            metric = name.replace(".", "_")
            lines += [f"# TYPE {metric} gauge", f"{metric} {float(value)}"]
        with self._lock:
            samples = sorted(self._samples.items())
        for (name, labels), s in samples:
            metric = name.replace(".", "_")
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines += [f"# TYPE {metric} summary",
                      f"{metric}_sum{{{label_text}}} {s.total}",
                      f"{metric}_count{{{label_text}}} {s.count}"]
        return "\n".join(lines) + "\n"


def path_label(template: str) -> str:
    """``/v1/kv/{key:path}`` -> ``v1.kv._`` (the path label of consul.api.http)."""
    parts = [p for p in template.split("/") if p]
    return ".".join("_" if p.startswith("{") else p for p in parts)
