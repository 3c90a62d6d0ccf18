"""The rotation record: everything a rotation knows, stored before each side effect."""

from __future__ import annotations

import enum
import secrets
import time
from typing import Any

from pydantic import BaseModel, Field

SLOTS = ("blue", "green")


def other_slot(slot: str) -> str:
    return "green" if slot == "blue" else "blue"


class RotationStatus(enum.StrEnum):
    RUNNING = "running"
    WAITING = "waiting"  # at an approval step, for `rotate promote`
    PAUSED = "paused"  # a step failed and the policy says: stop for an operator
    ROLLING_BACK = "rolling-back"
    DONE = "done"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"  # the rollback could not finish: an operator must look

    @classmethod
    def _missing_(cls, value: object) -> RotationStatus | None:
        # records written before the rename say "failed"
        return cls.ROLLBACK_FAILED if value == "failed" else None

    @property
    def terminal(self) -> bool:
        return self in (RotationStatus.DONE, RotationStatus.ROLLED_BACK)

    @property
    def stopped(self) -> bool:
        """Not progressing on its own: needs resume, promote or abort."""
        return self in (RotationStatus.WAITING, RotationStatus.PAUSED,
                        RotationStatus.ROLLBACK_FAILED)


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class StepState(BaseModel):
    name: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: StepStatus = StepStatus.PENDING
    started_at: float | None = None
    deadline: float | None = None
    finished_at: float | None = None
    acting: bool = False  # the side effect was started (written before it)
    acted: bool = False  # the side effect completed (written after it)
    attempts: int = 0
    reason: str = ""
    compensation: str = ""  # what undoes it, for `rotate plan`


class RotationRecord(BaseModel):
    id: str
    group: str
    ami: str
    policy: str
    policy_hash: str
    stable: str | None
    candidate: str
    stable_ami: str | None = None
    kind: str = "rotation"
    environment: str = ""  # where it ran: production, sandbox, or an environment's name
    status: RotationStatus = RotationStatus.RUNNING
    reason: str = ""
    created_at: float
    updated_at: float
    finished_at: float | None = None
    holder: str = ""
    steps: list[StepState]
    rollback_steps: list[StepState] = Field(default_factory=list)
    cursor: int = 0
    weights: dict[str, int] = Field(default_factory=dict)  # what the rotation last set
    slots: dict[str, dict[str, Any]] = Field(default_factory=dict)  # slot -> SlotOutputs
    deployment_ids: list[str] = Field(default_factory=list)
    abort_requested: str | None = None
    # every operator request acted on (rotator.state.control), with what became of it
    operator_actions: list[dict[str, Any]] = Field(default_factory=list)
    # canary analysis by metrics: {"failures", "evaluated_until", "last", "history"}
    analysis: dict[str, Any] = Field(default_factory=dict)
    # slot -> until when a client may hold a cached DNS answer leading to it: the change that
    # took its weight to 0 went INSYNC, plus the largest TTL its records had or have
    cached_until: dict[str, float] = Field(default_factory=dict)
    # since when the rotation waits at an approval with nobody watching it (a run that exited)
    unwatched_since: float | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    writes: int = 0

    @staticmethod
    def new_id(group: str, now: float) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        return f"{group}-{stamp}-{secrets.token_hex(2)}"

    @property
    def rolling_back(self) -> bool:
        return bool(self.rollback_steps)

    @property
    def active_steps(self) -> list[StepState]:
        return self.rollback_steps if self.rollback_steps else self.steps

    @property
    def current_step(self) -> StepState | None:
        steps = self.active_steps
        return steps[self.cursor] if self.cursor < len(steps) else None

    def note(self, now: float, message: str, step: str | None = None) -> None:
        self.events.append({"t": round(now, 3), "step": step, "msg": message})
        del self.events[:-200]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RotationRecord:
        return cls.model_validate(data)
