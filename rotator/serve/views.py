"""The JSON the API answers and the page shows, built from the board and the live views.

Records are read defensively (``.get``): fields a newer engine adds (metric analysis,
quiet-window waits) are passed on as they are, under ``analysis`` and ``extra``.
"""

from __future__ import annotations

from typing import Any

from rotator.serve.board import GroupState
from rotator.serve.live import LiveView
from rotator.status import operators

# what the views below show by name; anything else a record holds goes under "extra"
KNOWN_FIELDS = {
    "id", "group", "ami", "policy", "policy_hash", "stable", "candidate", "stable_ami", "kind",
    "environment", "status", "reason", "created_at", "updated_at", "finished_at", "holder",
    "steps", "rollback_steps", "cursor", "weights", "slots", "deployment_ids",
    "abort_requested", "operator_actions", "events", "writes", "analysis",
}  # (cached_until, unwatched_since... are shown under "extra")
STEP_FIELDS = ("name", "kind", "status", "started_at", "finished_at", "deadline", "reason",
               "attempts")


def _step(step: dict[str, Any]) -> dict[str, Any]:
    out = {k: step.get(k) for k in STEP_FIELDS}
    params = step.get("params") or {}
    if step.get("kind") == "gate" and "gate" in params:
        out["gate"] = params["gate"]
    for key in ("weight", "seconds", "slot", "approved", "insync_at", "drain_until"):
        if key in params:
            out[key] = params[key]
    for key, value in params.items():  # a newer engine's verdicts kept with the step
        if key in ("analysis", "verdicts", "quiet"):
            out[key] = value
    return out


def _verdict(step: dict[str, Any]) -> str:
    status = step.get("status")
    if status == "done":
        return "passed"
    if status == "failed":
        return "aborted" if step.get("reason") == "aborted" else "failed"
    return "judging" if status == "running" else "pending"


def gate_verdicts(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Each health gate of the rotation (verify and gate steps) and what it said."""
    return [{"step": s.get("name"), "kind": s.get("kind"), "verdict": _verdict(s),
             "reason": s.get("reason", "")}
            for s in rec.get("steps", []) if s.get("kind") in ("verify", "gate")]


def rotation_view(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if not rec:
        return None
    steps = rec.get("rollback_steps") or rec.get("steps") or []
    cursor = int(rec.get("cursor", 0))
    current = steps[cursor] if cursor < len(steps) and rec.get("status") not in (
        "done", "rolled-back") else None
    return {
        "id": rec.get("id"), "kind": rec.get("kind", "rotation"), "status": rec.get("status"),
        "reason": rec.get("reason", ""), "ami": rec.get("ami"), "policy": rec.get("policy"),
        "stable": rec.get("stable"), "candidate": rec.get("candidate"),
        "stable_ami": rec.get("stable_ami"), "environment": rec.get("environment", ""),
        "weights": rec.get("weights", {}), "created_at": rec.get("created_at"),
        "updated_at": rec.get("updated_at"), "finished_at": rec.get("finished_at"),
        "holder": rec.get("holder", ""), "rolling_back": bool(rec.get("rollback_steps")),
        "current_step": current.get("name") if current else None,
        "waiting_approval": bool(rec.get("status") == "waiting" and current
                                 and current.get("kind") == "approve"),
        "steps": [_step(s) for s in rec.get("steps", [])],
        "rollback_steps": [_step(s) for s in rec.get("rollback_steps", [])],
        "gates": gate_verdicts(rec),
        "analysis": rec.get("analysis"),
        "operator_actions": rec.get("operator_actions", []),
        "events": rec.get("events", [])[-40:],
        "extra": {k: v for k, v in rec.items() if k not in KNOWN_FIELDS},
    }


def _live_slot(data: dict[str, Any], rec: dict[str, Any] | None) -> str | None:
    """The slot carrying most of the group's weight now (the stable one mid-canary)."""
    totals: dict[str, int] = {}
    for weights in [*data.get("records", {}).values(),
                    (data.get("edge") or {}).get("weights", {})]:
        for slot, w in weights.items():
            totals[slot] = totals.get(slot, 0) + int(w or 0)
    if totals and max(totals.values()) > 0:
        return max(sorted(totals), key=lambda s: totals[s])
    weights = (rec or {}).get("weights") or {}
    if weights and max(weights.values()) > 0:
        return max(sorted(weights), key=lambda s: weights[s])
    return None


def _last_verdict(analysis: Any) -> str | None:
    """The canary analysis' latest verdict, when the record has one."""
    last = analysis.get("last") if isinstance(analysis, dict) else None
    return last.get("verdict") if isinstance(last, dict) else None


def group_summary(state: GroupState, live: LiveView,
                  controller: dict[str, Any] | None = None) -> dict[str, Any]:
    data = live.data or {}
    rec = state.record
    live_slot = _live_slot(data, rec)
    slots = data.get("slots", {})
    ami = (slots.get(live_slot) or {}).get("ami") if live_slot else None
    if ami is None and rec:
        ami = rec.get("ami") if live_slot == rec.get("candidate") else rec.get("stable_ami")
    edge = data.get("edge") or {}
    apps = {slot: entry.get("apps", {}) for slot, entry in slots.items()}
    apps_ok = {slot: (sum(1 for a in v.values() if a.get("ok")), len(v))
               for slot, v in apps.items()}
    rot = rotation_view(rec) if rec and rec.get("kind", "rotation") == "rotation" else None
    return {
        "name": state.name,
        "environment": data.get("environment") or (rec or {}).get("environment", ""),
        "live_slot": live_slot,
        "live_slots": data.get("live_slots", []),
        "ami": ami,
        "weights": {"dns": data.get("records", {}), "edge": edge.get("weights", {}),
                    "rotation": (rec or {}).get("weights", {})},
        "edge_load_balancer": edge.get("load_balancer"),
        "apps_healthy": {slot: {"healthy": ok, "apps": n} for slot, (ok, n) in apps_ok.items()},
        "rotation": None if rot is None else {
            **{k: rot[k] for k in ("id", "status", "reason", "ami", "policy", "stable",
                                   "candidate", "current_step", "waiting_approval", "weights",
                                   "updated_at", "rolling_back")},
            "metrics": _last_verdict(rot.get("analysis"))},
        "lock": None if state.lock is None else {
            "holder": state.lock.holder, "host": state.lock.host, "pid": state.lock.pid,
            "since": state.lock.started_at, "rotation_id": state.lock.rotation_id},
        "controller": controller,
        "live_read_at": live.read_at,
        "errors": [e for e in (state.error, live.error, data.get("traffic_error", ""),
                               *[s.get("apps_error", "") for s in slots.values()]) if e],
    }


def group_detail(state: GroupState, live: LiveView,
                 controller: dict[str, Any] | None = None) -> dict[str, Any]:
    data = live.data or {}
    edge = data.get("edge") or {}
    out = group_summary(state, live, controller)
    out.update({
        "records": data.get("records", {}),
        "targets": edge.get("targets", {}),
        "apps": {slot: entry.get("apps", {}) for slot, entry in data.get("slots", {}).items()},
        "slots": {slot: {"ami": entry.get("ami")} for slot, entry in data.get("slots", {}).items()},
        "rotation": rotation_view(state.record) if state.record else None,
        "pending_requests": state.pending_requests(),
        "history": history_view(state.history, limit=10),
    })
    return out


def history_entry(r: dict[str, Any]) -> dict[str, Any]:
    created = r.get("created_at") or 0
    end = r.get("finished_at") or r.get("updated_at") or created
    return {
        "id": r.get("event_id") or r.get("id"), "kind": r.get("kind", "rotation"),
        "status": r.get("status"), "ami": r.get("ami"), "policy": r.get("policy"),
        "from": r.get("from", r.get("stable")), "to": r.get("to", r.get("candidate")),
        "created_at": created, "finished_at": r.get("finished_at"),
        "duration": round(end - created, 3) if created else None,
        "reason": r.get("reason", ""), "operators": operators(r),
        "operator_actions": r.get("operator_actions", []),
        "by": r.get("by"), "via": r.get("via"),
    }


def history_view(history: tuple[dict[str, Any], ...] | list[dict[str, Any]],
                 limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first."""
    items = [history_entry(r) for r in reversed(list(history))]
    return items[:limit] if limit else items
