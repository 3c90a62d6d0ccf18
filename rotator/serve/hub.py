"""Pushes group changes to every open page (Server-Sent Events), from any thread."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

KEEPALIVE = 15.0  # seconds between comments that keep proxies from closing a quiet stream


def sse(event: str, data: Any) -> str:
    body = json.dumps(data, default=str, separators=(",", ":"))
    return f"event: {event}\ndata: {body}\n\n"


class EventHub:
    def __init__(self, queue_size: int = 200):
        self.queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[asyncio.Queue[str | None]] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, event: str, data: Any) -> None:
        """Thread-safe: hand one message to every stream."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._clients:
            return
        message = sse(event, data)
        try:
            loop.call_soon_threadsafe(self._fan_out, message)
        except RuntimeError:  # the loop is closing
            pass

    def _fan_out(self, message: str | None) -> None:
        for queue in list(self._clients):
            if queue.full():  # a stalled page loses its oldest news, not the server's memory
                queue.get_nowait()
            queue.put_nowait(message)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._fan_out, None)
            except RuntimeError:
                pass

    async def stream(self, first: Callable[[], list[str]],
                     disconnected: Callable[[], Any]) -> AsyncIterator[str]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(self.queue_size)
        self._clients.add(queue)
        try:
            yield "retry: 2000\n\n"
            for message in first():
                yield message
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    if await disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if message is None:
                    return
                yield message
        finally:
            self._clients.discard(queue)
