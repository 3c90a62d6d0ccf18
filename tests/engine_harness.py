"""Builds an engine over the fakes, and drives it through crashes like a user would."""

from __future__ import annotations

from pathlib import Path

from rotator.config import Policy, Project
from rotator.engine import Engine
from rotator.model import RotationRecord, RotationStatus
from rotator.state.control import operator_request
from tests.fakes import (
    Crash,
    FakeApps,
    FakeGuard,
    FakeHealth,
    FakeInfra,
    FakeTraffic,
    FakeWorld,
    MemoryStore,
)

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Project(ROOT)
GROUP = PROJECT.group("prd-cn")
APPS = [
    {**app, "id": f"{GROUP.marathon.root_group}/{app['id']}"} for _, app in PROJECT.apps(GROUP)
]


def policy(name: str, **changes) -> Policy:
    p = PROJECT.policy(name)
    return p.model_copy(update=changes) if changes else p


def engine(world: FakeWorld, store: MemoryStore, pol: Policy, *, interactive=False,
           events=None, metrics=None, metrics_delay: float = 0.0) -> Engine:
    return Engine(
        group=GROUP, policy=pol, infra=FakeInfra(world), apps=FakeApps(world),
        health=FakeHealth(world), traffic=FakeTraffic(world), store=store, guard=FakeGuard(),
        app_definitions=APPS, clock=world.clock, sleep=world.clock.sleep,
        on_event=events.append if events is not None else None, interactive=interactive,
        metrics=metrics, metrics_delay=metrics_delay,
    )


def run_to_end(world: FakeWorld, store: MemoryStore, pol: Policy, ami: str = "ami-0123abcd",
               max_resumes: int = 20) -> RotationRecord:
    """Start a rotation; after every crash or stop, resume it (promoting at approvals)."""
    def after_crash() -> RotationRecord | None:
        store.died()
        data = store.load(GROUP.name)
        return RotationRecord.from_dict(data) if data else None

    try:
        record = engine(world, store, pol).start(ami)
    except Crash:
        record = after_crash()
        if record is None:  # died before the first write: nothing happened yet
            return run_to_end(world, store, pol, ami, max_resumes)
    for _ in range(max_resumes):
        if record.status.terminal:
            return record
        if record.status is RotationStatus.WAITING:
            promote(store, record)
        try:
            record = engine(world, store, pol).resume()
        except Crash:
            record = after_crash()
    raise AssertionError(f"rotation did not end: {store.load(GROUP.name)}")


def promote(store: MemoryStore, record: RotationRecord | dict) -> None:
    """What `rotate promote` sends: approve the approval step the rotation waits at."""
    if isinstance(record, dict):
        record = RotationRecord.from_dict(record)
    store.write_control(GROUP.name, record.id,
                        operator_request("promote", step=record.current_step.name))


def abort(store: MemoryStore, record: RotationRecord | dict, reason: str) -> None:
    rid = record["id"] if isinstance(record, dict) else record.id
    store.write_control(GROUP.name, rid, operator_request("abort", reason=reason))
