"""Bad releases a user can bake: a fault recorded on the AMI itself (EC2 tags on the
image), so that it lives and dies with the image as a real release would.

Kinds: ``5xx`` (a share ``rate`` of requests answer 500 while /health passes), ``slow``
(a share ``rate`` of requests take ``latency`` longer), ``unhealthy`` (the health
endpoint fails ``after`` the task started, on a share ``rate`` of the tasks) and
``crash`` (a share ``rate`` of the tasks exit ``after`` they started).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

KINDS = ("5xx", "slow", "unhealthy", "crash")
TAG_KIND = "sandbox:fault"
TAG_RATE = "sandbox:fault-rate"
TAG_AFTER = "sandbox:fault-after"
TAG_LATENCY = "sandbox:fault-latency"
# A release that fails its health check or crashes at once never deploys; by default it
# waits long enough to pass a sandbox deployment and its verification first.
DEFAULT_AFTER = {"5xx": 0.0, "slow": 0.0, "unhealthy": 10.0, "crash": 10.0}
DEFAULT_LATENCY = 0.5


@dataclass(frozen=True)
class ReleaseFault:
    kind: str
    rate: float = 1.0
    after: float = 0.0
    latency: float = DEFAULT_LATENCY

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, not {self.rate}")
        if self.after < 0 or self.latency < 0:
            raise ValueError("fault durations must not be negative")

    @classmethod
    def of(cls, kind: str, rate: float | None = None, after: float | None = None,
           latency: float | None = None) -> ReleaseFault:
        return cls(kind, 1.0 if rate is None else rate,
                   DEFAULT_AFTER.get(kind, 0.0) if after is None else after,
                   DEFAULT_LATENCY if latency is None else latency)

    def tags(self) -> list[dict[str, str]]:
        return [{"Key": TAG_KIND, "Value": self.kind}, {"Key": TAG_RATE, "Value": f"{self.rate:g}"},
                {"Key": TAG_AFTER, "Value": f"{self.after:g}"},
                {"Key": TAG_LATENCY, "Value": f"{self.latency:g}"}]

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> ReleaseFault | None:
        kind = tags.get(TAG_KIND)
        if not kind:
            return None
        try:
            return cls(kind, float(tags.get(TAG_RATE, 1)), float(tags.get(TAG_AFTER, 0)),
                       float(tags.get(TAG_LATENCY, DEFAULT_LATENCY)))
        except ValueError:
            return None

    def hits_task(self, task_id: str) -> bool:
        """For faults of whole tasks (unhealthy, crash): a stable share ``rate`` of them."""
        digest = hashlib.sha256(task_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.rate


class ShareCounter:
    """Picks exactly a share ``rate`` of successive events, spread evenly (error diffusion):
    0.2 hits the 5th, 10th, 15th... event."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._acc = 0.0

    def next(self) -> bool:
        self._acc += self.rate
        if self._acc >= 1.0 - 1e-9:
            self._acc -= 1.0
            return True
        return False
