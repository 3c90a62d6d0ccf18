"""Failover and failback events of a master/slave pair, as kept in each group's history."""

from __future__ import annotations

from typing import Any

PAIR_ACTIONS = ("failover", "failback")


def unfinished_failover(store: Any, group: str) -> dict[str, Any] | None:
    """The group's newest failover or failback event, when it did not finish."""
    events = [r for r in store.history(group) if r.get("kind") in PAIR_ACTIONS]
    if events and events[-1].get("status") != "done":
        return events[-1]
    return None
