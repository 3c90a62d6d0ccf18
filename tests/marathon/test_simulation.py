"""The emulator's simulation with an injected clock: timing, rolling restarts, listener hooks."""

from __future__ import annotations

import pytest

from rotator.sandbox.marathon import Agent, MarathonEmulator, TaskInfo
from rotator.sandbox.marathon.model import ApiError


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.started: list[TaskInfo] = []
        self.health: list[tuple[str, bool]] = []
        self.killed: list[TaskInfo] = []

    def task_started(self, task: TaskInfo) -> None:
        self.started.append(task)

    def task_health_changed(self, task: TaskInfo, alive: bool) -> None:
        self.health.append((task.task_id, alive))

    def task_killed(self, task: TaskInfo) -> None:
        self.killed.append(task)


AGENTS = [Agent(f"i-{n}", f"10.0.1.{n}") for n in range(1, 5)]


def world(**kw):
    clock, rec = Clock(), Recorder()
    em = MarathonEmulator(AGENTS, step_seconds=1.0, clock=clock, listener=rec, **kw)
    return em, clock, rec


def app(**extra) -> dict:
    return {"id": "/prod/web", "cmd": "serve", "instances": 4, "labels": {"svc": "web"},
            "healthChecks": [{"protocol": "HTTP", "path": "/health"}], **extra}


def test_new_app_with_checks_takes_two_steps() -> None:
    em, clock, rec = world()
    em.create_app(app())
    clock.now += 1.999
    em.advance()
    assert len(em.list_deployments()) == 1 and len(rec.started) == 4 and rec.health == []
    clock.now += 0.001
    assert em.list_deployments() == []
    assert [alive for _, alive in rec.health] == [True] * 4
    first = rec.started[0]
    assert first.app_id == "/prod/web" and first.labels == {"svc": "web"}
    assert first.host.startswith("10.0.1.") and first.ports == (31000,)
    assert first.health_checks[0]["path"] == "/health"
    assert len({t.host for t in rec.started}) == 4  # spread over the agents


def test_rolling_restart_respects_upgrade_strategy() -> None:
    em, clock, rec = world()
    strategy = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25}
    em.create_app(app(upgradeStrategy=strategy))
    clock.now += 2
    assert em.list_deployments() == []
    em.put_app("/prod/web", {"cmd": "serve --v2"})
    seen_max, seen_min_ready = 0, 4
    for _ in range(40):
        clock.now += 0.25
        em.advance()
        tasks = em.app_tasks("/prod/web")
        live = [t for t in tasks if t["state"] != "TASK_KILLING"]
        ready = [t for t in live if t["healthCheckResults"] and t["healthCheckResults"][0]["alive"]]
        seen_max = max(seen_max, len(live))
        seen_min_ready = min(seen_min_ready, len(ready))
        if not em.list_deployments():
            break
    assert em.list_deployments() == []
    assert seen_max <= 5  # floor(4 * 1.25)
    assert seen_min_ready >= 2  # ceil(4 * 0.5)
    assert len(rec.started) == 8 and len(rec.killed) == 4
    assert {t["version"] for t in em.app_tasks("/prod/web")} == {em.get_app("/prod/web")["version"]}


def test_strategy_one_zero_goes_one_over_capacity() -> None:
    em, clock, _ = world()
    em.create_app(app(instances=2, upgradeStrategy={"minimumHealthCapacity": 1,
                                                    "maximumOverCapacity": 0}))
    clock.now += 2
    em.restart_app("/prod/web")
    peak = 0
    for _ in range(40):
        clock.now += 0.5
        live = [t for t in em.app_tasks("/prod/web") if t["state"] != "TASK_KILLING"]
        peak = max(peak, len(live))
        if not em.list_deployments():
            break
    assert em.list_deployments() == [] and peak == 3


def test_unhealthy_app_never_finishes_until_cancelled() -> None:
    em, clock, rec = world()
    em.set_health("/prod/web", "unhealthy")
    _, dep = em.create_app(app(instances=2))
    clock.now += 60
    em.advance()
    assert [d["id"] for d in em.list_deployments()] == [dep.id]
    assert em.get_app("/prod/web")["tasksUnhealthy"] == 2
    revert = em.cancel_deployment(dep.id)
    assert revert is not None
    with pytest.raises(ApiError):
        em.get_app("/prod/web")
    clock.now += 1
    em.advance()
    assert em.list_tasks() == [] and len(rec.killed) == 2


def test_forced_change_cancels_the_locked_deployment() -> None:
    em, clock, _ = world()
    _, first = em.create_app(app())
    with pytest.raises(ApiError) as e:
        em.put_app("/prod/web", {"instances": 1})
    assert e.value.status == 409 and e.value.body["deployments"] == [{"id": first.id}]
    _, second = em.put_app("/prod/web", {"instances": 1}, force=True)
    assert [d["id"] for d in em.list_deployments()] == [second.id]


def test_dependencies_order_the_steps() -> None:
    em, _, _ = world()
    em.put_group("/prod", {"apps": [
        {"id": "edge", "cmd": "e", "dependencies": ["api"]},
        {"id": "api", "cmd": "a", "dependencies": ["db"]},
        {"id": "db", "cmd": "d"},
    ]})
    (dep,) = em.list_deployments()
    order = [s["actions"][0]["app"] for s in dep["steps"][1:]]
    assert order == ["/prod/db", "/prod/api", "/prod/edge"]
