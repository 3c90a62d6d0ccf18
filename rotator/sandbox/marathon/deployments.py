"""Deployment plans: which actions, in which steps, a change of apps needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .definitions import scale_only

Action = tuple[str, str]  # (StopApplication|StartApplication|ScaleApplication|RestartApplication, app id)


def build_steps(current: dict[str, dict[str, Any]], target: dict[str, dict[str, Any]],
                restarts: set[str] | frozenset[str] = frozenset()) -> list[list[Action]]:
    """Marathon's plan shape: stops, then starts (0 instances), then scale/restart
    steps ordered by dependencies; empty steps dropped."""
    stops = sorted(set(current) - set(target))
    starts = sorted(set(target) - set(current))
    moves: dict[str, str] = {a: "ScaleApplication" for a in starts}
    for app_id in sorted(set(target) & set(current)):
        if app_id in restarts:
            moves[app_id] = "RestartApplication"
        elif target[app_id] is not current[app_id] and target[app_id] != current[app_id]:
            same = scale_only(target[app_id], current[app_id])
            moves[app_id] = "ScaleApplication" if same else "RestartApplication"

    depth: dict[str, int] = {}

    def level(app_id: str, seen: frozenset[str]) -> int:
        if app_id in depth:
            return depth[app_id]
        deps = [d for d in target[app_id].get("dependencies", []) if d in target and d not in seen]
        depth[app_id] = 1 + max((level(d, seen | {app_id}) for d in deps), default=-1)
        return depth[app_id]

    by_level: dict[int, list[Action]] = {}
    for app_id, kind in moves.items():
        by_level.setdefault(level(app_id, frozenset()), []).append((kind, app_id))
    steps = [[("StopApplication", a) for a in stops], [("StartApplication", a) for a in starts]]
    steps += [sorted(by_level[k], key=lambda a: a[1]) for k in sorted(by_level)]
    return [s for s in steps if s]


@dataclass
class Deployment:
    id: str
    version: str
    steps: list[list[Action]]
    original: dict[str, dict[str, Any] | None]  # affected app -> spec before (None: absent)
    target: dict[str, dict[str, Any] | None]
    current: int = 0  # index of the running step
    stopped_reported: set[str] = field(default_factory=set)

    @property
    def affected(self) -> list[str]:
        return sorted(self.original)

    @staticmethod
    def _step_json(step: list[Action]) -> dict[str, Any]:
        return {"actions": [{"action": k, "app": a} for k, a in step]}

    def to_json(self) -> dict[str, Any]:
        running = self.steps[self.current] if self.current < len(self.steps) else []
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": self.affected,
            "affectedPods": [],
            "steps": [self._step_json(s) for s in self.steps],
            "currentActions": [{"action": k, "app": a, "readinessCheckResults": []}
                               for k, a in running],
            "currentStep": min(self.current + 1, len(self.steps)),
            "totalSteps": len(self.steps),
        }

    def plan_json(self) -> dict[str, Any]:
        """The full plan, as deployment_* events carry it."""

        def root(apps: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
            return {"id": "/", "apps": [a for a in apps.values() if a], "groups": [],
                    "pods": [], "dependencies": [], "version": self.version}

        return {"id": self.id, "version": self.version, "original": root(self.original),
                "target": root(self.target), "steps": [self._step_json(s) for s in self.steps]}

    def current_step_json(self) -> dict[str, Any]:
        return self._step_json(self.steps[self.current] if self.current < len(self.steps) else [])
