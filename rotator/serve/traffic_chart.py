"""A group's traffic over the last hour, by slot, from CloudWatch, drawn as a small SVG.

Requests and 5xx answers of each slot's own classic ELB (``AWS/ELB``: ``RequestCount``,
``HTTPCode_Backend_5XX``) plus those of its target group in the edge
(``AWS/ApplicationELB``: ``RequestCount``, ``HTTPCode_Target_5XX_Count``), in one
``GetMetricData`` call with the group's own credentials. Drawn by hand: no chart library
and nothing fetched by the browser.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

COLORS = {"blue": "#2f6fdf", "green": "#23955a"}
ERROR_COLOR = "#d7263d"


def slot_load_balancers(history: list[dict[str, Any]], since: float) -> dict[str, set[str]]:
    """slot -> names of its classic ELBs, from the rotations active in the window and the
    latest one (whose slots serve now)."""
    out: dict[str, set[str]] = {}
    for i, rec in enumerate(history):
        ended = rec.get("finished_at") or rec.get("updated_at") or since
        if ended < since and i != len(history) - 1:
            continue
        for slot, outputs in (rec.get("slots") or {}).items():
            if isinstance(outputs, dict) and outputs.get("elb_name"):
                out.setdefault(slot, set()).add(outputs["elb_name"])
    return out


def _dimension(arn: str, marker: str) -> str:
    """``targetgroup/<name>/<id>`` or ``app/<name>/<id>`` from an ARN."""
    return arn.split(marker, 1)[1] if marker in arn else arn


def metric_queries(elbs: dict[str, set[str]], edge: dict[str, Any] | None,
                   period: int) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """The GetMetricData queries, and query id -> (slot, "requests" | "errors")."""
    queries, meaning = [], {}

    def add(qid: str, ns: str, name: str, dims: list[dict[str, str]], slot: str, what: str):
        queries.append({"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": ns, "MetricName": name, "Dimensions": dims},
            "Period": period, "Stat": "Sum"}})
        meaning[qid] = (slot, what)

    n = 0
    for slot, names in sorted(elbs.items()):
        for name in sorted(names):
            n += 1
            dims = [{"Name": "LoadBalancerName", "Value": name}]
            add(f"elb{n}r", "AWS/ELB", "RequestCount", dims, slot, "requests")
            add(f"elb{n}e", "AWS/ELB", "HTTPCode_Backend_5XX", dims, slot, "errors")
    if edge:
        for slot, tg in sorted(edge["target_groups"].items()):
            n += 1
            dims = [{"Name": "TargetGroup", "Value": tg},
                    {"Name": "LoadBalancer", "Value": edge["load_balancer"]}]
            add(f"tg{n}r", "AWS/ApplicationELB", "RequestCount", dims, slot, "requests")
            add(f"tg{n}e", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", dims, slot,
                "errors")
    return queries, meaning


def combine(results: list[dict[str, Any]], meaning: dict[str, tuple[str, str]], start: float,
            period: int, points: int) -> dict[str, dict[str, list[float]]]:
    """slot -> {"requests": [...], "errors": [...]}, one value per period from ``start``."""
    out: dict[str, dict[str, list[float]]] = {}
    for slot, _ in meaning.values():
        out.setdefault(slot, {"requests": [0.0] * points, "errors": [0.0] * points})
    for result in results:
        slot, what = meaning.get(result.get("Id"), (None, None))
        if slot is None:
            continue
        for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []),
                                strict=False):
            at = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
            i = int((at - start) // period)
            if 0 <= i < points:
                out[slot][what][i] += float(value)
    return out


class TrafficCharts:
    """Per group, the last hour's series, read at most every ``cache_for`` seconds."""

    def __init__(self, project, history: Callable[[str], list[dict[str, Any]]], *,
                 period: int = 60, window: float = 3600.0, cache_for: float = 20.0,
                 clock: Callable[[], float] = time.time):
        self.project = project
        self.history = history
        self.period = period
        self.window = window
        self.cache_for = cache_for
        self.clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._mutex = threading.Lock()

    def series(self, group: str) -> dict[str, Any]:
        now = self.clock()
        with self._mutex:
            hit = self._cache.get(group)
            if hit is not None and now - hit[0] < self.cache_for:
                return hit[1]
        data = self._read(group, now)
        with self._mutex:
            self._cache[group] = (now, data)
        return data

    def _read(self, group: str, now: float) -> dict[str, Any]:
        period = self.period
        end = (int(now) // period) * period  # the period under way is not published yet
        start = end - int(self.window // period) * period
        points = (end - start) // period
        out: dict[str, Any] = {"group": group, "period": period, "start": start, "end": end,
                               "slots": {}, "error": ""}
        try:
            from rotator.environment import load_environment
            from rotator.wiring import aws_access

            conf = self.project.group(group)
            access = aws_access(conf, load_environment(self.project.root))
            elbs = slot_load_balancers(self.history(group), start)
            edge = self._edge(conf, access)
            queries, meaning = metric_queries(elbs, edge, period)
            if not queries:
                return out
            cloudwatch = access.client("cloudwatch")
            results: list[dict[str, Any]] = []
            for i in range(0, len(queries), 500):  # GetMetricData takes 500 queries a call
                kwargs: dict[str, Any] = {
                    "MetricDataQueries": queries[i:i + 500], "ScanBy": "TimestampAscending",
                    "StartTime": dt.datetime.fromtimestamp(start, dt.UTC),
                    "EndTime": dt.datetime.fromtimestamp(end, dt.UTC)}
                while True:
                    page = cloudwatch.get_metric_data(**kwargs)
                    results += page.get("MetricDataResults", [])
                    if not page.get("NextToken"):
                        break
                    kwargs["NextToken"] = page["NextToken"]
            out["slots"] = combine(results, meaning, start, period, points)
        except Exception as exc:  # no chart is better than no page
            log.warning("%s: traffic chart unreadable: %s: %s", group, type(exc).__name__, exc)
            out["error"] = f"{type(exc).__name__}: {exc}"
        return out

    @staticmethod
    def _edge(conf, access) -> dict[str, Any] | None:
        edge = conf.traffic.edge
        if edge is None:
            return None
        elbv2 = access.client("elbv2")
        lb = elbv2.describe_load_balancers(Names=[edge.load_balancer])["LoadBalancers"][0]
        tgs = elbv2.describe_target_groups(Names=list(edge.target_groups.values()))
        by_name = {t["TargetGroupName"]: t["TargetGroupArn"] for t in tgs["TargetGroups"]}
        return {"load_balancer": _dimension(lb["LoadBalancerArn"], ":loadbalancer/"),
                "target_groups": {slot: by_name[name].rsplit(":", 1)[-1]
                                  for slot, name in edge.target_groups.items()
                                  if name in by_name}}


def render_svg(data: dict[str, Any], width: int = 640, height: int = 200) -> str:
    """Requests (solid) and 5xx (dashed, red) per slot; time on x, per period on y."""
    left, right, top, bottom = 44, 12, 12, 34
    w, h = width - left - right, height - top - bottom
    slots = data.get("slots") or {}
    series = [(slot, what, values) for slot, v in sorted(slots.items())
              for what, values in (("requests", v["requests"]), ("errors", v["errors"]))]
    peak = max([1.0, *[max(vals, default=0.0) for _, _, vals in series]])
    top_value = _nice(peak)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" '
             f'aria-label="traffic of {escape(str(data.get("group", "")))} by slot">',
             '<style>text{font:11px sans-serif;fill:#555}</style>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" '
             'stroke="#ddd"/>']
    for frac in (0.5, 1.0):
        y = top + h - frac * h
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#e6e6e6"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_fmt(top_value * frac)}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + h + 4}" text-anchor="end">0</text>')
    minutes = (data.get("end", 0) - data.get("start", 0)) / 60
    parts.append(f'<text x="{left}" y="{height - 18}">-{minutes:.0f} min</text>')
    parts.append(f'<text x="{left + w}" y="{height - 18}" text-anchor="end">now</text>')
    for slot, what, values in series:
        if not values:
            continue
        step = w / max(1, len(values) - 1)
        pts = " ".join(f"{left + i * step:.1f},{top + h - (v / top_value) * h:.1f}"
                       for i, v in enumerate(values))
        color = ERROR_COLOR if what == "errors" else COLORS.get(slot, "#777")
        dash = ' stroke-dasharray="4 3"' if what == "errors" else ""
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} '
                     f'points="{pts}"><title>{escape(slot)} {what}</title></polyline>')
    x = left
    for slot in sorted(slots):
        parts.append(f'<line x1="{x}" x2="{x + 16}" y1="{height - 5}" y2="{height - 5}" '
                     f'stroke="{COLORS.get(slot, "#777")}" stroke-width="2"/>')
        parts.append(f'<text x="{x + 20}" y="{height - 1}">{escape(slot)} requests</text>')
        x += 120
    if slots:
        parts.append(f'<line x1="{x}" x2="{x + 16}" y1="{height - 5}" y2="{height - 5}" '
                     f'stroke="{ERROR_COLOR}" stroke-width="2" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + 20}" y="{height - 1}">5xx</text>')
    else:
        note = data.get("error") and "traffic unavailable" or "no traffic data yet"
        parts.append(f'<text x="{left + w / 2}" y="{top + h / 2}" text-anchor="middle">'
                     f'{note}</text>')
    parts.append(f'<text x="{left + w}" y="{top + 10}" text-anchor="end">per '
                 f'{int(data.get("period", 60))}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``value``: a round top for the axis."""
    scale = 1.0
    while True:
        for base in (1, 2, 5):
            if base * scale >= value:
                return base * scale
        scale *= 10


def _fmt(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:g}"
