"""Canary analysis by metrics: judge the candidate's load against limits and the stable slot.

Pure: the caller reads both slots' load for one window (``Metrics.load``) and keeps the
consecutive failures in the record. As the anchors do it (Argo Rollouts' AnalysisRuns,
Flagger's checks): a metric fails when it breaks an absolute limit or is worse than the
baseline by more than its margin; fewer requests than ``min_requests`` is no data, which is
never a pass; the gate fails after ``failure_limit`` failed evaluations in a row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rotator.config import MetricsGate
from rotator.ports import SlotLoad, Verdict


@dataclass(frozen=True)
class Evaluation:
    verdict: Verdict
    at: float
    window: tuple[float, float]
    candidate: SlotLoad | None
    stable: SlotLoad | None
    failures: list[str] = field(default_factory=list)  # one line per failing metric
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        def load(x: SlotLoad | None) -> dict[str, Any] | None:
            if x is None:
                return None
            return {**asdict(x), "error_ratio": x.error_ratio}

        return {"verdict": self.verdict.value, "at": round(self.at, 3),
                "window": [round(self.window[0], 3), round(self.window[1], 3)],
                "candidate": load(self.candidate), "stable": load(self.stable),
                "failures": list(self.failures), "reason": self.reason}

    def summary(self) -> str:
        if self.verdict is Verdict.FAILED:
            return "; ".join(self.failures)
        return self.reason


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def judge(gate: MetricsGate, candidate: SlotLoad | None, stable: SlotLoad | None, *,
          at: float, window: tuple[float, float]) -> Evaluation:
    def result(verdict: Verdict, reason: str = "", failures: list[str] | None = None):
        return Evaluation(verdict, at, window, candidate, stable, failures or [], reason)

    if candidate is None:
        return result(Verdict.ERROR, "the candidate's metrics could not be read")
    if candidate.requests < gate.min_requests:
        return result(Verdict.INCONCLUSIVE, f"{candidate.requests:.0f} requests in the window, "
                                            f"fewer than {gate.min_requests}: no data yet")
    failures = []
    ratio = candidate.error_ratio or 0.0
    if gate.max_error_ratio is not None and ratio > gate.max_error_ratio:
        failures.append(f"error ratio {_pct(ratio)} > {_pct(gate.max_error_ratio)}")
    # a stable slot that served too few requests (at 100 %, only clients that kept an old
    # answer reach it) is no baseline: its p99 and error ratio are noise
    baseline = stable if stable is not None and stable.requests >= max(1, gate.min_requests) \
        else None
    if gate.max_error_ratio_over_stable is not None and baseline is not None:
        limit = (baseline.error_ratio or 0.0) + gate.max_error_ratio_over_stable
        if ratio > limit:
            failures.append(f"error ratio {_pct(ratio)} > stable {_pct(baseline.error_ratio or 0)}"
                            f" + {_pct(gate.max_error_ratio_over_stable)}")
    if candidate.p99 is not None:
        if gate.max_p99 is not None and candidate.p99 > gate.max_p99:
            failures.append(f"p99 {candidate.p99 * 1000:.0f} ms > {gate.max_p99 * 1000:.0f} ms")
        if (gate.max_p99_ratio_to_stable is not None and baseline is not None
                and baseline.p99 and candidate.p99 > gate.max_p99_ratio_to_stable * baseline.p99
                and candidate.p99 - baseline.p99 > gate.p99_tolerance):
            failures.append(f"p99 {candidate.p99 * 1000:.0f} ms > {gate.max_p99_ratio_to_stable:g}"
                            f" x stable {baseline.p99 * 1000:.0f} ms")
    if failures:
        return result(Verdict.FAILED, failures=failures)
    p99 = f", p99 {candidate.p99 * 1000:.0f} ms" if candidate.p99 is not None else ""
    alone = "" if baseline is not None else " (limits only: too few requests on stable)"
    return result(Verdict.SUCCESSFUL, f"{candidate.requests:.0f} requests, errors {_pct(ratio)}"
                                      f"{p99}{alone}")
