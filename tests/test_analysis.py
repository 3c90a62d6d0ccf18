"""What canary analysis compares the candidate with: the stable slot only when the stable
slot's own numbers mean something."""

from __future__ import annotations

from rotator.analysis import judge
from rotator.config import MetricsGate
from rotator.ports import SlotLoad, Verdict

GATE = MetricsGate(window=30, min_requests=20, max_error_ratio=0.05,
                   max_error_ratio_over_stable=0.005, max_p99_ratio_to_stable=1.5,
                   failure_limit=1)
WINDOW = (0.0, 30.0)


def test_a_stable_slot_with_too_few_requests_is_no_baseline():
    # at 100 % only clients that kept an old answer reach the stable slot: 3 requests whose
    # p99 says nothing about the candidate's 800 requests
    verdict = judge(GATE, SlotLoad(800, 2, 0.090), SlotLoad(3, 0, 0.004), at=30, window=WINDOW)
    assert verdict.verdict is Verdict.SUCCESSFUL, verdict.failures
    assert "limits only" in verdict.reason


def test_the_absolute_limits_still_hold_without_a_baseline():
    verdict = judge(GATE, SlotLoad(800, 80, 0.012), SlotLoad(3, 0, 0.004), at=30, window=WINDOW)
    assert verdict.verdict is Verdict.FAILED
    assert verdict.failures == ["error ratio 10.00% > 5.00%"]


def test_a_stable_slot_with_enough_requests_is_the_baseline():
    verdict = judge(GATE, SlotLoad(800, 0, 0.060), SlotLoad(20, 0, 0.020), at=30, window=WINDOW)
    assert verdict.failures == ["p99 60 ms > 1.5 x stable 20 ms"]


def test_a_p99_a_few_milliseconds_above_the_stables_is_noise_not_a_regression():
    # 8 ms against 5 ms is 1.6 x: a ratio a scheduler hiccup makes, not a slow release
    noise = judge(GATE, SlotLoad(800, 0, 0.008), SlotLoad(800, 0, 0.005), at=30, window=WINDOW)
    assert noise.verdict is Verdict.SUCCESSFUL, noise.failures
    slow = judge(GATE, SlotLoad(800, 0, 0.090), SlotLoad(800, 0, 0.050), at=30, window=WINDOW)
    assert slow.failures == ["p99 90 ms > 1.5 x stable 50 ms"]
