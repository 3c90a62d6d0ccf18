"""Short garbage collections for the world process.

The world holds a large, long-lived heap (moto's models, botocore's service models, the
emulators' state): well over a million objects. A full collection walks all of them and
took 200-260 ms, on whichever thread allocated last, usually the data plane's event
loop, so every request in flight waited that long. Objects that have survived a full
collection are moved to the permanent generation (``gc.freeze``), which collections
skip: the next full collection only walks what became long-lived since.

The cost: a reference cycle among frozen objects that becomes garbage later is never
collected (objects without cycles are still freed by reference counting).
"""

from __future__ import annotations

import gc
from typing import Any

_installed = False


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    # after a full collection every young generation is empty: only survivors are left
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def keep_collections_short() -> None:
    """Collect once, freeze what is left, and freeze the survivors of every later full
    collection. Call once the process has loaded what it keeps for its lifetime."""
    global _installed
    gc.collect()
    gc.freeze()
    if not _installed:
        gc.callbacks.append(_after_collection)
        _installed = True
