"""Retire waits until the old slot is quiet, observed; canary analysis by metrics judges the
candidate against limits and the stable slot, while it waits too. The engine over fakes that
only record, with metrics a test scripts (requests per second and error share by time)."""

from __future__ import annotations

import math

import pytest

from rotator.analysis import judge
from rotator.config import MetricsGate, RetireSettings
from rotator.errors import Refused
from rotator.model import RotationStatus
from rotator.ports import SlotLoad, Verdict
from rotator.state.control import operator_request
from rotator.traffic.guard import TrafficGuard
from tests.engine_harness import GROUP, engine, policy, promote
from tests.fakes import FakeMetrics, FakeWorld, MemoryStore
from tests.promises import violations

TTL = 60  # the records of prd-cn


@pytest.fixture
def world():
    w = FakeWorld()
    w.seed_live("blue")
    return w


def step_time(record, kind, field="finished_at"):
    return next(getattr(s, field) for s in record.steps if s.kind == kind)


def test_retire_waits_for_the_ttl_the_drain_and_a_quiet_window(world):
    """Clients that cached blue's answer may come for the records' TTL after the change was
    INSYNC; then blue's requests must stay at 0 for quiet_for (here TTL-ignoring clients
    keep coming until t0 + 100 s)."""
    store = MemoryStore(world)
    metrics = FakeMetrics(world, follow_weights=False)
    t0 = world.clock()
    metrics.rates["blue"] = lambda t: (50.0 if t < t0 + 100 else 0.0, 0.0)
    pol = policy("blue-green", retain_stable=0.0, retire=RetireSettings(quiet_for=30))
    record = engine(world, store, pol, metrics=metrics).start("ami-0123abcd")
    assert record.status is RotationStatus.DONE, record.reason
    destroyed = step_time(record, "retire-destroy", "started_at")
    shifted = step_time(record, "shift")
    assert record.cached_until["blue"] >= shifted + TTL - 1
    assert destroyed >= record.cached_until["blue"]
    assert destroyed >= t0 + 100 + 30  # the last request, then a whole quiet window
    quiet = next(s for s in record.steps if s.kind == "retire-quiet")
    notes = [e["msg"] for e in record.events if e["step"] == quiet.name]
    assert any("quiet" in n for n in notes)
    assert violations(world) == []


def test_a_slot_that_never_gets_quiet_pauses_then_an_override_by_name_destroys_it(world):
    store = MemoryStore(world)
    metrics = FakeMetrics(world, follow_weights=False)
    metrics.rates["blue"] = lambda t: (5.0, 0.0)  # a client that never lets go
    pol = policy("blue-green", retain_stable=0.0,
                 retire=RetireSettings(quiet_for=30, max_wait=300, then="pause"))
    record = engine(world, store, pol, metrics=metrics).start("ami-0123abcd")
    assert record.status is RotationStatus.PAUSED
    assert "blue not quiet after 300s" in record.reason and "requests" in record.reason
    assert "blue" in world.slots  # nothing destroyed
    store.died()
    store.write_control(GROUP.name, record.id, operator_request(
        "override-quiet", step="blue", by="ops@bastion"))
    record = engine(world, store, pol, metrics=metrics).resume()
    assert record.status is RotationStatus.DONE
    assert "blue" not in world.slots
    override = record.operator_actions[-1]
    assert override["action"] == "override-quiet" and override["by"] == "ops@bastion"


def test_the_guard_refuses_to_destroy_a_busy_slot_whoever_asks():
    rules = RetireSettings(quiet_for=120, max_requests=0)
    with pytest.raises(Refused, match="served 42 requests in the last 120s"):
        TrafficGuard(elb=None).check_quiet("blue", SlotLoad(42, 0), rules)
    with pytest.raises(Refused, match="cannot be read"):
        TrafficGuard(elb=None).check_quiet("blue", None, rules)
    TrafficGuard(elb=None).check_quiet("blue", SlotLoad(0, 0), rules)


def test_a_rollback_waits_for_the_candidates_cached_clients_too(world):
    store = MemoryStore(world)
    metrics = FakeMetrics(world)
    world.fail_health_after["green"] = 6  # green fails after it carried traffic
    pol = policy("blue-green", retain_stable=200.0, retire=RetireSettings(quiet_for=20))
    record = engine(world, store, pol, metrics=metrics).start("ami-0123abcd")
    assert record.status is RotationStatus.ROLLED_BACK, record.reason
    quiet = next(s for s in record.rollback_steps if s.kind == "rollback-quiet")
    assert quiet.finished_at >= record.cached_until["green"]
    assert record.cached_until["green"] - step_time(record, "shift") >= TTL - 1


# -- canary analysis -----------------------------------------------------------------------

ANALYSIS = MetricsGate(window=30, min_requests=20, max_error_ratio=0.05,
                       max_error_ratio_over_stable=0.005, failure_limit=1)


def canary(**changes):
    pol = policy("canary")
    gate = pol.gate.model_copy(update={"metrics": ANALYSIS})
    return pol.model_copy(update={"gate": gate, **changes})


def test_judge_against_limits_and_the_stable_slot():
    window = (0.0, 30.0)
    ok = judge(ANALYSIS, SlotLoad(100, 1, 0.1), SlotLoad(1000, 5, 0.1), at=30, window=window)
    assert ok.verdict is Verdict.SUCCESSFUL
    bad = judge(ANALYSIS, SlotLoad(100, 20, 0.1), SlotLoad(1000, 5, 0.1), at=30, window=window)
    assert bad.verdict is Verdict.FAILED
    assert bad.failures == ["error ratio 20.00% > 5.00%",
                            "error ratio 20.00% > stable 0.50% + 0.50%"]
    slow = judge(ANALYSIS, SlotLoad(100, 0, 0.4), SlotLoad(1000, 0, 0.1), at=30, window=window)
    assert slow.failures == ["p99 400 ms > 1.5 x stable 100 ms"]
    few = judge(ANALYSIS, SlotLoad(5, 5, 0.1), SlotLoad(1000, 0, 0.1), at=30, window=window)
    assert few.verdict is Verdict.INCONCLUSIVE  # no data is not a pass, nor a failure
    assert judge(ANALYSIS, None, None, at=30, window=window).verdict is Verdict.ERROR


def test_a_canary_answering_errors_rolls_back_before_the_approval(world):
    store = MemoryStore(world)
    metrics = FakeMetrics(world)
    metrics.rates["blue"] = lambda t: (100.0, 0.001)
    metrics.rates["green"] = lambda t: (5.0, 0.2)  # 20 % of the canary's requests fail
    record = engine(world, store, canary(), metrics=metrics).start("ami-0123abcd")
    assert record.status is RotationStatus.ROLLED_BACK
    assert "metric analysis failed: error ratio 20.00% > 5.00%" in record.reason
    assert max(s["weights"].get("green", 0) for s in store.snapshots) == 5
    assert record.analysis["last"]["verdict"] == "failed"


def test_a_period_is_judged_as_soon_as_cloudwatch_publishes_it(world):
    """Errors start on a period boundary while the canary carries 5 %: the rollback moves
    weight the moment that period is published (its end + CloudWatch's delay), not a poll
    interval later."""
    store = MemoryStore(world)
    metrics = FakeMetrics(world)
    delay, bad_from = 1.5, {}
    metrics.rates["blue"] = lambda t: (100.0, 0.0)
    metrics.rates["green"] = lambda t: (5.0, 0.5 if t >= bad_from.get("t", math.inf) else 0.0)
    eng = engine(world, store, canary(), metrics=metrics, metrics_delay=delay)
    original = world.clock.sleep

    def sleep(seconds):
        if world.weights.get("green") and "t" not in bad_from:
            now = world.clock()
            bad_from["t"] = math.ceil(now / metrics.period) * metrics.period + metrics.period
        original(seconds)

    eng.sleep = sleep
    record = eng.start("ami-0123abcd")
    assert record.status is RotationStatus.ROLLED_BACK, record.reason
    published = bad_from["t"] + metrics.period + delay
    back = next(s for s in record.rollback_steps if s.kind == "rollback-weights")
    assert published <= back.started_at <= published + 0.1


def test_a_good_canary_passes_its_gates_on_metrics(world):
    store = MemoryStore(world)
    metrics = FakeMetrics(world)
    metrics.rates["blue"] = lambda t: (100.0, 0.0)
    metrics.rates["green"] = lambda t: (5.0, 0.0)
    pol = canary(steps=[s for s in policy("canary").steps if not hasattr(s, "approve")])
    record = engine(world, store, pol, metrics=metrics).start("ami-0123abcd")
    assert record.status is RotationStatus.DONE, record.reason
    verdicts = {e["verdict"] for e in record.analysis["history"]}
    assert verdicts <= {"successful", "inconclusive"} and "successful" in verdicts


def test_an_interactive_approval_keeps_judging_and_rolls_back_when_the_canary_turns_bad(world):
    store = MemoryStore(world)
    metrics = FakeMetrics(world)
    waiting_since = {}

    def green(t):
        bad = "t" in waiting_since and t >= waiting_since["t"] + 30
        return 20.0, (0.3 if bad else 0.0)

    metrics.rates["blue"] = lambda t: (100.0, 0.0)
    metrics.rates["green"] = green
    eng = engine(world, store, canary(), metrics=metrics, interactive=True)
    original = world.clock.sleep

    def sleep(seconds):
        rec = store.load(GROUP.name)
        if rec and rec["status"] == "waiting" and "t" not in waiting_since:
            waiting_since["t"] = world.clock()
        original(seconds)

    eng.sleep = sleep
    record = eng.start("ami-0123abcd")
    assert waiting_since, "it did wait for the approval"
    assert record.status is RotationStatus.ROLLED_BACK
    assert "metric analysis failed" in record.reason
    approval = next(s for s in record.steps if s.kind == "approve")
    assert approval.status.value == "failed"


def test_a_promote_after_nobody_watched_judges_the_whole_wait_first(world):
    store = MemoryStore(world)
    metrics = FakeMetrics(world)
    metrics.rates["blue"] = lambda t: (100.0, 0.0)
    good = {"on": True}
    metrics.rates["green"] = lambda t: (20.0, 0.0 if good["on"] else 0.25)
    record = engine(world, store, canary(), metrics=metrics).start("ami-0123abcd")
    assert record.status is RotationStatus.WAITING  # exit 4: nobody watches from now on
    assert record.unwatched_since is not None
    good["on"] = False  # the canary goes bad while nobody looks
    world.clock.now += 600
    promote(store, record)
    record = engine(world, store, canary(), metrics=metrics).resume()
    assert record.status is RotationStatus.ROLLED_BACK
    assert "metric analysis of the wait nobody watched failed: error ratio 25.00%" in record.reason
    assert max(s["weights"].get("green", 0) for s in store.snapshots) == 25  # never 50
