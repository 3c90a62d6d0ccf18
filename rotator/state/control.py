"""Operator requests (abort, promote) kept beside a group's rotation record."""

from __future__ import annotations

from typing import Any


def with_request(control: dict[str, Any], rotation_id: str, *, abort: str | None,
                 promote: bool) -> dict[str, Any]:
    """The control document after one more request; requests of an older rotation are dropped."""
    if control.get("rotation_id") != rotation_id:
        control = {"rotation_id": rotation_id, "abort": None, "promotions": 0}
    else:
        control = dict(control)
    if abort:
        control["abort"] = abort
    if promote:
        control["promotions"] = int(control.get("promotions", 0)) + 1
    return control
