"""Route53 change ids handed out by the emulator, and when each is INSYNC.

Without moto so that importing the emulator stays cheap (see route53_changes for the fix).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable


class ChangeBook:
    """The changes an emulator handed out: id -> when they are INSYNC."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.delay = 0.0
        self._insync_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def set_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the propagation delay cannot be negative")
        self.delay = float(seconds)

    def submit(self) -> str:
        change_id = "C" + secrets.token_hex(10).upper()
        with self._lock:
            self._insync_at[change_id] = self.clock() + self.delay
        return change_id

    def status(self, change_id: str) -> str | None:
        with self._lock:
            at = self._insync_at.get(change_id.split("/")[-1])
        if at is None:
            return None
        return "INSYNC" if self.clock() >= at else "PENDING"
