"""Counting outcomes: over the whole run and per second (the report's timeline)."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .outcomes import CAUSES, Outcome

KINDS = {True: "ttl-honouring", False: "ttl-ignoring"}


def percentile(sorted_values: list[float] | array, share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(share * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


@dataclass
class Counts:
    requests: int = 0
    failed: int = 0
    failed_by_cause: Counter = field(default_factory=Counter)
    by_slot: Counter = field(default_factory=Counter)
    by_ami: Counter = field(default_factory=Counter)
    by_app: Counter = field(default_factory=Counter)
    by_group: Counter = field(default_factory=Counter)  # a pair's master or slave
    by_kind: dict[str, Counter] = field(default_factory=dict)  # client kind -> slot -> n
    failed_by_kind: Counter = field(default_factory=Counter)
    failed_between: tuple[float, float] | None = None  # first and last failure's start
    latencies: array = field(default_factory=lambda: array("d"))  # of served requests

    def add(self, outcome: Outcome) -> None:
        self.requests += 1
        if outcome.ok:
            self.by_slot[outcome.slot] += 1
            self.by_ami[outcome.ami] += 1
            self.by_app[outcome.app] += 1
            self.by_group[outcome.group] += 1
            self.by_kind.setdefault(KINDS[outcome.honours_ttl], Counter())[outcome.slot] += 1
            self.latencies.append(outcome.latency)
        else:
            self.failed += 1
            self.failed_by_cause[outcome.cause] += 1
            self.failed_by_kind[KINDS[outcome.honours_ttl]] += 1
            first, last = self.failed_between or (outcome.started, outcome.started)
            self.failed_between = (min(first, outcome.started), max(last, outcome.started))

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "requests": self.requests,
            "served": self.requests - self.failed,
            "failed": self.failed,
            "failed_by_cause": {c: self.failed_by_cause.get(c, 0) for c in CAUSES},
            "by_slot": dict(sorted(self.by_slot.items())),
            "by_ami": dict(sorted(self.by_ami.items())),
            "by_app": dict(sorted(self.by_app.items())),
            "by_group": dict(sorted(self.by_group.items())),
            "by_client_kind": {k: dict(sorted(v.items())) for k, v in sorted(self.by_kind.items())},
            "failed_by_client_kind": {k: self.failed_by_kind.get(k, 0) for k in KINDS.values()},
            # seconds since the run began: when failures started and stopped (None: no failure)
            "failed_between_s": (None if self.failed_between is None
                                 else [round(t, 3) for t in self.failed_between]),
            "latency_ms": {"p50": _ms(percentile(ordered, 0.50)),
                           "p99": _ms(percentile(ordered, 0.99)),
                           "max": _ms(ordered[-1] if ordered else None)},
        }


class Tally:
    """Every outcome of a run, whole and by the second it started in."""

    def __init__(self) -> None:
        self.total = Counts()
        self.seconds: dict[int, Counts] = {}

    def add(self, outcome: Outcome) -> None:
        self.total.add(outcome)
        second = max(0, int(outcome.started))
        if second not in self.seconds:
            self.seconds[second] = Counts()
        self.seconds[second].add(outcome)

    def timeline(self) -> list[dict[str, Any]]:
        """One entry per second from the first to the last, empty seconds included."""
        if not self.seconds:
            return []
        out = []
        for second in range(0, max(self.seconds) + 1):
            counts = self.seconds.get(second, Counts())
            entry = {"t": second, **counts.summary()}
            del entry["by_app"]
            out.append(entry)
        return out
