"""App definitions as Marathon 1.6 stores and emits them.

Incoming definitions are normalised (defaults filled, ids made absolute, keys
Marathon 1.6 does not emit dropped) so that stored specs can be compared to
tell a scale-only change from one that needs a rolling restart.
"""

from __future__ import annotations

import copy
from typing import Any

from rotator.apps.app_definition import app_problems, normalize_id

from .model import invalid

HEALTH_CHECK_DEFAULTS = {
    "protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 300,
    "intervalSeconds": 60, "timeoutSeconds": 20, "maxConsecutiveFailures": 3,
    "delaySeconds": 15, "ignoreHttp1xx": False, "ipProtocol": "IPv4",
}
READINESS_DEFAULTS = {
    "name": "readinessCheck", "protocol": "HTTP", "path": "/", "portName": "http-api",
    "intervalSeconds": 30, "timeoutSeconds": 10, "httpStatusCodesForReady": [200],
    "preserveLastResponse": False,
}
APP_DEFAULTS: dict[str, Any] = {
    "instances": 1, "cpus": 1.0, "mem": 128.0, "disk": 0.0, "gpus": 0, "backoffSeconds": 1,
    "backoffFactor": 1.15, "maxLaunchDelaySeconds": 3600, "killSelection": "YOUNGEST_FIRST",
    "requirePorts": False,
}
# Keys stored and emitted as given (when set); everything else not handled below is ignored,
# as Marathon 1.4+ ignores unknown fields.
PASS_THROUGH = ("cmd", "args", "user", "container", "executor", "acceptedResourceRoles",
                "fetch", "secrets", "taskKillGracePeriodSeconds", "unreachableStrategy",
                "residency")
CONSTRAINT_OPERATORS = {"UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS"}
# Fields the API computes; clients (marathon-python's update_app) send them back.
READ_ONLY = {"version", "versionInfo", "tasks", "deployments", "tasksStaged", "tasksRunning",
             "tasksHealthy", "tasksUnhealthy", "lastTaskFailure", "taskStats",
             "readinessCheckResults"}


def server_problems(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Marathon's checks: the shared rules plus a few only the server applies."""
    out = [(p.path, p.message) for p in app_problems(data, prefix)]
    constraints = data.get("constraints")
    if constraints is not None:
        if not isinstance(constraints, list):
            out.append((f"{prefix}/constraints", "must be a list"))
        else:
            for i, c in enumerate(constraints):
                if (not isinstance(c, list) or len(c) < 2
                        or c[1] not in CONSTRAINT_OPERATORS):
                    out.append((f"{prefix}/constraints({i})",
                                f"Constraint operator must be one of {sorted(CONSTRAINT_OPERATORS)}"))
    if not data.get("cmd") and not data.get("args") and not data.get("container"):
        out.append((f"{prefix}/", "AppDefinition must either contain one of 'cmd' or 'args', "
                                  "and/or a 'container'."))
    return out


def normalize(data: dict[str, Any], base: str = "/", prefix: str = "") -> dict[str, Any]:
    """A full, validated, stored spec from a definition (raises 422 ApiError)."""
    problems = server_problems(data, prefix)
    if problems:
        raise invalid(problems)
    spec: dict[str, Any] = {"id": normalize_id(data["id"], base)}
    for key, default in APP_DEFAULTS.items():
        spec[key] = data.get(key, default)
    for key in ("cpus", "mem", "disk"):
        spec[key] = float(spec[key])
    for key in PASS_THROUGH:
        if data.get(key) is not None:
            spec[key] = copy.deepcopy(data[key])
    spec["env"] = dict(data.get("env") or {})
    spec["labels"] = dict(data.get("labels") or {})
    spec["constraints"] = [list(c) for c in data.get("constraints") or []]
    parent = normalize_id("..", spec["id"])
    spec["dependencies"] = [normalize_id(d, parent) for d in data.get("dependencies") or []]
    spec["healthChecks"] = [{**HEALTH_CHECK_DEFAULTS, **hc} for hc in data.get("healthChecks") or []]
    spec["readinessChecks"] = [{**READINESS_DEFAULTS, **rc}
                               for rc in data.get("readinessChecks") or []]
    spec["upgradeStrategy"] = {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0,
                               **(data.get("upgradeStrategy") or {})}
    spec["networks"] = copy.deepcopy(data.get("networks") or [{"mode": "host"}])
    if all(n.get("mode", "host") == "host" for n in spec["networks"]):
        pds = data.get("portDefinitions")
        if pds is None and data.get("ports") is not None:
            pds = [{"port": p} for p in data["ports"]]
        if pds is None:
            pds = [{"port": 0, "name": "default"}]
        spec["portDefinitions"] = [{"protocol": "tcp", "labels": {}, **pd} for pd in pds]
    return spec


def merge_partial(existing: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A partial update (PUT with partialUpdate=true): given top-level fields win."""
    merged = copy.deepcopy(existing)
    for key, value in update.items():
        if key not in READ_ONLY:
            merged[key] = copy.deepcopy(value)
    return merged


def keep_service_ports(spec: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """Port 0 asks for a service port; an app keeps the ones it already has."""
    if not existing:
        return
    old = existing.get("portDefinitions") or []
    for i, pd in enumerate(spec.get("portDefinitions") or []):
        if pd.get("port") == 0 and i < len(old):
            pd["port"] = old[i]["port"]


def scale_only(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when the specs differ in ``instances`` at most."""
    return {**a, "instances": 0} == {**b, "instances": 0}
