"""Load-balancer metrics, published into the emulator's CloudWatch as AWS names them.

Classic (``AWS/ELB``, dimension ``LoadBalancerName``) and ALB (``AWS/ApplicationELB``,
dimensions ``LoadBalancer`` = ``app/<name>/<id>`` and, per target group, also
``TargetGroup`` = ``targetgroup/<name>/<id>``), once per period (60 s on AWS, the
sandbox's time scale shortens it), timestamped at the period's start.

What is reported when follows each metric's "Reporting criteria" in the AWS guides
(Classic: "CloudWatch metrics for your Classic Load Balancer"; ALB: "CloudWatch metrics
for your Application Load Balancer"): counts and latencies only when nonzero; classic
``HealthyHostCount``/``UnHealthyHostCount`` while instances are registered; ALB
``RequestCount`` always, ``HealthyHostCount``/``UnHealthyHostCount`` when health checks
are enabled. Latencies are published as raw values (``Values``/``Counts``, rounded to
0.1 ms), since "CloudWatch needs raw data points to calculate percentile statistics"
(GetMetricStatistics API reference); host counts as statistic sets of their samples.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("rotator.sandbox.dataplane.metrics")

CLASSIC_NS = "AWS/ELB"
ALB_NS = "AWS/ApplicationELB"
MAX_VALUES = 150  # PutMetricData: at most 150 values per datum
LATENCY_RESOLUTION = 1e-4

Dims = tuple[tuple[str, str], ...]


@dataclass
class _Series:
    unit: str
    always: bool = False  # reported even when zero / without data
    total: float = 0.0
    values: Counter[float] = field(default_factory=Counter)
    samples: list[float] = field(default_factory=list)


class MetricBook:
    """Per-period accumulators keyed by (region, namespace, metric name, dimensions)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str, Dims], _Series] = {}
        self._always: dict[tuple[str, str, str, Dims], str] = {}

    def _get(self, key: tuple[str, str, str, Dims], unit: str) -> _Series:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(unit)
        return series

    def count(self, region: str, ns: str, name: str, dims: Dims, n: float = 1) -> None:
        with self._lock:
            self._get((region, ns, name, dims), "Count").total += n

    def latency(self, region: str, ns: str, name: str, dims: Dims, seconds: float) -> None:
        value = round(max(seconds, LATENCY_RESOLUTION) / LATENCY_RESOLUTION) * LATENCY_RESOLUTION
        with self._lock:
            self._get((region, ns, name, dims), "Seconds").values[round(value, 4)] += 1

    def sample(self, region: str, ns: str, name: str, dims: Dims, value: float) -> None:
        with self._lock:
            self._get((region, ns, name, dims), "Count").samples.append(value)

    def report_always(self, region: str, ns: str, name: str, dims: Dims, unit: str = "Count",
                      keep: bool = True) -> None:
        """Publish this series every period (zero without data) while ``keep``."""
        key = (region, ns, name, dims)
        with self._lock:
            if keep:
                self._always[key] = unit
            else:
                self._always.pop(key, None)

    def drain(self) -> dict[tuple[str, str, str, Dims], _Series]:
        with self._lock:
            taken, self._series = self._series, {}
            for key, unit in self._always.items():
                taken.setdefault(key, _Series(unit)).always = True
            return taken


def metric_data(name: str, dims: Dims, series: _Series, at: dt.datetime) -> list[dict[str, Any]]:
    base = {"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
            "Timestamp": at, "Unit": series.unit}
    if series.values:
        items = sorted(series.values.items())
        return [{**base, "Values": [v for v, _ in items[i:i + MAX_VALUES]],
                 "Counts": [float(c) for _, c in items[i:i + MAX_VALUES]]}
                for i in range(0, len(items), MAX_VALUES)]
    if series.samples:
        s = series.samples
        return [{**base, "StatisticValues": {"SampleCount": float(len(s)), "Sum": float(sum(s)),
                                             "Minimum": float(min(s)), "Maximum": float(max(s))}}]
    if series.total or series.always:
        return [{**base, "Value": float(series.total)}]
    return []


class MetricPublisher:
    """Every ``period`` seconds (aligned on the epoch), sends the period just ended."""

    def __init__(self, book: MetricBook, period: int,
                 put: Callable[[str, str, list[dict[str, Any]]], None],
                 before: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.book = book
        self.period = period
        self._put = put  # (region, namespace, metric data) -> None; may block
        self._before = before
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = self._clock()
            boundary = math.floor(now / self.period) * self.period + self.period
            await asyncio.sleep(max(0.0, boundary - now))
            try:
                await loop.run_in_executor(None, self.publish, boundary - self.period)
            except Exception:  # a failed publish must not stop the next ones
                log.exception("publishing metrics failed")

    def publish(self, period_start: float) -> None:
        self._before()
        at = dt.datetime.fromtimestamp(period_start, dt.UTC)
        batches: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for (region, ns, name, dims), series in self.book.drain().items():
            batches.setdefault((region, ns), []).extend(metric_data(name, dims, series, at))
        for (region, ns), data in batches.items():
            for i in range(0, len(data), 500):
                self._put(region, ns, data[i:i + 500])
