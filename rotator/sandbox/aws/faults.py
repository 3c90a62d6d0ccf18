"""Fault rules: which calls of which operation fail or slow down, and how."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase


@dataclass
class Fault:
    """Skip the first ``after`` matching calls, then act on the next ``count`` ones.

    ``operation`` is ``"<service>:<Operation>"``; shell-style wildcards are
    allowed (``"route53:*"``). ``code`` None means "only delay". ``count`` None
    means every call from then on.
    """

    operation: str
    code: str | None
    count: int | None = 1
    after: int = 0
    delay: float = 0.0
    status: int | None = None
    message: str | None = None
    # the call is carried out, then answered with the error: a response lost on the way
    # back, after which a client's retry meets the world its first attempt changed
    applied: bool = False
    seen: int = field(default=0)

    def to_dict(self) -> dict:
        return asdict(self)

    def exhausted(self) -> bool:
        return self.count is not None and self.seen >= self.after + self.count


@dataclass(frozen=True)
class Decision:
    delay: float = 0.0
    fault: Fault | None = None  # the failing rule, when the call must fail


class FaultBook:
    """Thread-safe set of fault rules, consulted once per call."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        if (fault.count is not None and fault.count < 0) or fault.after < 0 or fault.delay < 0:
            raise ValueError("count, after and delay must not be negative")
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return [Fault(**f.to_dict()) for f in self._faults]

    def decide(self, operation: str) -> Decision:
        delay = 0.0
        failing: Fault | None = None
        with self._lock:
            for rule in self._faults:
                if not fnmatchcase(operation, rule.operation):
                    continue
                index = rule.seen
                rule.seen += 1
                if index < rule.after or (rule.count is not None and index >= rule.after + rule.count):
                    continue
                delay += rule.delay
                if rule.code is not None and failing is None:
                    failing = rule
            self._faults = [f for f in self._faults if not f.exhausted()]
        return Decision(delay=delay, fault=failing)
