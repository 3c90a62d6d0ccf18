"""CloudWatch percentiles, computed as CloudWatch computes them.

moto stores ``Values``/``Counts`` by expanding every count into a datum of its own (a
latency histogram of thousands of requests becomes thousands of objects that every query
scans), answers HTTP 500 to GetMetricData with a percentile ``Stat`` such as ``p99``,
and drops ``ExtendedStatistics`` from GetMetricStatistics. Here a ``Values``/``Counts``
datum is kept as one histogram (its Sum, SampleCount, Minimum and Maximum are what
moto's statistics read), and ``pNN``/``pNN.NN`` are computed over the raw values of the
period. As the GetMetricStatistics reference says, "CloudWatch needs raw data points to
calculate percentile statistics. If you publish data using a statistic set instead, you
can only retrieve percentile statistics for this data if ... the SampleCount value of
the statistic set is 1 [or] the Min and the Max values of the statistic set are equal";
"percentile statistics are not available for metrics when any of the metric values are
negative numbers". A percentile is the nearest-rank value: the smallest value with at
least NN % of the samples at or below it.

A metric is its namespace, name and *all* its dimensions: moto's GetMetricStatistics
also counts data that has the asked dimensions among others (an ALB's per-target-group
``RequestCount`` inside the load balancer's own); here only the exact set matches.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from moto.cloudwatch import models as cw_models
from moto.cloudwatch import responses as cw_responses
from moto.core.responses import ActionResult

from .moto_fixes import _patch
from .serving import ServingContext

PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,2})?|100)$")
_installed = False


class HistogramDatum(cw_models.MetricAggregatedDatum):
    """One ``Values``/``Counts`` datum: raw values with their counts."""

    def __init__(self, namespace: str, name: str, values: list[float], counts: list[float],
                 dimensions: list[dict[str, str]], timestamp: Any, unit: Any) -> None:
        pairs = [(float(v), float(c)) for v, c in zip(values, counts, strict=True) if float(c) > 0]
        super().__init__(namespace, name, min(v for v, _ in pairs), max(v for v, _ in pairs),
                         sum(c for _, c in pairs), sum(v * c for v, c in pairs), dimensions,
                         timestamp, unit)
        self.pairs = pairs


def install() -> None:
    global _installed
    if _installed:
        return
    _patch(cw_models.CloudWatchBackend, "put_metric_data", _put_metric_data)
    _patch(cw_models.CloudWatchBackend, "get_metric_data", _get_metric_data)
    _patch(cw_models.CloudWatchBackend, "get_metric_statistics", _exact_statistics)
    _patch(cw_responses.CloudWatchResponse, "get_metric_statistics", _get_metric_statistics)
    _installed = True


def _put_metric_data(original: Any, _context: ServingContext, backend: Any, namespace: str,
                     metric_data: list[dict[str, Any]]) -> None:
    plain = []
    for metric in metric_data:
        values = metric.get("Values")
        if values and any(float(c) > 0 for c in metric.get("Counts") or [1]):
            counts = metric.get("Counts") or [1] * len(values)
            if len(counts) != len(values):
                plain.append(metric)  # moto's own validation answers it
                continue
            backend.metric_data.append(HistogramDatum(
                namespace, metric["MetricName"], values, counts,
                metric.get("Dimensions") or [], metric.get("Timestamp"), metric.get("Unit")))
        else:
            plain.append(metric)
    if plain:
        original(backend, namespace, plain)


def _samples(data: list[Any]) -> list[tuple[float, float]] | None:
    """(value, count) pairs of the raw data, or None when percentiles are not available."""
    pairs: list[tuple[float, float]] = []
    for datum in data:
        if isinstance(datum, HistogramDatum):
            pairs.extend(datum.pairs)
        elif isinstance(datum, cw_models.MetricDatum):
            pairs.append((float(datum.value), 1.0))
        elif isinstance(datum, cw_models.MetricAggregatedDatum):
            if datum.sample_count == 1 or datum.min == datum.max:
                pairs.append((float(datum.min), float(datum.sample_count)))
            else:
                return None
    if not pairs or any(v < 0 for v, _ in pairs):
        return None
    return pairs


def percentile(data: list[Any], stat: str) -> float | None:
    match = PERCENTILE.match(stat)
    pairs = _samples(data) if match else None
    if not pairs:
        return None
    wanted = float(match.group(1)) / 100.0  # type: ignore[union-attr]
    pairs.sort()
    total = sum(c for _, c in pairs)
    rank = max(1.0, math.ceil(wanted * total - 1e-9))
    seen = 0.0
    for value, count in pairs:
        seen += count
        if seen >= rank:
            return value
    return pairs[-1][0]


def _matches(datum: Any, namespace: str, name: str, dims: list[dict[str, str]]) -> bool:
    if datum.namespace != namespace or datum.name != name:
        return False
    wanted = sorted((d["Name"], d["Value"]) for d in dims)
    return sorted((d.name, d.value) for d in datum.dimensions) == wanted


def _get_metric_data(original: Any, _context: ServingContext, backend: Any,
                     queries: list[dict[str, Any]], start_time: Any, end_time: Any,
                     scan_by: str = "TimestampAscending") -> list[dict[str, Any]]:
    wanted = {q["Id"]: q for q in queries
              if "MetricStat" in q and PERCENTILE.match(str(q["MetricStat"].get("Stat", "")))}
    asked = [q if q["Id"] not in wanted else
             {**q, "MetricStat": {**q["MetricStat"], "Stat": "SampleCount"}} for q in queries]
    results = original(backend, asked, start_time, end_time, scan_by)
    start, end = start_time.replace(microsecond=0), end_time.replace(microsecond=0)
    everything = backend.get_all_metrics()
    for result in results:
        query = wanted.get(result["id"])
        if query is None:
            continue
        stat = query["MetricStat"]
        metric = stat["Metric"]
        delta = timedelta(seconds=int(stat["Period"]))
        data = [d for d in everything if start <= d.timestamp < end and _matches(
            d, metric["Namespace"], metric["MetricName"], metric.get("Dimensions") or [])]
        values, stamps = [], []
        at = start
        while at <= end:
            value = percentile([d for d in data if at <= d.timestamp < at + delta], stat["Stat"])
            if value is not None:
                values.append(value)
                stamps.append(at)
            at += delta
        if scan_by == "TimestampDescending":
            values.reverse()
            stamps.reverse()
        result["values"], result["timestamps"] = values, stamps
        if not query.get("Label"):
            result["label"] = f"{metric['MetricName']} {stat['Stat']}"
    return results


def _exact_statistics(original: Any, _context: ServingContext, backend: Any, namespace: str,
                      metric_name: str, *args: Any, **kwargs: Any) -> list[Any]:
    dims = kwargs.get("dimensions") or []
    points = original(backend, namespace, metric_name, *args, **kwargs)
    kept = []
    for point in points:
        point.metric_data = [d for d in point.metric_data
                             if _matches(d, namespace, metric_name, dims)]
        if point.metric_data:
            kept.append(point)
    return kept


def _get_metric_statistics(_original: Any, _context: ServingContext, response: Any) -> Any:
    extended = [s for s in response._get_param("ExtendedStatistics") or []]
    statistics = response._get_param("Statistics", [])
    if not extended:
        return _original(response)
    backend = response.cloudwatch_backend
    name = response._get_param("MetricName")
    datapoints = backend.get_metric_statistics(
        response._get_param("Namespace"), name, response._get_param("StartTime"),
        response._get_param("EndTime"), response._get_int_param("Period"), statistics,
        unit=response._get_param("Unit"), dimensions=response._get_param("Dimensions", []))
    kept = []
    for point in datapoints:
        values = {s: percentile(point.metric_data, s) for s in extended}
        values = {k: v for k, v in values.items() if v is not None}
        if values or statistics:
            point.extended_statistics = values
            kept.append(point)
    return ActionResult({"Label": name, "Datapoints": kept})
