"""Live data per group (weights on both traffic layers, target and app health), read from
the world as `rotate status` reads it, in the background, and kept for the pages.

A group is read again every ``every`` seconds, and soon after its record changes (a
step that moved weights); a reader never waits on AWS or Marathon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveView:
    group: str
    data: dict[str, Any] = field(default_factory=dict)  # rotator.status.group_status
    read_at: float = 0.0
    error: str = ""


Reader = Callable[[str], dict[str, Any]]


class LiveViews:
    def __init__(self, groups: list[str], read: Reader, *, every: float = 15.0,
                 soon: float = 0.5, gap: float = 2.0, clock: Callable[[], float] = time.time,
                 on_update: Callable[[LiveView], None] = lambda view: None):
        self.groups = list(groups)
        self.read = read
        self.every = every
        self.soon = soon
        self.gap = gap
        self.clock = clock
        self.on_update = on_update
        self._views = {g: LiveView(g) for g in self.groups}
        self._due = {g: 0.0 for g in self.groups}
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def view(self, group: str) -> LiveView:
        with self._mutex:
            return self._views[group]

    def refresh_soon(self, group: str) -> None:
        """Read the group again shortly: a record that changes every second (a rotation's
        steps) makes it read at most every ``gap`` seconds, not at every change."""
        with self._mutex:
            earliest = max(self.clock() + self.soon, self._views[group].read_at + self.gap)
            self._due[group] = min(self._due.get(group, 0.0), earliest)
        self._wake.set()

    def refresh(self, group: str) -> LiveView:
        try:
            view = LiveView(group, self.read(group), self.clock())
        except Exception as exc:  # an unreachable world is shown, not fatal
            log.warning("%s: live data unreadable: %s: %s", group, type(exc).__name__, exc)
            view = LiveView(group, self.view(group).data, self.clock(),
                            f"{type(exc).__name__}: {exc}")
        with self._mutex:
            self._views[group] = view
            self._due[group] = self.clock() + self.every
        self.on_update(view)
        return view

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="live-views", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            with self._mutex:
                due = [g for g in self.groups if self._due[g] <= now]
                nxt = min(self._due.values()) if self._due else now + self.every
            for g in due:
                if self._stop.is_set():
                    return
                self.refresh(g)
            if not due:
                self._wake.wait(max(0.05, nxt - now))
                self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
