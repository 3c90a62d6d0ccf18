"""Operator requests (abort, promote) kept beside a group's rotation record.

The control document of a group is ``{"rotation_id": ..., "requests": [request, ...]}``,
one entry per request, in the order they arrived; the engine acts on each once and
copies it, with what became of it, into the record (``operator_actions``). A request
names who asked, from where and when; a promotion names the approval step it approves,
so it can never pass a later approval in advance.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from rotator.identity import holder


def operator_request(action: Literal["abort", "promote", "override-quiet"], *,
                     step: str | None = None,
                     reason: str = "", via: str = "rotate", at: float | None = None,
                     by: str | None = None) -> dict[str, Any]:
    return {"action": action, "step": step, "reason": reason, "by": by or holder(),
            "via": via, "at": time.time() if at is None else at}


def with_request(control: dict[str, Any], rotation_id: str,
                 request: dict[str, Any]) -> dict[str, Any]:
    """The control document after one more request; requests of an older rotation are dropped."""
    if control.get("rotation_id") != rotation_id:
        control = {"rotation_id": rotation_id, "requests": []}
    return {**control, "requests": [*control.get("requests", []), request]}
