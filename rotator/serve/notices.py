"""What is worth telling people about a rotation or a failover, read from its record.

Each notice has a key that names its event for good (the rotation's id, the event, the
step and its attempt), so that whoever sees the record, whenever, derives the same key:
the notifier claims that key in the record store before sending, and a notice is sent
once however many controllers watch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rotator.model import RotationStatus

PAIR_KINDS = ("failover", "failback")


@dataclass(frozen=True)
class Notice:
    group: str
    claim_group: str  # whose store folder holds the claim (a failover's source)
    key: str
    kind: str  # started, waiting, paused, failed, rolled-back, rollback-failed, done, failover, failback
    title: str
    body: str
    at: float
    current: bool = False  # a state that holds now (waiting, paused): sent however old
    level: str = "info"  # info, success, warning, failure


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")[:80]


def _link(dashboard: str | None, group: str) -> str:
    return f"\n{dashboard.rstrip('/')}/#group={group}" if dashboard else ""


def _what_failed(step: dict[str, Any]) -> str:
    reason = (step.get("reason") or "").lower()
    if "metric" in reason or "analysis" in reason:
        return "metric analysis"
    if "gate" in reason or step.get("kind") in ("verify", "gate"):
        return "health gate"
    return "step"


def rotation_notices(rec: dict[str, Any], dashboard: str | None = None) -> list[Notice]:
    group, rid = rec["group"], rec["id"]
    status = RotationStatus(rec["status"]) if rec.get("status") else None  # older names too
    link = _link(dashboard, group)
    move = f"{rec.get('stable') or '-'} -> {rec.get('candidate')}"
    env = f" [{rec['environment']}]" if rec.get("environment") else ""
    steps = rec.get("rollback_steps") or rec.get("steps") or []
    cursor = int(rec.get("cursor", 0))
    current = steps[cursor] if cursor < len(steps) else None
    out = [Notice(group, group, f"{rid}.started", "started",
                  f"{group}{env}: rotation started",
                  f"rotation {rid}: {move} from {rec.get('ami')} under policy "
                  f"{rec.get('policy')}{link}", rec.get("created_at", 0.0))]

    for step in rec.get("steps", []):
        if step.get("status") != "failed" or step.get("reason") == "aborted":
            continue
        what = _what_failed(step)
        after = ("rolling back" if rec.get("rollback_steps") or status == "rolled-back"
                 else "stopped for an operator")
        out.append(Notice(
            group, group, f"{rid}.failed.{_slug(step['name'])}.{step.get('attempts', 0)}",
            "failed", f"{group}{env}: {what} failed at '{step['name']}'",
            f"rotation {rid} ({move}): {step.get('reason')}; {after}{link}",
            step.get("finished_at") or rec.get("updated_at", 0.0), level="warning"))

    if status == "waiting" and current is not None and current.get("kind") == "approve":
        out.append(Notice(
            group, group, f"{rid}.waiting.{cursor}", "waiting",
            f"{group}{env}: waiting for approval at '{current['name']}'",
            f"rotation {rid} ({move}, weights {_weights(rec)}) waits for approval: run "
            f"`rotate promote {group}` to carry on, or `rotate abort {group}` to roll back"
            f"{link}", current.get("started_at") or rec.get("updated_at", 0.0), current=True))
    elif status == "paused" and current is not None:
        out.append(Notice(
            group, group, f"{rid}.paused.{cursor}.{current.get('attempts', 0)}", "paused",
            f"{group}{env}: rotation stopped for an operator",
            f"rotation {rid} ({move}): {rec.get('reason')}{link}",
            rec.get("updated_at", 0.0), current=True, level="warning"))
    elif status == RotationStatus.ROLLBACK_FAILED:
        where = current["name"] if current else "-"
        out.append(Notice(
            group, group, f"{rid}.rollback-failed.{cursor}.{(current or {}).get('attempts', 0)}",
            "rollback-failed", f"URGENT {group}{env}: the rollback could not finish",
            f"rotation {rid} ({move}) stopped at '{where}': {rec.get('reason')}; weights last "
            f"set {_weights(rec)}; a human must act, then `rotate resume {group}` finishes "
            f"the rollback{link}", rec.get("updated_at", 0.0), current=True, level="failure"))
    elif status == "rolled-back":
        out.append(Notice(
            group, group, f"{rid}.rolled-back", "rolled-back", f"{group}{env}: rolled back",
            f"rotation {rid} ({move}) rolled back: {rec.get('reason')}; "
            f"{rec.get('stable') or '-'} serves{_operators(rec)}{link}",
            rec.get("finished_at") or rec.get("updated_at", 0.0), level="warning"))
    elif status == "done":
        out.append(Notice(
            group, group, f"{rid}.done", "done", f"{group}{env}: rotation done",
            f"rotation {rid}: {group} now runs {rec.get('ami')} on {rec.get('candidate')}"
            f"{_operators(rec)}{link}",
            rec.get("finished_at") or rec.get("updated_at", 0.0), level="success"))
    return out


def pair_notices(event: dict[str, Any], dashboard: str | None = None) -> list[Notice]:
    """A failover or failback, once it is done (kept in both groups' history: one claim)."""
    if event.get("kind") not in PAIR_KINDS or event.get("status") != "done":
        return []
    source, target = event.get("from", "?"), event.get("to", "?")
    event_id = event.get("event_id") or event.get("id")
    forced = " (forced: the source's health was not checked)" if event.get("forced") else ""
    return [Notice(
        event.get("group", source), source, f"{event_id}.{event['kind']}", event["kind"],
        f"{source} -> {target}: {event['kind']} done",
        f"{event['kind']} {event_id}: all traffic of the pair moved from {source} to "
        f"{target}{forced}, by {event.get('by')} ({event.get('via', 'rotate')})"
        f"{_link(dashboard, target)}",
        event.get("finished_at") or event.get("created_at", 0.0), level="warning")]


def _weights(rec: dict[str, Any]) -> str:
    weights = rec.get("weights") or {}
    return " / ".join(f"{s} {w}%" for s, w in sorted(weights.items())) or "-"


def _operators(rec: dict[str, Any]) -> str:
    from rotator.status import operators

    who = operators(rec)
    return f"; {who}" if who else ""
