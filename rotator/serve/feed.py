"""Telling when a record store changed, without asking it for everything every second.

A file store has no change notification: its feed compares a few ``stat`` results per
group (the current record, the control requests, the lock, the history folder), which
costs microseconds. A Consul store is watched with one blocking query on its prefix
(keys only): Consul answers when any key under it changes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

ALL = None  # "something changed; which groups is unknown"


class ChangeFeed(Protocol):
    def wait(self, timeout: float) -> set[str] | None:
        """Block up to ``timeout`` for a change; the groups that changed (empty: none,
        None: unknown which, so every group)."""

    def close(self) -> None: ...


class FileChangeFeed:
    WATCHED = ("current.json", "control.json", "lock", "history")

    def __init__(self, root: Path, groups: Iterable[str], *, interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic,
                 stop: threading.Event | None = None):
        self.root = Path(root)
        self.groups = list(groups)
        self.interval = interval
        self.clock = clock
        self._stop = stop or threading.Event()
        self._seen = {g: self._signature(g) for g in self.groups}

    def _signature(self, group: str) -> tuple:
        out = []
        for name in self.WATCHED:
            try:
                st = os.stat(self.root / group / name)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def wait(self, timeout: float) -> set[str] | None:
        deadline = self.clock() + timeout
        while True:
            changed = set()
            for g in self.groups:
                sig = self._signature(g)
                if sig != self._seen[g]:
                    self._seen[g] = sig
                    changed.add(g)
            left = deadline - self.clock()
            if changed or left <= 0 or self._stop.is_set():
                return changed
            self._stop.wait(min(self.interval, left))

    def close(self) -> None:
        self._stop.set()


class ConsulChangeFeed:
    def __init__(self, store, *, sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.sleep = sleep
        self._index: int | None = None
        self._closed = False

    def wait(self, timeout: float) -> set[str] | None:
        prefix = self.store.prefix + "/"
        client = self.store.client()
        try:
            if self._index is None:
                self._index, _ = client.kv.get(prefix, keys=True)
                return ALL
            # shorter than the client's own request timeout, or the query would time out
            wait = max(1, min(int(timeout), int(self.store.request_timeout) - 2))
            index, _ = client.kv.get(prefix, keys=True, index=self._index, wait=f"{wait}s")
        except Exception:  # Consul unreachable: try again later; the board says so
            self.sleep(min(timeout, 2.0))
            return set()
        if index == self._index:
            return set()
        self._index = index
        return ALL

    def close(self) -> None:
        self._closed = True


def change_feed(store, groups: Iterable[str]) -> ChangeFeed:
    from rotator.state.consul_store import ConsulRecordStore
    from rotator.state.file_store import FileRecordStore

    if isinstance(store, ConsulRecordStore):
        return ConsulChangeFeed(store)
    if isinstance(store, FileRecordStore):
        return FileChangeFeed(store.root, groups)
    raise TypeError(f"no change feed for {type(store).__name__}")
