"""Pure planning: policy + group + what the world holds -> named steps.

Nothing here talks to the world; ``rotate plan`` prints exactly what
``rotate GROUP --ami`` will then run, and the engine runs these steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotator.config import GateStep, GroupConfig, PauseStep, Policy, WeightStep
from rotator.durations import format_duration
from rotator.errors import Refused
from rotator.model import SLOTS, StepState, other_slot


@dataclass(frozen=True)
class WorldView:
    """What the planner needs to know about the group's present."""

    weights: dict[str, int]  # slot -> share of traffic now (0..100)
    slots_with_resources: list[str]


@dataclass(frozen=True)
class Roles:
    stable: str | None
    candidate: str


def choose_slots(world: WorldView) -> Roles:
    """The slot carrying all traffic is stable; the other one is rebuilt."""
    live = [s for s in SLOTS if world.weights.get(s, 0) > 0]
    if len(live) > 1:
        shares = ", ".join(f"{s} {world.weights[s]}%" for s in live)
        raise Refused(
            f"traffic is split between both slots ({shares}): finish or abort the "
            "rotation that split it before starting a new one"
        )
    if live:
        return Roles(stable=live[0], candidate=other_slot(live[0]))
    # Nothing serves yet (a group's first build): reuse a slot that already has
    # resources so a half-built copy is converged instead of orphaned.
    candidate = world.slots_with_resources[0] if world.slots_with_resources else "blue"
    return Roles(stable=None, candidate=candidate)


def _step(name: str, kind: str, compensation: str = "", **params) -> StepState:
    return StepState(name=name, kind=kind, params=params, compensation=compensation)


def plan_rotation(group: GroupConfig, policy: Policy, roles: Roles) -> list[StepState]:
    cand, stable = roles.candidate, roles.stable
    undo_build = f"destroy {cand}" if not policy.keep_failed_candidate else f"keep {cand}"
    steps = [
        _step(f"provision {cand}", "provision", undo_build, slot=cand),
        _step(f"deploy apps to {cand}", "deploy", undo_build, slot=cand),
        _step(f"verify {cand} health", "verify", "", slot=cand),
    ]
    gate_no = 0
    if stable is None:
        weights = [WeightStep(weight=100)]
        policy_steps = weights
    else:
        policy_steps = policy.steps
    for item in policy_steps:
        if isinstance(item, WeightStep):
            steps.append(_step(
                f"shift {item.weight}% to {cand}", "shift",
                f"weights back to {stable}" if stable else f"remove {cand} from traffic",
                weight=item.weight,
            ))
        elif isinstance(item, PauseStep):
            steps.append(_step(f"pause {format_duration(item.pause)}", "pause",
                               seconds=item.pause))
        elif isinstance(item, GateStep):
            gate_no += 1
            # the gate's settings are shown with the step; the step reads them from the policy
            steps.append(_step(f"gate {gate_no}", "gate", gate_no=gate_no,
                               gate=item.gate.model_dump(mode="json")))
        else:
            steps.append(_step("approval", "approve"))
    if stable is not None:
        if policy.retain_stable > 0:
            steps.append(_step(f"bake {format_duration(policy.retain_stable)}", "bake",
                               seconds=policy.retain_stable))
        steps.append(_step(f"retire {stable}: out of traffic", "retire-traffic", "", slot=stable))
        steps.append(_step(f"retire {stable}: wait until quiet", "retire-quiet", "", slot=stable))
        steps.append(_step(f"retire {stable}: destroy", "retire-destroy", "", slot=stable))
    return steps


def plan_rollback(stable: str | None, candidate: str, keep_candidate: bool) -> list[StepState]:
    steps = []
    if stable is not None:
        steps.append(_step(f"weights back to {stable}", "rollback-weights", slot=stable))
    steps.append(_step(f"take {candidate} out of traffic", "rollback-traffic", slot=candidate))
    steps.append(_step(f"wait until {candidate} is quiet", "rollback-quiet", slot=candidate))
    if keep_candidate:
        steps.append(_step(f"keep {candidate} for inspection", "rollback-keep", slot=candidate))
    else:
        steps.append(_step(f"destroy {candidate}", "rollback-destroy", slot=candidate))
    return steps


RETIRE_KINDS = {"retire-traffic", "retire-quiet", "retire-destroy"}
