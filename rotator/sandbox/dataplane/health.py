"""Load-balancer health checks, run for real against the registered targets.

Classic ELB (Classic Load Balancers guide, "Configure health checks", "CloudWatch
metrics" and DescribeInstanceHealth): a new instance is ``OutOfService`` ("Instance
registration is still in progress.") until its first check; "a newly registered instance
is considered healthy after it passes the first health check" (``HealthyHostCount``); an
``InService`` instance goes ``OutOfService`` after ``UnhealthyThreshold`` consecutive
failures, and back after ``HealthyThreshold`` consecutive successes. An HTTP check passes
on "200 OK" only, within the response timeout.

ALB target groups (ALB guide, "Health checks for your target groups", TargetHealth API):
a new target is ``initial`` (``Elb.RegistrationInProgress``, then
``Elb.InitialHealthChecking``) and "must pass one health check to be considered
healthy"; ``UnhealthyThresholdCount`` consecutive failures make it ``unhealthy``
(``Target.ResponseCodeMismatch`` / ``Target.Timeout`` / ``Target.FailedHealthChecks``),
``HealthyThresholdCount`` successes make it ``healthy`` again. A check passes when the
answer's code matches the group's matcher.

Every interval and timeout is multiplied by the sandbox's time scale.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .inventory import HealthCheck
from .probes import ProbeOutcome

CLASSIC_REGISTERING = "Instance registration is still in progress."
CLASSIC_FAILED = ("Instance has failed at least the UnhealthyThreshold number of health "
                  "checks consecutively.")
CLASSIC_DRAINING = "Instance deregistration currently in progress."


@dataclass(frozen=True)
class Verdict:
    state: str
    reason: str | None = None
    description: str | None = None


Probe = Callable[[], Awaitable[ProbeOutcome]]


class HealthTracker:
    """The health of one registered target, from its own probe loop."""

    def __init__(self, style: str, check: HealthCheck, scale: float, probe: Probe,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.style = style  # "classic" or "alb"
        self.check = check
        self.scale = scale
        self._probe = probe
        self._on_change = on_change
        self.successes = 0
        self.failures = 0
        self.ever_checked = False
        self.verdict = (Verdict("OutOfService", "ELB", CLASSIC_REGISTERING) if style == "classic"
                        else Verdict("initial", "Elb.RegistrationInProgress",
                                     "Target registration is in progress"))
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self.verdict.state in ("InService", "healthy")

    @property
    def interval(self) -> float:
        return self.check.interval * self.scale

    @property
    def timeout(self) -> float:
        return min(self.check.timeout, self.check.interval) * self.scale

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                started = loop.time()
                outcome = await self._probe()
                self.record(outcome)
                await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    def record(self, outcome: ProbeOutcome) -> None:
        before = self.verdict
        self.ever_checked = True
        if outcome.ok:
            self.successes += 1
            self.failures = 0
        else:
            self.failures += 1
            self.successes = 0
        self.verdict = (self._classic(outcome) if self.style == "classic"
                        else self._alb(outcome))
        if self.verdict != before:
            self._on_change()

    def _classic(self, outcome: ProbeOutcome) -> Verdict:
        current = self.verdict
        if current.state == "InService":
            if self.failures >= self.check.unhealthy_threshold:
                return Verdict("OutOfService", "Instance", CLASSIC_FAILED)
            return current
        registering = current.description == CLASSIC_REGISTERING
        if (registering and outcome.ok) or self.successes >= self.check.healthy_threshold:
            return Verdict("InService", "N/A", "N/A")
        if self.failures >= self.check.unhealthy_threshold or current.reason == "Instance":
            return Verdict("OutOfService", "Instance", CLASSIC_FAILED)
        return current

    def _alb(self, outcome: ProbeOutcome) -> Verdict:
        current = self.verdict
        if current.state == "initial":
            if outcome.ok:
                return Verdict("healthy")
            if self.failures >= self.check.unhealthy_threshold:
                return _alb_failure(outcome)
            return Verdict("initial", "Elb.InitialHealthChecking",
                           "Initial health checks in progress")
        if current.state == "healthy":
            if self.failures >= self.check.unhealthy_threshold:
                return _alb_failure(outcome)
            return current
        if self.successes >= self.check.healthy_threshold:
            return Verdict("healthy")
        return _alb_failure(outcome) if not outcome.ok else current


def _alb_failure(outcome: ProbeOutcome) -> Verdict:
    if outcome.kind == "status":
        return Verdict("unhealthy", "Target.ResponseCodeMismatch",
                       f"Health checks failed with these codes: [{outcome.status}]")
    if outcome.kind == "timeout":
        return Verdict("unhealthy", "Target.Timeout", "Request timed out")
    return Verdict("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
