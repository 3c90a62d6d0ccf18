"""The Marathon emulator's core: state, deployments and a discrete-event task simulation.

Time only moves in ``advance()``: every pending task transition whose due time
has passed is replayed in time order, and deployments are driven after each
instant. Requests call it first and a ticker calls it in the background, so
results do not depend on how often anyone looks, and a test can inject a clock.

One "step" (``step_seconds``) is the time of each task transition: staging ->
running, running -> first health-check result, killing -> gone.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rotator.apps.app_definition import invalid_id_reason, normalize_id, path_segments

from .definitions import (
    READ_ONLY,
    keep_service_ports,
    merge_partial,
    normalize,
    scale_only,
)
from .deployments import Deployment, build_steps
from .events import EventHub
from .model import (
    Agent,
    ApiError,
    NullTaskListener,
    ProbeSpec,
    Task,
    TaskListener,
    TaskRuntime,
    invalid,
    iso,
    not_found,
)

HEALTH_MODES = ("healthy", "unhealthy", "flapping")
MAX_VERSIONS = 50
HOST_PORT_MIN = 31000


@dataclass
class AppRecord:
    spec: dict[str, Any]
    version: str
    last_config_change_at: str
    last_scaling_at: str
    config_id: int
    versions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def parent_of(path_id: str) -> str:
    return normalize_id("..", path_id)


def under(path_id: str, group: str) -> bool:
    return group == "/" or path_id == group or path_id.startswith(group + "/")


def app_id_of_task(task_id: str) -> str | None:
    """The app a task id belongs to (1.5+ and legacy forms), or None."""
    prefix = task_id.split(".instance-", 1)[0] if ".instance-" in task_id else None
    if prefix is None and "." in task_id:
        prefix = task_id.rsplit(".", 1)[0]
    if not prefix:
        return None
    app_id = "/" + prefix.replace("_", "/")
    return None if invalid_id_reason(app_id) else app_id


class MarathonEmulator:
    """One Marathon 1.6 (state + logic); ``create_app`` puts HTTP in front of it."""

    def __init__(
        self,
        agents: Callable[[], list[Agent]] | Iterable[Agent] | None = None,
        step_seconds: float = 1.0,
        listener: TaskListener | None = None,
        clock: Callable[[], float] = time.time,
        leader: str = "127.0.0.1:8080",
        runtime: TaskRuntime | None = None,
        time_scale: float = 1.0,
    ):
        """Without ``runtime`` tasks and their health checks are simulated; with one, tasks
        run for real and health results come from its probes, with the app's intervals,
        timeouts and grace periods multiplied by ``time_scale``."""
        if agents is None:
            agents = [Agent(f"agent-{i}", f"agent-{i}.sandbox.internal") for i in (1, 2, 3)]
        if not callable(agents):
            fixed = list(agents)
            agents = lambda: fixed  # noqa: E731
        self._agents: Callable[[], list[Agent]] = agents
        self.step_seconds = max(0.001, float(step_seconds))
        self.listener: TaskListener = listener or NullTaskListener()
        self.clock = clock
        self.leader = leader
        self.runtime = runtime
        self.time_scale = time_scale
        # bumped whenever a task starts, stops or changes health: readers of
        # ``serving_tasks`` (the slot's proxies) only look again when it moved
        self.task_generation = 0
        self.framework_id = str(uuid.uuid4())
        self.events = EventHub()
        self.requests: Counter[str] = Counter()  # "METHOD /path" -> count (API calls only)
        self._lock = threading.RLock()
        self._apps: dict[str, AppRecord] = {}
        self._groups: set[str] = set()  # groups created explicitly (may be empty)
        self._group_versions: dict[str, str] = {}
        self._group_history: list[tuple[str, dict[str, dict[str, Any]], frozenset[str]]] = []
        self._tasks: dict[str, dict[str, Task]] = {}  # app id -> task id -> task
        self._heap: list[tuple[float, int, str, str]] = []  # due, seq, app id, task id
        self._seq = itertools.count()
        self._config_ids = itertools.count(1)
        self._deployments: dict[str, Deployment] = {}
        self._health_modes: dict[str, str] = {}
        self._queue: dict[str, tuple[int, float]] = {}  # app id -> (tasks waiting, since)
        self._next_service_port = 10000
        self._agent_ports: dict[str, set[int]] = {}
        self._last_version = 0.0
        self._unavailable_until = 0.0
        self._wakers: list[Callable[[], None]] = []
        version = self._new_version()
        self._group_versions["/"] = version

    # ------------------------------------------------------------------ sandbox controls

    def set_health(self, app_id: str, mode: str) -> None:
        """Make an app's simulated health checks pass, fail, or alternate ('flapping')."""
        if mode not in HEALTH_MODES:
            raise ValueError(f"health mode must be one of {HEALTH_MODES}")
        with self._lock:
            self.advance()
            app_id = normalize_id(app_id)
            self._health_modes[app_id] = mode
            if self.runtime is not None:  # the tasks' own health endpoints answer
                self.runtime.set_health_mode(app_id, mode)
                return
            now = self.clock()
            for task in self._tasks.get(app_id, {}).values():
                if task.running and task.health_checks:
                    self._schedule(task, now)
            self.advance()
        self._wake()

    def set_unavailable(self, seconds: float) -> None:
        """Answer 503 to the API for ``seconds`` (as during a leader election)."""
        with self._lock:
            self._unavailable_until = self.clock() + seconds

    def unavailable(self) -> bool:
        return self.clock() < self._unavailable_until

    def set_step_seconds(self, seconds: float) -> None:
        with self._lock:
            self.step_seconds = max(0.001, float(seconds))

    def add_waker(self, fn: Callable[[], None]) -> None:
        """``fn`` is called whenever new work was scheduled (a ticker may sleep less)."""
        self._wakers.append(fn)

    def remove_waker(self, fn: Callable[[], None]) -> None:
        if fn in self._wakers:
            self._wakers.remove(fn)

    def next_due(self) -> float | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def _wake(self) -> None:
        for fn in list(self._wakers):
            fn()

    # ------------------------------------------------------------------ simulation

    def advance(self) -> None:
        """Replay every task transition due by now, driving deployments after each instant."""
        with self._lock:
            now = self.clock()
            while self._heap and self._heap[0][0] <= now:
                instant = self._heap[0][0]
                while self._heap and self._heap[0][0] <= instant:
                    _, seq, app_id, task_id = heapq.heappop(self._heap)
                    task = self._tasks.get(app_id, {}).get(task_id)
                    if task is not None and task.due == seq:
                        task.due = None
                        self._transition(task, instant)
                self._drive(instant)
            self._drive(now)

    def _schedule(self, task: Task, at: float) -> None:
        seq = next(self._seq)
        task.due = seq
        heapq.heappush(self._heap, (at, seq, task.app_id, task.id))

    def _transition(self, task: Task, t: float) -> None:
        if task.killing:
            self._remove_task(task, t)
        elif task.state == "TASK_STAGING":
            task.state = "TASK_RUNNING"
            task.started_at = t
            self._status_event(task, "TASK_RUNNING", t)
            if self.runtime is not None:
                # serving before the registrator's check first probes it
                self.runtime.start(task.info(), self._probe_specs(task), self)
            self.listener.task_started(task.info())
            if task.health_checks and self.runtime is None:
                self._schedule(task, t + self.step_seconds)
        elif task.running and task.health_checks:
            self._health_check(task, t)

    def _health_check(self, task: Task, t: float) -> None:
        mode = self._health_modes.get(task.app_id, "healthy")
        alive = mode == "healthy" or (mode == "flapping" and task.checks % 2 == 0)
        task.checks += 1
        before = task.alive
        if alive:
            task.last_success = t
            task.first_success = task.first_success or t
            task.consecutive_failures = 0
        else:
            task.last_failure = t
            task.consecutive_failures += 1
        task.alive = alive
        if alive != before:
            self._emit("health_status_changed_event", t, appId=task.app_id, taskId=task.id,
                       instanceId=task.instance_id, version=task.version, alive=alive)
            self.listener.task_health_changed(task.info(), alive)
        if mode != "healthy":
            self._schedule(task, t + self.step_seconds)

    # ------------------------------------------------------------------ real tasks

    def _probe_specs(self, task: Task) -> list[ProbeSpec]:
        """Marathon-level checks (HTTP, HTTPS, TCP and their MESOS_ forms) as the runtime
        probes them; a COMMAND check runs inside the task, here a GET of /health."""
        specs = []
        for hc in task.health_checks:
            protocol = str(hc.get("protocol", "HTTP")).upper().removeprefix("MESOS_")
            index = int(hc.get("portIndex") or 0)
            port = int(hc.get("port") or (task.ports[index] if index < len(task.ports) else 0))
            path = str(hc.get("path") or "/")
            if protocol == "COMMAND":
                protocol, path = "HTTP", "/health"
            specs.append(ProbeSpec(
                "TCP" if protocol == "TCP" else "HTTP", port, path,
                float(hc.get("intervalSeconds", 60)) * self.time_scale,
                float(hc.get("timeoutSeconds", 20)) * self.time_scale,
                bool(hc.get("ignoreHttp1xx", False))))
        return specs

    def health_result(self, task_id: str, check: int, healthy: bool, cause: str) -> None:
        """One probe's verdict, with Marathon's rules: failures are ignored within the grace
        period until the task was healthy once; a task that fails maxConsecutiveFailures
        checks in a row (when > 0) is killed (and replaced)."""
        with self._lock:
            self.advance()
            app_id = app_id_of_task(task_id)
            task = self._tasks.get(app_id or "", {}).get(task_id)
            if task is None or not task.running or check >= len(task.health_checks):
                return
            t = self.clock()
            spec = task.health_checks[check]
            before = task.alive
            task.checks += 1
            if healthy:
                task.check_alive[check] = True
                task.check_failures[check] = 0
                task.last_success = t
                task.first_success = task.first_success or t
            else:
                grace = float(spec.get("gracePeriodSeconds", 300)) * self.time_scale
                if task.first_success is None and t - (task.started_at or t) < grace:
                    return
                task.check_alive[check] = False
                task.check_failures[check] = task.check_failures.get(check, 0) + 1
                task.last_failure = t
                task.last_cause = cause
            results = [task.check_alive.get(i) for i in range(len(task.health_checks))]
            task.alive = False if False in results else (None if None in results else True)
            task.consecutive_failures = max(task.check_failures.values(), default=0)
            if task.alive != before and task.alive is not None:
                self.task_generation += 1
                self._emit("health_status_changed_event", t, appId=task.app_id, taskId=task.id,
                           instanceId=task.instance_id, version=task.version, alive=task.alive)
                self.listener.task_health_changed(task.info(), bool(task.alive))
            limit = int(spec.get("maxConsecutiveFailures", 3))
            if not healthy and limit > 0 and task.check_failures[check] >= limit:
                self._emit("unhealthy_instance_kill_event", t, appId=task.app_id,
                           taskId=task.id, instanceId=task.instance_id, version=task.version,
                           reason=cause, host=task.agent.host, slaveId=task.agent.id)
                self._kill(task, t)
            self._drive(t)
        self._wake()

    def task_exited(self, task_id: str, message: str) -> None:
        """The task's process ended by itself: TASK_FAILED, and the app gets a new task."""
        with self._lock:
            self.advance()
            task = self._tasks.get(app_id_of_task(task_id) or "", {}).get(task_id)
            if task is None or task.state not in ("TASK_RUNNING", "TASK_KILLING"):
                return
            t = self.clock()
            self._remove_task(task, t, "TASK_FAILED")
            self._drive(t)
        self._wake()

    def serving_tasks(self) -> list[tuple[str, str, str, str, tuple[int, ...], dict[str, str], bool]]:
        """Running tasks as (app id, task id, host, agent id, ports, labels, healthy), healthy
        meaning alive by every health check, or running when the app has none."""
        with self._lock:
            return [(x.app_id, x.id, x.agent.host, x.agent.id, tuple(x.ports), x.labels,
                     not x.health_checks or bool(x.alive))
                    for ts in self._tasks.values() for x in ts.values() if x.running]

    def _kill(self, task: Task, t: float) -> None:
        if task.killing:
            return
        task.state = "TASK_KILLING"
        self._status_event(task, "TASK_KILLING", t)
        self._schedule(task, t + self.step_seconds)

    def _remove_task(self, task: Task, t: float, status: str = "TASK_KILLED") -> None:
        self._tasks.get(task.app_id, {}).pop(task.id, None)
        if not self._tasks.get(task.app_id):
            self._tasks.pop(task.app_id, None)
        self._agent_ports.get(task.agent.id, set()).difference_update(task.ports)
        self._status_event(task, status, t)
        if task.started_at is not None:
            if self.runtime is not None:
                self.runtime.stop(task.info())
            self.listener.task_killed(task.info())

    def _status_event(self, task: Task, status: str, t: float) -> None:
        self.task_generation += 1
        self._emit("status_update_event", t, slaveId=task.agent.id, taskId=task.id,
                   taskStatus=status, appId=task.app_id, host=task.agent.host,
                   ports=list(task.ports), version=task.version, message="",
                   ipAddresses=[{"ipAddress": task.agent.host, "protocol": "IPv4"}])

    def _launch(self, rec: AppRecord, count: int, t: float) -> int:
        """Start up to ``count`` tasks; the rest wait in the launch queue."""
        spec = rec.spec
        launched = 0
        unique = any(c[:2] == ["hostname", "UNIQUE"] for c in spec.get("constraints", []))
        for _ in range(count):
            tasks = self._tasks.get(spec["id"], {})
            agents = self._agents()
            if unique:
                used = {x.agent.id for x in tasks.values() if not x.killing}
                agents = [a for a in agents if a.id not in used]
            if not agents:
                break
            load = Counter(x.agent.id for ts in self._tasks.values() for x in ts.values())
            agent = min(agents, key=lambda a: load[a.id])
            n_ports = len(spec.get("portDefinitions") or
                          (spec.get("container") or {}).get("portMappings") or [])
            used_ports = self._agent_ports.setdefault(agent.id, set())
            ports = []
            port = HOST_PORT_MIN
            while len(ports) < n_ports:
                if port not in used_ports:
                    ports.append(port)
                    used_ports.add(port)
                port += 1
            safe = spec["id"].strip("/").replace("/", "_")
            task = Task(
                id=f"{safe}.instance-{uuid.uuid4()}._app.1", app_id=spec["id"], agent=agent,
                ports=ports, service_ports=[pd["port"] for pd in spec.get("portDefinitions", [])],
                version=rec.version, config_id=rec.config_id, staged_at=t,
                labels=dict(spec.get("labels", {})),
                env={k: v for k, v in (spec.get("env") or {}).items() if isinstance(v, str)},
                health_checks=[dict(h) for h in spec.get("healthChecks", [])],
            )
            self._tasks.setdefault(spec["id"], {})[task.id] = task
            self._status_event(task, "TASK_STAGING", t)
            self._schedule(task, t + self.step_seconds)
            launched += 1
        if launched < count:
            since = self._queue.get(spec["id"], (0, t))[1]
            self._queue[spec["id"]] = (count - launched, since)
        return launched

    def _drive(self, t: float) -> None:
        self._queue.clear()
        for dep in list(self._deployments.values()):
            self._progress(dep, t)
        busy = {a for d in self._deployments.values() for a in d.affected}
        for app_id, rec in self._apps.items():
            if app_id in busy:
                continue
            live = [x for x in self._tasks.get(app_id, {}).values() if not x.killing]
            missing = rec.spec["instances"] - len(live)
            if missing > 0:  # a killed task is replaced outside deployments too
                self._launch(rec, missing, t)

    def _progress(self, dep: Deployment, t: float) -> None:
        while dep.current < len(dep.steps):
            step = dep.steps[dep.current]
            done = [self._act(kind, app_id, dep, t) for kind, app_id in step]
            if not all(done):
                return
            self._emit("deployment_step_success", t, plan=dep.plan_json())
            dep.current += 1
            if dep.current < len(dep.steps):
                self._emit("deployment_info", t, plan=dep.plan_json(),
                           currentStep=dep.current_step_json())
        self._deployments.pop(dep.id, None)
        self._emit("deployment_success", t, id=dep.id, plan=dep.plan_json())

    def _act(self, kind: str, app_id: str, dep: Deployment, t: float) -> bool:
        if kind == "StopApplication":
            tasks = list(self._tasks.get(app_id, {}).values())
            for task in tasks:
                self._kill(task, t)
            if tasks:
                return False
            if app_id not in dep.stopped_reported:
                dep.stopped_reported.add(app_id)
                self._emit("app_terminated_event", t, appId=app_id)
            return True
        if kind == "StartApplication":
            return True
        rec = self._apps.get(app_id)
        return True if rec is None else self._roll(rec, t)

    def _roll(self, rec: AppRecord, t: float) -> bool:
        """One look at a scale or rolling restart (Marathon's TaskReplaceActor rules)."""
        spec = rec.spec
        n = spec["instances"]
        tasks = list(self._tasks.get(spec["id"], {}).values())
        new = [x for x in tasks if not x.killing and x.config_id == rec.config_id]
        old = [x for x in tasks if not x.killing and x.config_id != rec.config_id]
        oldest_first = spec.get("killSelection") == "OLDEST_FIRST"

        def kill_order(xs: list[Task]) -> list[Task]:
            # tasks not yet serving go first, then by the app's kill selection
            return sorted(xs, key=lambda x: (x.ready(), x.staged_at if oldest_first
                                             else -x.staged_at))

        for task in kill_order(new)[: max(0, len(new) - n)]:
            self._kill(task, t)
        new = [x for x in new if not x.killing]
        us = spec["upgradeStrategy"]
        min_healthy = math.ceil(n * us["minimumHealthCapacity"])
        max_capacity = math.floor(n * (1 + us["maximumOverCapacity"]))
        if min_healthy == max_capacity:
            max_capacity += 1  # otherwise no replacement could ever start
        ready_new = sum(1 for x in new if x.ready())
        keep_old = max(0, min_healthy - ready_new)
        for task in kill_order(old)[: max(0, len(old) - keep_old)]:
            self._kill(task, t)
        old = [x for x in old if not x.killing]
        room = max_capacity - len(old) - len(new)
        wanted = min(n - len(new), room)
        if wanted > 0:
            self._launch(rec, wanted, t)
        tasks = list(self._tasks.get(spec["id"], {}).values())
        return len(tasks) == n and all(
            x.config_id == rec.config_id and not x.killing and x.ready() for x in tasks)

    def _emit(self, event_type: str, t: float, **data: Any) -> None:
        self.events.publish({"eventType": event_type, "timestamp": iso(t), **data})

    # ------------------------------------------------------------------ change machinery

    def _new_version(self) -> str:
        ts = max(self.clock(), self._last_version + 0.001)
        self._last_version = ts
        return iso(ts)

    def _specs(self) -> dict[str, dict[str, Any]]:
        return {k: r.spec for k, r in self._apps.items()}

    def _apply(
        self,
        target: dict[str, dict[str, Any]],
        *,
        force: bool,
        restarts: frozenset[str] = frozenset(),
        groups: set[str] | None = None,
        kill_first: Iterable[Task] = (),
        dry_run: bool = False,
    ) -> Deployment:
        """Store ``target`` as the new world and start the deployment that gets there."""
        current = self._specs()
        # stored specs are never mutated in place, so identity means "unchanged"
        changed = [a for a, spec in target.items() if current.get(a) is not spec]
        taken = {pd["port"] for spec in current.values() for pd in spec.get("portDefinitions", [])}
        for app_id in changed:
            keep_service_ports(target[app_id], current.get(app_id))
            self._assign_service_ports(target[app_id], taken)
            if app_id in self._groups:
                raise invalid([("/id", f"An app cannot have the id of existing group {app_id}")])
        steps = build_steps(current, target, restarts)
        affected = {a for step in steps for _, a in step}
        if dry_run:
            return Deployment("dry-run", "", steps, dict.fromkeys(affected),
                              dict.fromkeys(affected))
        conflicts = [d for d in self._deployments.values() if affected & set(d.affected)]
        if conflicts and not force:
            raise ApiError(409, {
                "message": "App is locked by one or more deployments. Override with the option "
                           f"'?force=true'. View details at '/v2/deployments/{conflicts[0].id}'.",
                "deployments": [{"id": d.id} for d in conflicts],
            })
        now = self.clock()
        for dep in conflicts:  # forced: cancelled, no revert, tasks may stay mixed
            self._deployments.pop(dep.id, None)
            self._emit("deployment_failed", now, id=dep.id, plan=dep.plan_json())
        version = self._new_version()
        restarted = {a for step in steps for kind, a in step if kind == "RestartApplication"}
        for app_id in set(current) - set(target):
            self._apps.pop(app_id)
        for app_id, spec in target.items():
            rec = self._apps.get(app_id)
            if rec is None:
                self._apps[app_id] = AppRecord(copy.deepcopy(spec), version, version, version,
                                               next(self._config_ids), [(version, copy.deepcopy(spec))])
                continue
            if spec == rec.spec and app_id not in restarts:
                continue
            if app_id in restarted:
                rec.config_id = next(self._config_ids)
                if not scale_only(spec, rec.spec):
                    rec.last_config_change_at = version
            rec.spec = copy.deepcopy(spec)
            rec.version = version
            rec.last_scaling_at = version
            rec.versions = (rec.versions + [(version, copy.deepcopy(spec))])[-MAX_VERSIONS:]
        if groups is not None:
            self._groups = groups
        for app_id in affected:
            for gid in self._ancestors(app_id):
                self._group_versions[gid] = version
        self._group_versions["/"] = version
        self._group_history.append((version, self._specs(), frozenset(self._groups)))
        del self._group_history[:-MAX_VERSIONS]
        dep = Deployment(str(uuid.uuid4()), version, steps,
                         {a: copy.deepcopy(current.get(a)) for a in affected},
                         {a: copy.deepcopy(target.get(a)) for a in affected})
        self._deployments[dep.id] = dep
        self._emit("group_change_success", now, groupId="/", version=version)
        self._emit("deployment_info", now, plan=dep.plan_json(), currentStep=dep.current_step_json())
        for task in kill_first:
            self._kill(task, now)
        self._drive(now)
        return dep

    def _assign_service_ports(self, spec: dict[str, Any], taken: set[int]) -> None:
        for pd in spec.get("portDefinitions", []):
            if pd.get("port") == 0:
                while self._next_service_port in taken:
                    self._next_service_port += 1
                pd["port"] = self._next_service_port
                taken.add(pd["port"])

    def _ancestors(self, path_id: str) -> list[str]:
        segs = path_segments(path_id)
        return ["/" + "/".join(segs[:i]) for i in range(len(segs))]

    @staticmethod
    def result(dep: Deployment) -> dict[str, Any]:
        return {"version": dep.version, "deploymentId": dep.id}

    def _app(self, app_id: str) -> AppRecord:
        rec = self._apps.get(app_id)
        if rec is None:
            raise not_found(f"App '{app_id}' does not exist")
        return rec

    # ------------------------------------------------------------------ apps

    def app_json(self, rec: AppRecord, embed_tasks: bool = False) -> dict[str, Any]:
        out = copy.deepcopy(rec.spec)
        tasks = list(self._tasks.get(rec.spec["id"], {}).values())
        checked = [x for x in tasks if x.health_checks and x.alive is not None]
        out.update({
            "version": rec.version,
            "versionInfo": {"lastScalingAt": rec.last_scaling_at,
                            "lastConfigChangeAt": rec.last_config_change_at},
            "tasksStaged": sum(1 for x in tasks if x.state == "TASK_STAGING"),
            "tasksRunning": sum(1 for x in tasks if x.running),
            "tasksHealthy": sum(1 for x in checked if x.alive),
            "tasksUnhealthy": sum(1 for x in checked if not x.alive),
            "deployments": [{"id": d.id} for d in self._deployments.values()
                            if rec.spec["id"] in d.original],
        })
        if embed_tasks:
            out["tasks"] = [x.to_json() for x in tasks]
        return out

    def list_apps(self, id_filter: str | None = None, label: str | None = None,
                  cmd: str | None = None, embed_tasks: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            self.advance()
            out = []
            for app_id in sorted(self._apps):
                rec = self._apps[app_id]
                if id_filter and id_filter not in app_id:
                    continue
                if cmd and cmd not in (rec.spec.get("cmd") or ""):
                    continue
                if label and not _label_matches(rec.spec.get("labels", {}), label):
                    continue
                out.append(self.app_json(rec, embed_tasks))
            return out

    def get_app(self, app_id: str) -> dict[str, Any]:
        with self._lock:
            self.advance()
            return self.app_json(self._app(normalize_id(app_id)), embed_tasks=True)

    def create_app(self, body: Any, force: bool = False) -> tuple[dict[str, Any], Deployment]:
        with self._lock:
            self.advance()
            if not isinstance(body, dict):
                raise invalid([("/", "an app definition must be a JSON object")])
            spec = normalize(body)
            if spec["id"] in self._apps:
                raise ApiError(409, {"message": f"An app with id [{spec['id']}] already exists."})
            target = {**self._specs(), spec["id"]: spec}
            dep = self._apply(target, force=force)
        self._wake()
        return self.app_json(self._apps[spec["id"]], embed_tasks=True), dep

    def put_app(self, app_id: str, body: Any, force: bool = False,
                partial: bool = True) -> tuple[bool, Deployment]:
        """Update, create or roll back (``{"version": ts}``); True when it created the app."""
        with self._lock:
            self.advance()
            app_id = normalize_id(app_id)
            if not isinstance(body, dict):
                raise invalid([("/", "an app definition must be a JSON object")])
            if "version" in body:
                return False, self._rollback_app(app_id, body, force)
            existing = self._apps.get(app_id)
            merged = dict(body)
            if existing is not None and partial:
                merged = merge_partial(existing.spec, body)
            merged["id"] = app_id
            spec = normalize({k: v for k, v in merged.items() if k not in READ_ONLY})
            dep = self._apply({**self._specs(), app_id: spec}, force=force)
        self._wake()
        return existing is None, dep

    def _rollback_app(self, app_id: str, body: dict[str, Any], force: bool) -> Deployment:
        if set(body) - {"id", "version"}:
            raise invalid([("/", "The 'version' field may only be combined with the 'id' field.")])
        rec = self._app(app_id)
        old = dict(rec.versions).get(body["version"])
        if old is None:
            raise not_found(f"App '{app_id}' does not exist in version {body['version']}")
        return self._apply({**self._specs(), app_id: copy.deepcopy(old)}, force=force)

    def put_apps(self, bodies: Any, force: bool = False, partial: bool = True) -> Deployment:
        with self._lock:
            self.advance()
            if not isinstance(bodies, list):
                raise invalid([("/", "expected a list of app definitions")])
            target = self._specs()
            problems: list[tuple[str, str]] = []
            for i, body in enumerate(bodies):
                try:
                    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
                        raise invalid([("/id", "is required")])
                    app_id = normalize_id(body["id"])
                    merged = dict(body)
                    if app_id in target and partial:
                        merged = merge_partial(target[app_id], body)
                    merged["id"] = app_id
                    target[app_id] = normalize({k: v for k, v in merged.items() if k not in READ_ONLY})
                except ApiError as e:
                    problems += [(f"({i}){d['path']}", m) for d in e.body["details"] for m in d["errors"]]
            if problems:
                raise invalid(problems)
            dep = self._apply(target, force=force)
        self._wake()
        return dep

    def delete_app(self, app_id: str, force: bool = True) -> Deployment:
        with self._lock:
            self.advance()
            app_id = normalize_id(app_id)
            self._app(app_id)
            target = {k: v for k, v in self._specs().items() if k != app_id}
            dep = self._apply(target, force=force)
        self._wake()
        return dep

    def restart_app(self, app_id: str, force: bool = False) -> Deployment:
        with self._lock:
            self.advance()
            app_id = normalize_id(app_id)
            self._app(app_id)
            dep = self._apply(self._specs(), force=force, restarts=frozenset({app_id}))
        self._wake()
        return dep

    def app_versions(self, app_id: str) -> list[str]:
        with self._lock:
            return [v for v, _ in reversed(self._app(normalize_id(app_id)).versions)]

    def app_version(self, app_id: str, version: str) -> dict[str, Any]:
        with self._lock:
            app_id = normalize_id(app_id)
            rec = self._app(app_id)
            spec = dict(rec.versions).get(version)
            if spec is None:
                raise not_found(f"App '{app_id}' does not exist in version {version}")
            return {**copy.deepcopy(spec), "version": version,
                    "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": version}}

    # ------------------------------------------------------------------ tasks

    def app_tasks(self, app_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self.advance()
            app_id = normalize_id(app_id)
            self._app(app_id)
            return [x.to_json() for x in self._tasks.get(app_id, {}).values()]

    def list_tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            self.advance()
            want = {"running": "TASK_RUNNING", "staging": "TASK_STAGING"}.get(status or "")
            return [x.to_json() for ts in self._tasks.values() for x in ts.values()
                    if want is None or x.state == want]

    def kill_tasks(self, task_ids: list[str], scale: bool = False,
                   force: bool = False) -> tuple[list[dict[str, Any]], Deployment | None]:
        """Kill the given tasks; with ``scale`` the apps shrink by as many (a deployment)."""
        with self._lock:
            self.advance()
            found: list[Task] = []
            for task_id in task_ids:
                app_id = app_id_of_task(task_id)
                if app_id is None:
                    raise ApiError(400, {"message": f"Invalid task id '{task_id}'."})
                task = self._tasks.get(app_id, {}).get(task_id)
                if task is not None:
                    found.append(task)
            now = self.clock()
            dep = None
            if scale:
                target = self._specs()
                for task in found:
                    if not task.killing and task.app_id in target:
                        spec = target[task.app_id] = copy.deepcopy(target[task.app_id])
                        spec["instances"] = max(0, spec["instances"] - 1)
                dep = self._apply(target, force=force, kill_first=found)
            else:
                for task in found:
                    self._kill(task, now)
            out = [x.to_json() for x in found]
        self._wake()
        return out, dep

    def kill_app_tasks(self, app_id: str, host: str | None = None, scale: bool = False,
                       force: bool = False) -> tuple[list[dict[str, Any]], Deployment | None]:
        with self._lock:
            self.advance()
            app_id = normalize_id(app_id)
            self._app(app_id)
            ids = [x.id for x in self._tasks.get(app_id, {}).values()
                   if host is None or x.agent.host == host]
            return self.kill_tasks(ids, scale=scale, force=force)

    # ------------------------------------------------------------------ groups

    def _all_groups(self) -> set[str]:
        out = {"/"}
        for gid in self._groups:
            out.update(self._ancestors(gid))
            out.add(gid)
        for app_id in self._apps:
            out.update(self._ancestors(app_id))
        return out

    def _group_tree(self, gid: str, groups: set[str], embed_tasks: bool) -> dict[str, Any]:
        return {
            "id": gid,
            "apps": [self.app_json(self._apps[a], embed_tasks) for a in sorted(self._apps)
                     if parent_of(a) == gid],
            "groups": [self._group_tree(g, groups, embed_tasks) for g in sorted(groups)
                       if g != "/" and parent_of(g) == gid],
            "pods": [],
            "dependencies": [],
            "version": self._group_versions.get(gid, self._group_versions["/"]),
        }

    def get_group(self, gid: str, embed_tasks: bool = False) -> dict[str, Any]:
        with self._lock:
            self.advance()
            gid = normalize_id(gid)
            groups = self._all_groups()
            if gid not in groups:
                raise not_found(f"Group '{gid}' does not exist")
            return self._group_tree(gid, groups, embed_tasks)

    def group_versions(self, gid: str) -> list[str]:
        with self._lock:
            gid = normalize_id(gid)
            if gid not in self._all_groups():
                raise not_found(f"Group '{gid}' does not exist")
            return [v for v, apps, groups in reversed(self._group_history)
                    if gid == "/" or gid in groups or any(under(a, gid) for a in apps)]

    def group_version(self, gid: str, version: str) -> dict[str, Any]:
        with self._lock:
            gid = normalize_id(gid)
            for v, apps, groups in self._group_history:
                if v == version:
                    ids = {a for a in apps if under(a, gid)}
                    if gid != "/" and not ids and gid not in groups:
                        break
                    return {"id": gid, "apps": [apps[a] for a in sorted(ids)], "groups": [],
                            "pods": [], "dependencies": [], "version": v}
            raise not_found(f"Group '{gid}' does not exist in version {version}")

    def _group_target(self, gid: str, body: dict[str, Any], target: dict[str, dict[str, Any]],
                      groups: set[str], prefix: str, problems: list[tuple[str, str]]) -> None:
        """Apply a GroupUpdate for ``gid`` onto ``target``/``groups`` (listed apps are
        full definitions; apps and subgroups not listed are removed)."""
        if "apps" in body:
            listed: set[str] = set()
            for i, app in enumerate(body.get("apps") or []):
                if not isinstance(app, dict) or not isinstance(app.get("id"), str):
                    problems.append((f"{prefix}/apps({i})/id", "is required"))
                    continue
                app_id = normalize_id(app["id"], gid)
                if parent_of(app_id) != gid:
                    problems.append((f"{prefix}/apps({i})/id",
                                     f"app {app_id} must be a direct child of {gid}"))
                    continue
                try:
                    spec = normalize({**{k: v for k, v in app.items() if k not in READ_ONLY},
                                      "id": app_id}, prefix=f"{prefix}/apps({i})")
                except ApiError as e:
                    problems += [(d["path"], m) for d in e.body["details"] for m in d["errors"]]
                    continue
                target[app_id] = spec
                listed.add(app_id)
            for app_id in [a for a in target if parent_of(a) == gid and a not in listed]:
                del target[app_id]
        if "groups" in body:
            listed_groups: set[str] = set()
            for i, sub in enumerate(body.get("groups") or []):
                if not isinstance(sub, dict) or not isinstance(sub.get("id"), str):
                    problems.append((f"{prefix}/groups({i})/id", "is required"))
                    continue
                sub_id = normalize_id(sub["id"], gid)
                reason = invalid_id_reason(sub_id)
                if reason:
                    problems.append((f"{prefix}/groups({i})/id", reason))
                    continue
                listed_groups.add(sub_id)
                groups.add(sub_id)
                self._group_target(sub_id, sub, target, groups, f"{prefix}/groups({i})", problems)
            doomed = {g for g in self._all_groups() | groups
                      if g != gid and parent_of(g) == gid and g not in listed_groups}
            for g in doomed:
                for app_id in [a for a in target if under(a, g)]:
                    del target[app_id]
                groups.difference_update({x for x in groups if under(x, g)})

    def put_group(self, gid: str, body: Any, force: bool = False, dry_run: bool = False,
                  create: bool = False) -> Deployment:
        with self._lock:
            self.advance()
            if not isinstance(body, dict):
                raise invalid([("/", "a group update must be a JSON object")])
            if create:
                if not isinstance(body.get("id"), str):
                    raise invalid([("/id", "is required")])
                gid = normalize_id(body["id"], gid)
                if gid in self._all_groups():
                    raise ApiError(409, {"message": f"Group {gid} is already created. "
                                                    "Use PUT to change this group."})
            else:
                gid = normalize_id(gid)
            reason = invalid_id_reason(gid) if gid != "/" else None
            if reason:
                raise invalid([("/id", reason)])
            if "version" in body:
                dep = self._rollback_group(gid, body["version"], force)
            elif "scaleBy" in body:
                factor = body["scaleBy"]
                if not isinstance(factor, int | float) or isinstance(factor, bool) or factor < 0:
                    raise invalid([("/scaleBy", "must be a number >= 0")])
                target = self._specs()
                for app_id, spec in list(target.items()):
                    if under(app_id, gid):
                        target[app_id] = {**spec,
                                          "instances": math.ceil(spec["instances"] * factor)}
                dep = self._apply(target, force=force, dry_run=dry_run)
            else:
                target = self._specs()  # _group_target replaces entries, never edits them
                groups = set(self._groups)
                if gid != "/":
                    groups.add(gid)
                problems: list[tuple[str, str]] = []
                self._group_target(gid, body, target, groups, "", problems)
                if problems:
                    raise invalid(problems)
                dep = self._apply(target, force=force, groups=groups, dry_run=dry_run)
        if not dry_run:
            self._wake()
        return dep

    def _rollback_group(self, gid: str, version: str, force: bool) -> Deployment:
        for v, apps, groups in self._group_history:
            if v == version:
                target = {a: s for a, s in self._specs().items() if not under(a, gid)}
                target.update({a: copy.deepcopy(s) for a, s in apps.items() if under(a, gid)})
                kept = {g for g in self._groups if not under(g, gid)}
                return self._apply(target, force=force,
                                   groups=kept | {g for g in groups if under(g, gid)})
        raise ApiError(422, {"message": f"Group {gid} not available in version {version}"})

    def delete_group(self, gid: str, force: bool = False) -> Deployment:
        with self._lock:
            self.advance()
            gid = normalize_id(gid)
            if gid not in self._all_groups():
                raise not_found(f"Group '{gid}' does not exist")
            target = {a: s for a, s in self._specs().items() if not under(a, gid)}
            groups = {g for g in self._groups if not under(g, gid)}
            dep = self._apply(target, force=force, groups=groups)
        self._wake()
        return dep

    # ------------------------------------------------------------------ deployments, queue

    def list_deployments(self) -> list[dict[str, Any]]:
        with self._lock:
            self.advance()
            return [d.to_json() for d in self._deployments.values()]

    def cancel_deployment(self, dep_id: str, force: bool = False) -> Deployment | None:
        """Cancel; without ``force`` a forced revert deployment is started and returned."""
        with self._lock:
            self.advance()
            dep = self._deployments.pop(dep_id, None)
            if dep is None:
                raise not_found(f"DeploymentPlan {dep_id} does not exist")
            self._emit("deployment_failed", self.clock(), id=dep.id, plan=dep.plan_json())
            revert = None
            if not force:
                target = self._specs()
                for app_id, spec in dep.original.items():
                    if spec is None:
                        target.pop(app_id, None)
                    else:
                        target[app_id] = copy.deepcopy(spec)
                revert = self._apply(target, force=True)
        self._wake()
        return revert

    def queue(self) -> list[dict[str, Any]]:
        with self._lock:
            self.advance()
            return [{"app": self.app_json(self._apps[a]), "count": n, "since": iso(since),
                     "delay": {"timeLeftSeconds": 0, "overdue": True}}
                    for a, (n, since) in sorted(self._queue.items()) if a in self._apps]

    def reset_delay(self, app_id: str) -> None:
        with self._lock:
            self.advance()
            app_id = normalize_id(app_id)
            if app_id not in self._queue:
                raise not_found(f"Application {app_id} not found in tasks queue.")

    # ------------------------------------------------------------------ misc

    def info(self) -> dict[str, Any]:
        host, _, port = self.leader.partition(":")
        return {
            "name": "marathon", "version": "1.6.322", "buildref": "sandbox",
            "elected": True, "leader": self.leader, "frameworkId": self.framework_id,
            "marathon_config": {"framework_name": "marathon", "ha": True, "hostname": host,
                                "local_port_min": 10000, "local_port_max": 20000,
                                "mesos_role": None, "task_launch_timeout": 300000,
                                "checkpoint": True, "failover_timeout": 604800,
                                "mesos_user": "root"},
            "zookeeper_config": {"zk": "zk://localhost:2181/marathon", "zk_timeout": 10000,
                                 "zk_max_versions": MAX_VERSIONS},
            "http_config": {"http_port": int(port or 8080), "https_port": 8443},
        }

    def api_post_event(self, uri: str, client_ip: str, app: Any) -> None:
        self._emit("api_post_event", self.clock(), clientIp=client_ip, uri=uri, appDefinition=app)

    def task_count(self) -> int:
        with self._lock:
            return sum(len(ts) for ts in self._tasks.values())


def _label_matches(labels: dict[str, str], selector: str) -> bool:
    """Marathon's label filter: ``key``, ``key==value`` or ``key!=value`` (comma = and)."""
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "==" in term:
            k, v = term.split("==", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term and term not in labels:
            return False
    return True
