"""Wakes blocked queries when the data they watch changes.

Writers may run on any thread (the HTTP loop, the timer thread, an in-process
caller); waiters are asyncio futures on the server's loop, so a wake-up
crosses threads with ``call_soon_threadsafe``. Waiters subscribe per topic
("kv", "svc:web", ...) so a change wakes only the queries it concerns. A
query subscribes *before* reading, so a change between its read and its wait
is never missed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable


class Subscription:
    def __init__(self, notifier: ChangeNotifier, topics: list[str], fut: asyncio.Future[None]):
        self._notifier = notifier
        self._topics = topics
        self._fut = fut

    async def wait(self, timeout: float) -> bool:
        """True when a subscribed topic changed, False when ``timeout`` passed first."""
        if self._fut.done():
            return True
        if timeout <= 0:
            return False
        self._notifier._count(blocked=1)
        try:
            await asyncio.wait_for(asyncio.shield(self._fut), timeout)
            return True
        except TimeoutError:
            self._notifier._count(timeouts=1)
            return False
        finally:
            self._notifier._count(blocked=-1)

    def cancel(self) -> None:
        self._notifier._forget(self._topics, self._fut)


class ChangeNotifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.closed = False
        self.blocked = 0  # queries waiting now (Consul's gauge consul.rpc.queries_blocking)
        self.timeouts = 0  # waits that ended because their time was up, not by a change

    def _count(self, blocked: int = 0, timeouts: int = 0) -> None:
        with self._lock:
            self.blocked += blocked
            self.timeouts += timeouts

    def close(self) -> None:
        """Release every blocked query (server shutdown); later waits return at once."""
        with self._lock:
            self.closed = True
            topics = list(self._waiters)
        self.notify(topics)

    def subscribe(self, topics: Iterable[str]) -> Subscription:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        topic_list = list(topics)
        with self._lock:
            for topic in topic_list:
                self._waiters.setdefault(topic, set()).add(fut)
        return Subscription(self, topic_list, fut)

    def notify(self, topics: Iterable[str]) -> None:
        woken: set[asyncio.Future[None]] = set()
        with self._lock:
            for topic in topics:
                woken |= self._waiters.pop(topic, set())
        for fut in woken:
            loop = fut.get_loop()
            if loop.is_closed():
                continue
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # the loop shut down between the check and the call
                pass

    def _forget(self, topics: list[str], fut: asyncio.Future[None]) -> None:
        with self._lock:
            for topic in topics:
                waiters = self._waiters.get(topic)
                if waiters is not None:
                    waiters.discard(fut)
                    if not waiters:
                        del self._waiters[topic]

    def waiter_count(self) -> int:
        with self._lock:
            return len(set().union(*self._waiters.values())) if self._waiters else 0


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
