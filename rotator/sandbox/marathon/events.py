"""Fan-out of Marathon events to server-sent-event subscribers."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Subscription:
    loop: asyncio.AbstractEventLoop
    types: frozenset[str]
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    def wants(self, event_type: str) -> bool:
        return not self.types or event_type in self.types


class EventHub:
    """Publishing is thread-safe: events are handed to each subscriber's own loop."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.published = 0

    def subscribe(self, types: list[str]) -> Subscription:
        sub = Subscription(asyncio.get_running_loop(), frozenset(types))
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        self.published += 1
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if not sub.wants(event["eventType"]):
                continue
            try:
                sub.loop.call_soon_threadsafe(sub.queue.put_nowait, event)
            except RuntimeError:  # its loop is closed: the stream is gone
                self.unsubscribe(sub)
