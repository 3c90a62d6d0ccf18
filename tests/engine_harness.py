"""Builds an engine over the fakes, and drives it through crashes like a user would."""

from __future__ import annotations

from rotator.config import Policy, Project
from rotator.engine import Engine
from rotator.errors import RotatorError
from rotator.model import RotationRecord, RotationStatus
from rotator.state.control import operator_request
from rotator.traffic import build_group_router
from tests.fakes import (
    GROUP,
    ROOT,
    Crash,
    FakeApps,
    FakeHealth,
    FakeInfra,
    FakeWorld,
    MemoryStore,
)

PROJECT = Project(ROOT)
APPS = [
    {**app, "id": f"{GROUP.marathon.root_group}/{app['id']}"} for _, app in PROJECT.apps(GROUP)
]


def policy(name: str, **changes) -> Policy:
    p = PROJECT.policy(name)
    return p.model_copy(update=changes) if changes else p


def router(world: FakeWorld):
    """The real traffic router and guard, over the world's fake AWS."""
    return build_group_router(
        GROUP.name, world.aws.records, world.aws.edge, route53=world.aws.route53,
        elb=world.aws.elb, elbv2=world.aws.elbv2, services_passing=world.services_passing,
        clock=world.clock, sleep=world.clock.sleep, change_timeout=120.0, healthy_timeout=120.0,
        poll_interval=1.0)


class ReportingStore:
    """A real record store (a file or Consul one) whose rotation records the world also
    sees once written: ``tests.promises`` judges each change by the record written before it."""

    def __init__(self, store, world: FakeWorld):
        self.store, self.world = store, world

    def save(self, record) -> None:
        self.store.save(record)
        if record.get("kind", "rotation") == "rotation":
            self.world.saved(record)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def engine(world: FakeWorld, store, pol: Policy, *, interactive=False,
           events=None, metrics=None, metrics_delay: float = 0.0, sleep=None,
           on_event=None) -> Engine:
    traffic = router(world)
    if getattr(store, "world", None) is not world:
        store = ReportingStore(store, world)
    return Engine(
        group=GROUP, policy=pol, infra=FakeInfra(world), apps=FakeApps(world),
        health=FakeHealth(world), traffic=traffic, store=store, guard=traffic.guard,
        app_definitions=APPS, clock=world.clock, sleep=sleep or world.clock.sleep,
        on_event=on_event or (events.append if events is not None else None),
        interactive=interactive, metrics=metrics, metrics_delay=metrics_delay,
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
    except RotatorError:
        if store.load(GROUP.name) is not None:
            raise
        # refused before its first write (e.g. planning could not read the world): nothing
        # changed, and the operator runs it again
        store.died()
        return run_to_end(world, store, pol, ami, max_resumes - 1)
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
