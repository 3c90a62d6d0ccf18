"""The agent's log, as ``/v1/agent/monitor`` streams it.

Lines are hclog's: ``2024-05-01T10:00:00.123Z [INFO]  agent: Synced service: service=web``
(or one JSON object per line with ``?logjson``). Levels and their validation follow
hashicorp/consul ``logging.ValidateLogLevel`` (TRACE, DEBUG, INFO, WARN, ERR, ERROR).

Writers call ``emit`` from any thread; each monitor request owns an asyncio queue on the
server's loop, so delivery crosses threads with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import threading
from dataclasses import dataclass

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
ALLOWED = ("TRACE", "DEBUG", "INFO", "WARN", "ERR", "ERROR")
_HISTORY = 512  # the monitor's buffer size in Consul


def valid_level(level: str) -> bool:
    return level.upper() in ALLOWED


def _rank(level: str) -> int:
    level = level.upper()
    return LEVELS.index("ERROR" if level == "ERR" else level)


@dataclass
class LogLine:
    level: str
    module: str
    message: str
    fields: tuple[tuple[str, str], ...]
    at: _dt.datetime

    def text(self) -> str:
        stamp = self.at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.at.microsecond // 1000:03d}Z"
        tag = f"[{self.level}]".ljust(7)
        extra = "".join(f" {k}={v}" for k, v in self.fields)
        return f"{stamp} {tag} {self.module}: {self.message}:{extra}\n" if extra else \
            f"{stamp} {tag} {self.module}: {self.message}\n"

    def json(self) -> str:
        stamp = self.at.isoformat(timespec="microseconds").replace("+00:00", "Z")
        body = {"@level": self.level.lower(), "@message": self.message, "@module": self.module,
                "@timestamp": stamp, **dict(self.fields)}
        return json.dumps(body) + "\n"


class _Monitor:
    def __init__(self, level: str, as_json: bool):
        self.min_rank = _rank(level)
        self.as_json = as_json
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    def offer(self, line: LogLine) -> None:
        if _rank(line.level) >= self.min_rank:
            text = line.json() if self.as_json else line.text()
            try:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, text)
            except RuntimeError:  # the loop is gone: the request ended with it
                pass


class AgentLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._monitors: set[_Monitor] = set()
        self._changed = threading.Condition(self._lock)
        self.closed = False

    def emit(self, level: str, module: str, message: str, **fields: object) -> None:
        line = LogLine(level, module, message, tuple((k, str(v)) for k, v in fields.items()),
                       _dt.datetime.now(_dt.UTC))
        with self._lock:
            monitors = list(self._monitors)
        for monitor in monitors:
            monitor.offer(line)

    def attach(self, level: str, as_json: bool) -> _Monitor:
        monitor = _Monitor(level, as_json)
        with self._lock:
            self._monitors.add(monitor)
            if self.closed:
                monitor.queue.put_nowait(None)
            self._changed.notify_all()
        return monitor

    def detach(self, monitor: _Monitor) -> None:
        with self._lock:
            self._monitors.discard(monitor)
            self._changed.notify_all()

    def wait_for_monitors(self, count: int, timeout: float) -> bool:
        """True once ``count`` monitor streams are attached (for whoever drives the agent)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._monitors) >= count, timeout)

    def close(self) -> None:
        """End every stream (the agent is shutting down)."""
        with self._lock:
            self.closed = True
            monitors = list(self._monitors)
        for monitor in monitors:
            try:
                monitor.loop.call_soon_threadsafe(monitor.queue.put_nowait, None)
            except RuntimeError:
                pass
