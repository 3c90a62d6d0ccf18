"""The live line on a terminal: once a second, what the last second looked like."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TextIO

from .outcomes import Outcome
from .tally import percentile


class LiveLine:
    def __init__(self, stream: TextIO, duration: float):
        self.stream = stream
        self.duration = duration
        self.requests = self.failed = 0
        self._window: list[float] = []
        self._slots: Counter = Counter()
        self._failed_window = 0

    def __call__(self, outcome: Outcome) -> None:
        self.requests += 1
        if outcome.ok:
            self._window.append(outcome.latency)
            self._slots[outcome.slot] += 1
        else:
            self.failed += 1
            self._failed_window += 1

    def line(self, elapsed: float) -> str:
        served = sum(self._slots.values())
        slots = "  ".join(f"{k} {100 * v / served:.0f}%" for k, v in sorted(self._slots.items()))
        p99 = percentile(sorted(self._window), 0.99)
        return (f"{elapsed:5.0f}/{self.duration:.0f}s  {self.requests} requests  "
                f"{served + self._failed_window}/s  failed {self.failed}  {slots or '-'}  "
                + (f"p99 {p99 * 1000:.1f} ms" if p99 is not None else ""))

    async def run(self, clock, every: float = 1.0) -> None:
        start = clock()
        try:
            while True:
                await asyncio.sleep(every)
                self.stream.write("\r\033[K" + self.line(clock() - start))
                self.stream.flush()
                self._window.clear()
                self._slots.clear()
                self._failed_window = 0
        finally:
            self.stream.write("\r\033[K")
            self.stream.flush()
