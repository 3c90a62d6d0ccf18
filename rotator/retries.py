"""tenacity stop conditions on clocks the caller injects (tenacity's own time-based stops
read time.monotonic, which a test cannot move)."""

from __future__ import annotations

import math
from collections.abc import Callable

from tenacity import RetryCallState
from tenacity.stop import stop_base


class stop_at(stop_base):  # noqa: N801 - named like tenacity's stops
    """Stop once ``clock()`` reaches ``deadline`` (None: never)."""

    def __init__(self, deadline: float | None, clock: Callable[[], float]):
        self.deadline = math.inf if deadline is None else deadline
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() >= self.deadline


class stop_when(stop_base):  # noqa: N801
    """Stop as soon as ``condition()`` holds (e.g. an operator's request waits)."""

    def __init__(self, condition: Callable[[], bool]):
        self.condition = condition

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.condition()
