"""How far behind the data plane's event loop is, for the threads that share its GIL.

The loop shares its process, and so the GIL, with the AWS emulator, which Terraform keeps
busy during a rotation. At every system call the loop lets the GIL go and, while another
thread computes, waits a switch interval to have it back: its requests then take many
times their usual time, and queue. A loop that keeps up spends most of its time waiting
on its sockets; ``WatchedSelector`` measures the share of time it spends away from that
wait, and ``yield_while_behind`` makes another thread wait, between AWS requests, while
the share is high.
"""

from __future__ import annotations

import math
import selectors
import time
from collections.abc import Callable

TAU = 0.01  # seconds: how quickly the measured share follows the loop
BEHIND = 0.6  # a loop away from its sockets for more of its time than this is behind
MAX_YIELD = 0.05  # the longest another thread waits for the loop, per call
NAP = 0.0005


class WatchedSelector(selectors.DefaultSelector):  # type: ignore[misc, valid-type]
    """The loop's selector: an exponentially weighted share of time away from select."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._left = clock()  # when the loop last came back from select
        self._entered: float | None = None  # when it went into select; None: away
        self._share = 0.0

    def select(self, timeout: float | None = None) -> list:
        self._entered = self._clock()
        try:
            return super().select(timeout)
        finally:
            now = self._clock()
            self._share = self.share(now)
            self._left, self._entered = now, None

    def share(self, now: float | None = None) -> float:
        """The share up to ``now``, counting the current wait or the current time away."""
        now = self._clock() if now is None else now
        left, entered = self._left, self._entered  # read once: the loop updates them
        cycle = now - left
        if cycle <= 0:
            return self._share
        away = cycle if entered is None else max(0.0, entered - left)
        weight = 1.0 - math.exp(-cycle / TAU)
        return self._share + (min(1.0, away / cycle) - self._share) * weight

    def behind(self) -> bool:
        return self.share() > BEHIND


def yield_while_behind(selector: WatchedSelector, clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait while the loop is behind, at most ``MAX_YIELD``: sleeping hands it the GIL."""
    if not selector.behind():
        return
    deadline = clock() + MAX_YIELD
    while selector.behind() and clock() < deadline:
        sleep(NAP)
