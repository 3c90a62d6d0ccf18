"""Health-check state machines, fed probe outcomes directly (no clock, no network)."""

from __future__ import annotations

from rotator.sandbox.dataplane.health import CLASSIC_FAILED, CLASSIC_REGISTERING, HealthTracker
from rotator.sandbox.dataplane.inventory import HealthCheck
from rotator.sandbox.dataplane.probes import ProbeOutcome

CHECK = HealthCheck("HTTP", 80, "/health", 10, 5, healthy_threshold=3, unhealthy_threshold=2)
OK, BAD = ProbeOutcome(True, "ok", 200), ProbeOutcome(False, "status", 503)
TIMEOUT = ProbeOutcome(False, "timeout")


def _run(style, *outcomes):
    tracker = HealthTracker(style, CHECK, 1.0, probe=None)  # type: ignore[arg-type]
    seen = [tracker.verdict]
    for outcome in outcomes:
        tracker.record(outcome)
        seen.append(tracker.verdict)
    return seen


def test_classic_instance_in_service_after_first_pass_then_thresholds():
    seen = _run("classic", OK, BAD, BAD, OK, OK, OK)
    assert seen[0].description == CLASSIC_REGISTERING
    assert [v.state for v in seen[1:]] == ["InService", "InService", "OutOfService",
                                          "OutOfService", "OutOfService", "InService"]
    assert seen[3].description == CLASSIC_FAILED and seen[3].reason == "Instance"


def test_classic_registration_that_keeps_failing():
    seen = _run("classic", BAD, BAD)
    assert seen[1].description == CLASSIC_REGISTERING
    assert (seen[2].state, seen[2].description) == ("OutOfService", CLASSIC_FAILED)


def test_alb_target_states_and_reason_codes():
    seen = _run("alb", BAD, OK, BAD, TIMEOUT, OK, OK, OK)
    assert (seen[0].state, seen[0].reason) == ("initial", "Elb.RegistrationInProgress")
    assert (seen[1].state, seen[1].reason) == ("initial", "Elb.InitialHealthChecking")
    assert seen[2].state == "healthy"  # one passing check after registration
    assert (seen[4].state, seen[4].reason) == ("unhealthy", "Target.Timeout")
    assert [v.state for v in seen[5:]] == ["unhealthy", "unhealthy", "healthy"]
    assert _run("alb", BAD, BAD)[2].reason == "Target.ResponseCodeMismatch"
