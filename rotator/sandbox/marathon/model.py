"""Plain data the Marathon emulator is built from: agents, tasks, listeners, errors."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Agent:
    """A simulated Mesos agent: a name tasks are placed on; nothing connects to it."""

    id: str
    host: str


@dataclass(frozen=True)
class TaskInfo:
    """What a task listener learns about a task (as registrator would see a container)."""

    app_id: str
    task_id: str
    host: str
    agent_id: str
    ports: tuple[int, ...]
    labels: dict[str, str]
    health_checks: list[dict[str, Any]]
    env: dict[str, str] = field(default_factory=dict)
    version: str = ""


@dataclass(frozen=True)
class ProbeSpec:
    """One Marathon health check of one task, as the runtime probes it (seconds already
    scaled by the emulator's time scale)."""

    protocol: str  # "HTTP" or "TCP"
    port: int
    path: str
    interval: float
    timeout: float
    ignore_1xx: bool = False


class TaskReports(Protocol):
    """What a task runtime tells the emulator (from any thread)."""

    def health_result(self, task_id: str, check: int, healthy: bool, cause: str) -> None: ...

    def task_exited(self, task_id: str, message: str) -> None: ...


class TaskRuntime(Protocol):
    """Runs tasks for real: the emulator stays the scheduler and decides what a health
    result means; the runtime serves the tasks and probes them. Its hooks are called under
    the emulator's lock: they must not block."""

    def start(self, task: TaskInfo, probes: list[ProbeSpec], reports: TaskReports) -> None: ...

    def stop(self, task: TaskInfo) -> None: ...

    def set_health_mode(self, app_id: str, mode: str) -> None: ...


class TaskListener(Protocol):
    """Hooks called (under the emulator's lock, in any thread) as tasks live and die."""

    def task_started(self, task: TaskInfo) -> None: ...

    def task_health_changed(self, task: TaskInfo, alive: bool) -> None: ...

    def task_killed(self, task: TaskInfo) -> None: ...


class NullTaskListener:
    def task_started(self, task: TaskInfo) -> None:
        pass

    def task_health_changed(self, task: TaskInfo, alive: bool) -> None:
        pass

    def task_killed(self, task: TaskInfo) -> None:
        pass


class ApiError(Exception):
    """An HTTP error answer: status plus Marathon's JSON body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found(message: str) -> ApiError:
    return ApiError(404, {"message": message})


def invalid(details: list[tuple[str, str]]) -> ApiError:
    grouped: dict[str, list[str]] = {}
    for path, msg in details:
        grouped.setdefault(path, []).append(msg)
    return ApiError(422, {"message": "Object is not valid",
                          "details": [{"path": p, "errors": e} for p, e in grouped.items()]})


def iso(ts: float) -> str:
    """Marathon's timestamp form: ISO-8601 UTC with milliseconds."""
    d = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@dataclass
class Task:
    """One simulated task. ``due`` is when its next state change happens."""

    id: str
    app_id: str
    agent: Agent
    ports: list[int]
    service_ports: list[int]
    version: str  # app version it was launched with
    config_id: int  # bumped by config changes and restarts; tells old tasks from new
    staged_at: float
    state: str = "TASK_STAGING"
    started_at: float | None = None
    due: float | None = None
    # health simulation: None until the first check
    alive: bool | None = None
    consecutive_failures: int = 0
    first_success: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    checks: int = 0
    check_alive: dict[int, bool] = field(default_factory=dict)  # per health check (runtime)
    check_failures: dict[int, int] = field(default_factory=dict)
    last_cause: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    health_checks: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def instance_id(self) -> str:
        return self.id.rsplit("._app.", 1)[0]

    @property
    def killing(self) -> bool:
        return self.state == "TASK_KILLING"

    @property
    def running(self) -> bool:
        return self.state == "TASK_RUNNING"

    def ready(self) -> bool:
        """Counts for a deployment: running, and healthy when the app has checks."""
        if not self.running:
            return False
        return not self.health_checks or bool(self.alive)

    def info(self) -> TaskInfo:
        return TaskInfo(self.app_id, self.id, self.agent.host, self.agent.id, tuple(self.ports),
                        dict(self.labels), [dict(h) for h in self.health_checks],
                        dict(self.env), self.version)

    def to_json(self) -> dict[str, Any]:
        results = []
        if self.health_checks and self.alive is not None:
            one = {
                "alive": self.alive,
                "consecutiveFailures": self.consecutive_failures,
                "firstSuccess": iso(self.first_success) if self.first_success else None,
                "lastSuccess": iso(self.last_success) if self.last_success else None,
                "lastFailure": iso(self.last_failure) if self.last_failure else None,
                "lastFailureCause": None if self.alive else (self.last_cause
                                                             or "simulated check failed"),
                "instanceId": self.instance_id,
            }
            results = [dict(one) for _ in self.health_checks]
        out: dict[str, Any] = {
            "id": self.id,
            "appId": self.app_id,
            "host": self.agent.host,
            "slaveId": self.agent.id,
            "state": self.state,
            "ports": list(self.ports),
            "servicePorts": list(self.service_ports),
            "stagedAt": iso(self.staged_at),
            "version": self.version,
            "ipAddresses": [{"ipAddress": self.agent.host, "protocol": "IPv4"}],
            "healthCheckResults": results,
        }
        if self.started_at is not None:
            out["startedAt"] = iso(self.started_at)
        return out
