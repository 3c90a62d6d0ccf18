"""`/metrics` in Prometheus' text format.

Everything about rotations is computed from the records on each scrape (so every
controller of a team says the same, and a restarted one forgets nothing); weights come
from the live views; liveness and notifications from this process.

Definitions, for the rotations that rolled back because rotator judged the candidate bad
(not an operator's abort):
- time to detect: from the moment the candidate first carried traffic (its first shift
  began) to the failure that started the rollback;
- time to roll back: from that failure to the end of the rollback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

STEP_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DETECT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 900, 3600)
FINISHED = ("done", "rolled-back")


def _histogram(name: str, doc: str, labels: list[str], buckets: Iterable[float],
               samples: dict[tuple[str, ...], list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    bounds = list(buckets)
    for key, values in sorted(samples.items()):
        counts = [(str(float(b)), sum(1 for v in values if v <= b)) for b in bounds]
        counts.append(("+Inf", len(values)))
        family.add_metric(list(key), counts, sum_value=sum(values))
    return family


def detection(rec: dict[str, Any]) -> tuple[float, float] | None:
    """(time to detect, time to roll back) of a rotation rotator rolled back itself."""
    if rec.get("status") != "rolled-back":
        return None
    if any(a.get("action") == "abort" and not str(a.get("outcome", "")).startswith("ignored")
           for a in rec.get("operator_actions", [])):
        return None
    failed = [s for s in rec.get("steps", []) if s.get("status") == "failed"
              and s.get("finished_at")]
    exposed = [s["started_at"] for s in rec.get("steps", [])
               if s.get("kind") == "shift" and s.get("started_at")]
    if not failed or not exposed or not rec.get("finished_at"):
        return None
    at = failed[-1]["finished_at"]
    return max(0.0, at - min(exposed)), max(0.0, rec["finished_at"] - at)


def metric_verdicts(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, verdict) pairs from a record's analysis: the engine's evaluations of the
    canary (``history``, and ``unwatched`` for a wait judged as a whole); other shapes, a
    list of results or a mapping of metric name to result, are read as well."""
    analysis = rec.get("analysis")
    if isinstance(analysis, dict) and isinstance(analysis.get("history"), list):
        evaluations = [("canary", e) for e in analysis["history"]]
        if isinstance(analysis.get("unwatched"), dict):
            evaluations.append(("unwatched-wait", analysis["unwatched"]))
        return [(name, e["verdict"]) for name, e in evaluations
                if isinstance(e, dict) and isinstance(e.get("verdict"), str)]
    items: list[tuple[str, Any]] = []
    if isinstance(analysis, dict):
        results = analysis.get("results") if isinstance(analysis.get("results"), list) else None
        items = ([(str(r.get("metric") or r.get("name") or "?"), r) for r in results
                  if isinstance(r, dict)] if results is not None
                 else [(str(k), v) for k, v in analysis.items()])
    elif isinstance(analysis, list):
        items = [(str(r.get("metric") or r.get("name") or "?"), r) for r in analysis
                 if isinstance(r, dict)]
    out = []
    for name, value in items:
        verdict = value.get("verdict") if isinstance(value, dict) else value
        if isinstance(verdict, str):
            out.append((name, verdict))
    return out


class RotatorCollector:
    def __init__(self, states: Callable[[], list], views: Callable[[str], Any],
                 holding: Callable[[], dict[str, Any]], liveness: Callable[[], float],
                 clock: Callable[[], float] = time.time):
        self.states = states
        self.views = views
        self.holding = holding
        self.liveness = liveness
        self.clock = clock

    def collect(self):
        states = self.states()
        finished = CounterMetricFamily(
            "rotator_rotations", "Finished rotations by group and outcome",
            labels=["group", "outcome"])
        unfinished = GaugeMetricFamily(
            "rotator_rotations_unfinished", "Unfinished rotations by group and status",
            labels=["group", "status"])
        gates = CounterMetricFamily(
            "rotator_gate_verdicts", "Health gate verdicts (verify and gate steps)",
            labels=["group", "verdict"])
        metric = CounterMetricFamily(
            "rotator_metric_verdicts", "Canary metric analysis verdicts",
            labels=["group", "metric", "verdict"])
        failovers = CounterMetricFamily(
            "rotator_failovers", "Failovers and failbacks done, by the group traffic left",
            labels=["group", "kind"])
        steps: dict[tuple[str, ...], list[float]] = {}
        detect: dict[tuple[str, ...], list[float]] = {}
        rollback: dict[tuple[str, ...], list[float]] = {}
        for st in states:
            outcomes: dict[str, int] = {o: 0 for o in FINISHED}
            statuses: dict[str, int] = {}
            verdicts: dict[str, int] = {"passed": 0, "failed": 0}
            by_metric: dict[tuple[str, str], int] = {}
            pairs: dict[str, int] = {}
            for rec in st.history:
                kind = rec.get("kind", "rotation")
                if kind in ("failover", "failback"):
                    if rec.get("status") == "done" and rec.get("from") == st.name:
                        pairs[kind] = pairs.get(kind, 0) + 1
                    continue
                status = rec.get("status", "")
                if status in FINISHED:
                    outcomes[status] += 1
                else:
                    statuses[status] = statuses.get(status, 0) + 1
                for s in [*rec.get("steps", []), *rec.get("rollback_steps", [])]:
                    if s.get("started_at") and s.get("finished_at") and s.get("status") in (
                            "done", "failed"):
                        steps.setdefault((st.name, s.get("kind", "?")), []).append(
                            s["finished_at"] - s["started_at"])
                    if s.get("kind") in ("verify", "gate") and s.get("status") == "done":
                        verdicts["passed"] += 1
                    elif s.get("status") == "failed" and "gate failed" in (s.get("reason") or ""):
                        verdicts["failed"] += 1
                for name, verdict in metric_verdicts(rec):
                    by_metric[(name, verdict)] = by_metric.get((name, verdict), 0) + 1
                timing = detection(rec)
                if timing is not None:
                    detect.setdefault((st.name,), []).append(timing[0])
                    rollback.setdefault((st.name,), []).append(timing[1])
            for outcome, n in outcomes.items():
                finished.add_metric([st.name, outcome], n)
            for status, n in sorted(statuses.items()):
                unfinished.add_metric([st.name, status], n)
            for verdict, n in verdicts.items():
                gates.add_metric([st.name, verdict], n)
            for (name, verdict), n in sorted(by_metric.items()):
                metric.add_metric([st.name, name, verdict], n)
            for kind, n in sorted(pairs.items()):
                failovers.add_metric([st.name, kind], n)
        yield from (finished, unfinished, gates, metric, failovers)
        yield _histogram("rotator_step_duration_seconds", "Duration of finished steps",
                         ["group", "kind"], STEP_BUCKETS, steps)
        yield _histogram("rotator_time_to_detect_seconds",
                         "From the candidate's first traffic to the failure that rolled it back",
                         ["group"], DETECT_BUCKETS, detect)
        yield _histogram("rotator_time_to_rollback_seconds",
                         "From the failure to the end of the rollback", ["group"],
                         DETECT_BUCKETS, rollback)
        yield from self._weights(states)
        yield from self._liveness(states)

    def _weights(self, states):
        dns = GaugeMetricFamily("rotator_dns_weight", "Route53 weight per record and slot",
                                labels=["group", "record", "slot"])
        edge = GaugeMetricFamily("rotator_edge_weight", "Edge listener weight per slot",
                                 labels=["group", "load_balancer", "slot"])
        last = GaugeMetricFamily("rotator_rotation_weight",
                                 "Weights the group's latest rotation last set",
                                 labels=["group", "slot"])
        read = GaugeMetricFamily("rotator_live_read_timestamp_seconds",
                                 "When the group's live weights were last read",
                                 labels=["group"])
        for st in states:
            view = self.views(st.name)
            data = view.data or {}
            for record, weights in sorted(data.get("records", {}).items()):
                for slot, w in sorted(weights.items()):
                    dns.add_metric([st.name, record, slot], w)
            e = data.get("edge") or {}
            for slot, w in sorted((e.get("weights") or {}).items()):
                edge.add_metric([st.name, e.get("load_balancer", ""), slot], w)
            for slot, w in sorted(((st.record or {}).get("weights") or {}).items()):
                last.add_metric([st.name, slot], w)
            if view.read_at:
                read.add_metric([st.name], view.read_at)
        yield from (dns, edge, last, read)

    def _liveness(self, states):
        up = GaugeMetricFamily("rotator_controller_up", "1 while this controller runs")
        up.add_metric([], 1)
        beat = GaugeMetricFamily("rotator_controller_heartbeat_timestamp_seconds",
                                 "When the controller last looked at every group")
        beat.add_metric([], self.liveness())
        holding = self.holding()
        held = GaugeMetricFamily("rotator_controller_holding",
                                 "1 for a group whose rotation this controller runs",
                                 labels=["group"])
        for st in states:
            held.add_metric([st.name], 1 if st.name in holding else 0)
        yield from (up, beat, held)


def build_registry(collector: RotatorCollector) -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    registry.register(collector)
    notices = Counter("rotator_notifications", "Notifications by kind and outcome",
                      ["kind", "outcome"], registry=registry)
    return registry, notices
