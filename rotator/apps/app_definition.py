"""Marathon app definitions: path ids and the rules a definition must meet.

The rules follow Marathon 1.6's validation (``PathId`` and ``AppDefinition``).
Each problem is reported as a JSON-pointer-like path plus a message, the shape
Marathon uses in the ``details`` of a 422 answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rotator.errors import InputError

# One path segment: dot-separated DNS-style labels, or "." / "..".
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
SEGMENT_RE = re.compile(rf"^(?:{_LABEL})(?:\.{_LABEL})*$|^\.\.?$")

HEALTH_PROTOCOLS = {"HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"}
KILL_SELECTIONS = {"YOUNGEST_FIRST", "OLDEST_FIRST"}


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


def path_segments(path: str) -> list[str]:
    """Split an id the way PathId does: no empty segments, no leading/trailing '/'."""
    return [s for s in path.split("/") if s]


def normalize_id(path: str, base: str = "/") -> str:
    """Absolute form of ``path``; relative ids resolve against ``base`` ('..' allowed)."""
    parts = [] if path.startswith("/") else path_segments(base)
    for seg in path_segments(path):
        if seg == ".":
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    return "/" + "/".join(parts)


def invalid_id_reason(path: str) -> str | None:
    """Why ``path`` is not a valid app id, or None."""
    segments = path_segments(path)
    if not segments:
        return "must not be empty"
    for seg in segments:
        if not SEGMENT_RE.match(seg):
            return (
                f"'{seg}' is not a valid path segment: use lowercase letters, digits and "
                "inner hyphens, optionally dot-separated"
            )
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def app_problems(data: Any, prefix: str = "") -> list[Problem]:
    """Every rule ``data`` (one app definition) breaks; empty when valid.

    ``prefix`` is prepended to paths (e.g. ``/apps(0)`` inside a group).
    """
    out: list[Problem] = []

    def bad(path: str, message: str) -> None:
        out.append(Problem(prefix + path, message))

    if not isinstance(data, dict):
        bad("/", "an app definition must be a JSON object")
        return out

    app_id = data.get("id")
    if not isinstance(app_id, str) or not app_id.strip("/"):
        bad("/id", "is required (a path such as /prod/web)")
    else:
        reason = invalid_id_reason(app_id)
        if reason:
            bad("/id", reason)

    if "instances" in data and not (_is_int(data["instances"]) and data["instances"] >= 0):
        bad("/instances", "must be an integer >= 0")
    for key in ("cpus", "mem", "disk", "gpus"):
        if key in data and not (_is_number(data[key]) and data[key] >= 0):
            bad(f"/{key}", "must be a number >= 0")

    for key in ("cmd", "user"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            bad(f"/{key}", "must be a string")
    if data.get("cmd") and data.get("args"):
        bad("/", "AppDefinition must either contain one of 'cmd' or 'args', not both")
    if "args" in data and data["args"] is not None and not (
        isinstance(data["args"], list) and all(isinstance(a, str) for a in data["args"])
    ):
        bad("/args", "must be a list of strings")

    for key in ("env", "labels"):
        if key in data and not isinstance(data[key], dict):
            bad(f"/{key}", "must be an object")
    if isinstance(data.get("labels"), dict):
        for k, v in data["labels"].items():
            if not isinstance(v, str):
                bad(f"/labels/{k}", "must be a string")

    if "killSelection" in data and data["killSelection"] not in KILL_SELECTIONS:
        bad("/killSelection", f"must be one of {sorted(KILL_SELECTIONS)}")

    us = data.get("upgradeStrategy")
    if us is not None:
        if not isinstance(us, dict):
            bad("/upgradeStrategy", "must be an object")
        else:
            for key in ("minimumHealthCapacity", "maximumOverCapacity"):
                if key not in us:
                    continue
                v = us[key]
                if not _is_number(v):
                    bad(f"/upgradeStrategy/{key}", "must be a number between 0 and 1")
                elif v < 0:
                    bad(f"/upgradeStrategy/{key}", "is less than 0")
                elif v > 1:
                    bad(f"/upgradeStrategy/{key}", "is greater than 1")

    hcs = data.get("healthChecks")
    if hcs is not None:
        if not isinstance(hcs, list):
            bad("/healthChecks", "must be a list")
        else:
            for i, hc in enumerate(hcs):
                out.extend(_health_check_problems(hc, f"{prefix}/healthChecks({i})"))

    pds = data.get("portDefinitions")
    if pds is not None:
        if not isinstance(pds, list):
            bad("/portDefinitions", "must be a list")
        else:
            for i, pd in enumerate(pds):
                port = pd.get("port") if isinstance(pd, dict) else None
                if not (_is_int(port) and 0 <= port <= 65535):
                    bad(f"/portDefinitions({i})/port", "must be an integer between 0 and 65535")

    deps = data.get("dependencies")
    if deps is not None and not (isinstance(deps, list) and all(isinstance(d, str) for d in deps)):
        bad("/dependencies", "must be a list of app ids")
    return out


def _health_check_problems(hc: Any, path: str) -> list[Problem]:
    out: list[Problem] = []
    if not isinstance(hc, dict):
        return [Problem(path, "a health check must be an object")]
    protocol = hc.get("protocol", "HTTP")
    if protocol not in HEALTH_PROTOCOLS:
        out.append(Problem(f"{path}/protocol", f"must be one of {sorted(HEALTH_PROTOCOLS)}"))
    for key in ("gracePeriodSeconds", "intervalSeconds", "timeoutSeconds",
                "maxConsecutiveFailures", "delaySeconds", "portIndex"):
        if key in hc and not (_is_int(hc[key]) and hc[key] >= 0):
            out.append(Problem(f"{path}/{key}", "must be an integer >= 0"))
    if "path" in hc and not isinstance(hc["path"], str):
        out.append(Problem(f"{path}/path", "must be a string"))
    if protocol in ("COMMAND",) and not hc.get("command"):
        out.append(Problem(f"{path}/command", "is required for COMMAND health checks"))
    # No rule ties timeoutSeconds to intervalSeconds: Marathon's app health check validator
    # has none (that rule belongs to readiness checks), so neither may rotator.
    return out


def validate_app_definition(data: Any, source: str) -> None:
    """Refuse an invalid app definition before anything is sent (InputError names the
    file and the JSON path of the first problem)."""
    problems = app_problems(data)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(first.message + more, file=source, field=first.path)


def group_apps(definitions: list[tuple[str, Any]], root_group: str) -> list[dict[str, Any]]:
    """A group's app definitions (file name, parsed JSON), validated and with ids under
    ``root_group``; InputError naming the file and field of the first problem, including an
    app id defined in two files (Marathon would deploy only one of them)."""
    root = root_group.rstrip("/")
    seen: dict[str, str] = {}
    out = []
    for source, app in definitions:
        validate_app_definition(app, source)
        app_id = app["id"] if app["id"].startswith("/") else f"{root}/{app['id']}"
        app_id = normalize_id(app_id)
        if app_id in seen:
            raise InputError(f"app {app_id} is also defined in {seen[app_id]}", file=source,
                             field="/id")
        seen[app_id] = source
        out.append({**app, "id": app_id} if app["id"] != app_id else app)
    return out
