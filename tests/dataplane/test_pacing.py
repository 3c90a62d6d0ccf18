"""The loop's share of time away from its sockets, and threads that wait while it is high."""

from __future__ import annotations

import math

import pytest

from rotator.sandbox.dataplane import pacing
from rotator.sandbox.dataplane.loop import LoopThread
from rotator.sandbox.dataplane.pacing import WatchedSelector, yield_while_behind


class Script:
    """A clock reading the given times, one per call, then staying at the last."""

    def __init__(self, *times: float):
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_the_share_counts_time_away_from_select_and_decays_while_waiting():
    selector = WatchedSelector(Script(0.0, 0.010, 0.040))
    selector.select(0)  # away 10 ms, then 30 ms in select
    expected = 0.25 * (1 - math.exp(-0.040 / pacing.TAU))
    assert selector.share(0.040) == pytest.approx(expected)
    # away again: 1 ms is not behind, 20 ms is
    assert not selector.share(0.041) > pacing.BEHIND
    assert selector.share(0.060) > pacing.BEHIND
    selector.close()


def test_a_loop_waiting_in_select_is_not_behind_however_long_it_waits():
    selector = WatchedSelector(Script(0.0, 0.100))
    selector._entered = 0.100  # in select since 100 ms, after 100 ms away
    assert selector.share(0.101) > pacing.BEHIND
    assert selector.share(0.200) < pacing.BEHIND  # the wait counts as it goes
    selector.close()


class Loop:
    def __init__(self, behind_for: int):
        self.left = behind_for

    def behind(self) -> bool:
        self.left -= 1
        return self.left >= 0


class Clock:
    def __init__(self):
        self.now = 0.0
        self.naps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps += 1
        self.now += seconds


def test_another_thread_waits_until_the_loop_has_caught_up():
    clock = Clock()
    yield_while_behind(Loop(behind_for=4), clock, clock.sleep)
    assert clock.naps == 3
    clock = Clock()
    yield_while_behind(Loop(behind_for=0), clock, clock.sleep)
    assert clock.naps == 0


def test_it_waits_no_longer_than_max_yield():
    clock = Clock()
    yield_while_behind(Loop(behind_for=10**6), clock, clock.sleep)
    assert pacing.MAX_YIELD <= clock.now < pacing.MAX_YIELD + 2 * pacing.NAP


def test_the_loop_itself_never_waits_for_itself():
    loop = LoopThread(clock=lambda: 0.0).start()  # a frozen clock: a wait would never end
    try:
        loop.selector._share = 1.0  # as behind as it gets
        assert loop.run(_yield_inside(loop), timeout=5) is True
    finally:
        loop.stop()


async def _yield_inside(loop: LoopThread) -> bool:
    loop.yield_while_behind()
    return True
