"""Promote and abort from the dashboard: the very requests `rotate promote/abort` send.

The request goes into the group's control channel, where the engine that runs the rotation
(a `rotate` process, or a controller) acts on it before its next step. When nobody runs
it, a controller takes the rotation over and acts on it; nothing runs in the web request.
"""

from __future__ import annotations

from typing import Any

from rotator.errors import InputError
from rotator.model import RotationRecord, RotationStatus
from rotator.session import waiting_approval
from rotator.state.control import operator_request


def submit(store, group: str, action: str, *, by: str, via: str = "dashboard",
           reason: str = "") -> dict[str, Any]:
    """Send ``action`` (promote or abort) for the group's unfinished rotation; InputError,
    with the CLI's own words, when there is nothing to promote or abort."""
    data = store.load(group)
    if data is None or RotationStatus(data["status"]).terminal:
        raise InputError(f"{group} has no unfinished rotation")
    if action == "promote":
        step = waiting_approval(RotationRecord.from_dict(data))
        request = operator_request("promote", step=step, via=via, by=by)
    elif action == "abort":
        request = operator_request("abort", reason=reason or "requested by operator", via=via,
                                   by=by)
    else:
        raise InputError(f"unknown action {action!r}: promote or abort")
    store.write_control(group, data["id"], request)
    return {"group": group, "rotation": data["id"], "action": action, "by": by, "via": via,
            "step": request.get("step")}
