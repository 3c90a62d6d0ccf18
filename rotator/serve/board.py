"""The board: what the record store says about every group, kept current for the controller,
the notifier, the metrics and the pages, and the one place that reads the store for them.

A watcher thread waits on the store's change feed and reloads the groups that changed;
each change is handed to every subscriber (in that thread: subscribers only note it and
return). A periodic sweep reloads everything, for what a feed cannot see (a lock expiring).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rotator.ports import LockInfo
from rotator.serve.feed import ChangeFeed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupState:
    name: str
    record: dict[str, Any] | None = None
    lock: LockInfo | None = None
    control: dict[str, Any] = field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    error: str = ""  # the store could not be read
    version: int = 0  # grows with every change seen

    def pending_requests(self) -> list[dict[str, Any]]:
        """Operator requests for the current rotation not yet acted on."""
        rec = self.record or {}
        if self.control.get("rotation_id") != rec.get("id"):
            return []
        return list(self.control.get("requests", []))[len(rec.get("operator_actions", [])):]


Subscriber = Callable[[GroupState], None]


class Board:
    def __init__(self, store, groups: list[str], feed: ChangeFeed, *,
                 sweep_every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.groups = list(groups)
        self.feed = feed
        self.sweep_every = sweep_every
        self.clock = clock
        self._states: dict[str, GroupState] = {g: GroupState(g) for g in self.groups}
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_loop = 0.0  # wall clock of the watcher's last turn (liveness)

    # ------------------------------------------------------------------ reading

    def state(self, group: str) -> GroupState:
        with self._lock:
            return self._states[group]

    def states(self) -> list[GroupState]:
        with self._lock:
            return [self._states[g] for g in self.groups]

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    # ------------------------------------------------------------------ loading

    def reload(self, group: str, *, with_history: bool = True) -> GroupState:
        """Read the group from the store; tell the subscribers when anything differs."""
        old = self.state(group)
        try:
            record = self.store.load(group)
            lock = self.store.lock_info(group)
            control = self.store.read_control(group)
            history = tuple(self.store.history(group)) if with_history else old.history
            new = replace(old, record=record, lock=lock, control=control, history=history,
                          error="")
        except Exception as exc:  # an unreachable store is shown, not fatal
            new = replace(old, error=f"{type(exc).__name__}: {exc}")
        if _same(old, new):
            return old
        new = replace(new, version=old.version + 1)
        with self._lock:
            self._states[group] = new
        for fn in self._subscribers:
            try:
                fn(new)
            except Exception:
                log.exception("a board subscriber failed on %s", group)
        return new

    def reload_all(self) -> None:
        for g in self.groups:
            self.reload(g)

    # ------------------------------------------------------------------ watching

    def start(self) -> None:
        self.reload_all()
        self._thread = threading.Thread(target=self._watch, name="board", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        next_sweep = self.clock() + self.sweep_every
        while not self._stop.is_set():
            self.last_loop = time.time()
            changed = self.feed.wait(max(0.0, next_sweep - self.clock()))
            if self._stop.is_set():
                return
            if self.clock() >= next_sweep:
                changed = None
                next_sweep = self.clock() + self.sweep_every
            for g in (self.groups if changed is None else sorted(changed)):
                self.reload(g)

    def stop(self) -> None:
        self._stop.set()
        self.feed.close()
        if self._thread is not None:
            self._thread.join(timeout=15)


def _same(a: GroupState, b: GroupState) -> bool:
    return (a.record == b.record and a.lock == b.lock and a.control == b.control
            and a.error == b.error and len(a.history) == len(b.history)
            and a.history == b.history)
