"""App definitions as Marathon 1.6 reads, checks, stores and emits them.

Marathon checks a definition in two passes, and so does the emulator:

1. its RAML-generated JSON readers (types under ``docs/docs/rest-api/public/api/v2/types``):
   wrong JSON types, missing required fields and the RAML ``minimum``/``maximum``/
   ``minLength``/``pattern``/``enum`` constraints, reported together as 422
   ``{"message": "Invalid JSON", "details": [{"path": "/cpus", "errors": ["error.min"]}]}``
   with Play JSON's error keys (``MarathonExceptionMapper``, ``RestResource.entity``);
2. the accord validators of ``AppValidation`` (``validateOldAppAPI`` and
   ``validateCanonicalAppAPI``) and ``SchedulingValidation``: 422
   ``{"message": "Object is not valid", ...}`` with accord's messages ("got 10, expected less
   than 10").

An app health check's ``timeoutSeconds`` may be as large as its ``intervalSeconds``: only
readiness checks must time out before their interval (``readinessCheckValidator``).

Marathon 1.6 also refuses a one-character ``cmd`` (``_.cmd.forall(_.length() > 1)``, meant as
"not empty", which the RAML ``minLength: 1`` already checks); the emulator accepts it.

Accepted definitions are normalised (defaults filled, ids made absolute, the deprecated
``container.docker.network`` moved to ``networks`` as Marathon's ``NetworkTranslation``
does, keys Marathon 1.6 does not emit dropped) so that stored specs can be compared to tell
a scale-only change from one that needs a rolling restart.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from rotator.apps.app_definition import normalize_id

from .model import ApiError, invalid

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
# Fields the API computes; clients (marathon-python's update_app) send them back.
READ_ONLY = {"version", "versionInfo", "tasks", "deployments", "tasksStaged", "tasksRunning",
             "tasksHealthy", "tasksUnhealthy", "lastTaskFailure", "taskStats",
             "readinessCheckResults"}

# --------------------------------------------------------------------------- RAML readers


@dataclass(frozen=True)
class _T:
    """One RAML type as its generated Play reader checks it."""

    kind: str  # str, int, num, bool, enum, array, object, map, any
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    values: tuple[str, ...] = ()
    item: _T | None = None
    fields: tuple[tuple[str, _T, bool], ...] = ()  # (name, type, required), RAML order


def _str(min_length: int | None = None, max_length: int | None = None,
         pattern: str | None = None) -> _T:
    return _T("str", min_length=min_length, max_length=max_length, pattern=pattern)


def _int(minimum: float | None = None, maximum: float | None = None) -> _T:
    return _T("int", minimum=minimum, maximum=maximum)


def _num(minimum: float | None = None, maximum: float | None = None) -> _T:
    return _T("num", minimum=minimum, maximum=maximum)


def _enum(*values: str) -> _T:
    return _T("enum", values=values)


def _array(item: _T, min_items: int | None = None) -> _T:
    return _T("array", item=item, min_length=min_items)


def _object(*fields: tuple[str, _T, bool]) -> _T:
    return _T("object", fields=fields)


def _opt(name: str, t: _T) -> tuple[str, _T, bool]:
    return name, t, False


def _req(name: str, t: _T) -> tuple[str, _T, bool]:
    return name, t, True


_BOOL, _ANY, _OBJECT = _T("bool"), _T("any"), _T("map", item=_T("any"))
_PATH_ID = _str(min_length=1, pattern=r"^(\/?((\.\.)|(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*"
                                      r"([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9]))?($|\/))+$")
_LEGACY_NAME = _str(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NETWORK_NAME = _str(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
_ANY_PORT = _int(0, 65535)
_LABELS = _T("map", item=_str())
_NETWORK_PROTOCOL = _enum("tcp", "udp", "udp,tcp")

_HEALTH_CHECK = _object(
    _opt("command", _object(_req("value", _str()))),
    _opt("gracePeriodSeconds", _int(0)),
    _opt("ignoreHttp1xx", _BOOL),
    _opt("intervalSeconds", _int(0)),
    _opt("maxConsecutiveFailures", _int(0)),
    _opt("path", _str()),
    _opt("port", _ANY_PORT),
    _opt("portIndex", _ANY_PORT),
    _opt("protocol", _enum("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_TCP", "MESOS_HTTP",
                           "MESOS_HTTPS")),
    _opt("ipProtocol", _enum("IPv4", "IPv6")),
    _opt("timeoutSeconds", _int()),  # no minimum in AppHealthCheck
    _opt("delaySeconds", _int(0)),
)
_READINESS_CHECK = _object(
    _opt("name", _str(min_length=1)),
    _opt("protocol", _enum("HTTP", "HTTPS")),
    _opt("path", _str(min_length=1, max_length=1024)),
    _opt("portName", _LEGACY_NAME),
    _opt("intervalSeconds", _int(0)),
    _opt("timeoutSeconds", _int(1)),
    _opt("httpStatusCodesForReady", _array(_int(100, 999), min_items=1)),
    _opt("preserveLastResponse", _BOOL),
)
_PORT_DEFINITION = _object(_opt("port", _ANY_PORT), _opt("labels", _LABELS),
                           _opt("name", _LEGACY_NAME), _opt("protocol", _NETWORK_PROTOCOL))
_PORT_MAPPING = _object(_opt("containerPort", _ANY_PORT), _opt("hostPort", _ANY_PORT),
                        _opt("labels", _LABELS), _opt("name", _LEGACY_NAME),
                        _opt("protocol", _NETWORK_PROTOCOL), _opt("servicePort", _ANY_PORT),
                        _opt("networkNames", _array(_NETWORK_NAME)))
_CONTAINER = _object(
    _opt("type", _enum("MESOS", "DOCKER")),
    _opt("docker", _object(
        _opt("credential", _OBJECT), _opt("pullConfig", _OBJECT), _opt("forcePullImage", _BOOL),
        _req("image", _str(min_length=1)), _opt("network", _enum("BRIDGE", "HOST", "NONE", "USER")),
        _opt("parameters", _array(_object(_req("key", _str(min_length=1)), _req("value", _str())))),
        _opt("portMappings", _array(_PORT_MAPPING)), _opt("privileged", _BOOL))),
    _opt("appc", _object(_req("image", _str(min_length=1)), _opt("id", _str(min_length=7)),
                         _opt("labels", _LABELS), _opt("forcePullImage", _BOOL))),
    _opt("volumes", _array(_OBJECT)),
    _opt("portMappings", _array(_PORT_MAPPING)),
)
_UPGRADE_STRATEGY = _object(_req("maximumOverCapacity", _num(0.0, 1.0)),
                            _req("minimumHealthCapacity", _num(0.0, 1.0)))
# App's properties in the order of app.raml (the order Play reports errors in).
_APP_FIELDS: tuple[tuple[str, _T, bool], ...] = (
    _req("id", _PATH_ID),
    _opt("acceptedResourceRoles", _array(_str())),
    _opt("args", _array(_str())),
    _opt("backoffFactor", _num(1.0)),
    _opt("backoffSeconds", _int(0)),
    _opt("cmd", _str(min_length=1)),
    _opt("constraints", _array(_array(_str()))),
    _opt("container", _CONTAINER),
    _opt("cpus", _num(0.001)),
    _opt("dependencies", _array(_PATH_ID)),
    _opt("disk", _num(0)),
    _opt("env", _T("map", item=_T("env"))),
    _opt("executor", _str()),
    _opt("fetch", _array(_object(_req("uri", _str(min_length=1, max_length=1024)),
                                 _opt("extract", _BOOL), _opt("executable", _BOOL),
                                 _opt("cache", _BOOL), _opt("destPath", _str(1, 1024))))),
    _opt("healthChecks", _array(_HEALTH_CHECK)),
    _opt("instances", _int(0)),
    _opt("labels", _LABELS),
    _opt("maxLaunchDelaySeconds", _int(0)),
    _opt("mem", _num(0)),
    _opt("gpus", _int(0)),
    _opt("ipAddress", _OBJECT),
    _opt("networks", _array(_object(_opt("name", _NETWORK_NAME),
                                    _opt("mode", _enum("container", "container/bridge", "host")),
                                    _opt("labels", _LABELS)))),
    _opt("ports", _array(_ANY_PORT)),
    _opt("portDefinitions", _array(_PORT_DEFINITION)),
    _opt("readinessChecks", _array(_READINESS_CHECK)),
    _opt("residency", _OBJECT),
    _opt("requirePorts", _BOOL),
    _opt("secrets", _T("map", item=_object(_req("source", _str(min_length=1))))),
    _opt("taskKillGracePeriodSeconds", _int(0)),
    _opt("upgradeStrategy", _UPGRADE_STRATEGY),
    _opt("uris", _array(_str(min_length=1, max_length=1024))),
    _opt("user", _str()),
    _opt("killSelection", _enum("YOUNGEST_FIRST", "OLDEST_FIRST")),
    _opt("unreachableStrategy", _T("unreachable")),
    _opt("tty", _BOOL),
)


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())


def _read(value: Any, t: _T, path: str, errors: list[tuple[str, str]]) -> None:
    """Append Play's errors for ``value`` read as ``t`` (each with its JSON path)."""
    def bad(message: str) -> None:
        errors.append((path, message))

    if t.kind == "any":
        return
    if t.kind == "str":
        if not isinstance(value, str):
            return bad("error.expected.jsstring")
        if t.max_length is not None and len(value) > t.max_length:
            bad("error.maxLength")
        if t.min_length is not None and len(value) < t.min_length:
            bad("error.minLength")
        if t.pattern is not None and not re.fullmatch(t.pattern, value):
            bad("error.pattern")
    elif t.kind in ("int", "num"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return bad("error.expected.jsnumber")
        if t.kind == "int" and not _is_int(value):
            return bad("error.expected.int")
        if t.maximum is not None and value > t.maximum:
            bad("error.max")
        if t.minimum is not None and value < t.minimum:
            bad("error.min")
    elif t.kind == "bool":
        if not isinstance(value, bool):
            bad("error.expected.jsboolean")
    elif t.kind == "enum":
        # The generated readers match enum literals case-insensitively.
        if not isinstance(value, str) or value.lower() not in {v.lower() for v in t.values}:
            bad("error.unknown.enum.literal")
    elif t.kind == "array":
        if not isinstance(value, list):
            return bad("error.expected.jsarray")
        if t.min_length is not None and len(value) < t.min_length:
            bad("error.minLength")
        assert t.item is not None
        for i, item in enumerate(value):
            _read(item, t.item, f"{path}({i})", errors)
    elif t.kind == "map":
        if not isinstance(value, dict):
            return bad("error.expected.jsobject")
        assert t.item is not None
        for key, item in value.items():
            _read(item, t.item, f"{path}/{key}", errors)
    elif t.kind == "object":
        if not isinstance(value, dict):
            return bad("error.expected.jsobject")
        _read_fields(value, t.fields, path, errors)
    elif t.kind == "env":  # a plain value or {"secret": "<name>"}
        if isinstance(value, dict):
            _read_fields(value, (_req("secret", _str()),), path, errors)
        elif not isinstance(value, str):
            bad("error.expected.jsstring")
    elif t.kind == "unreachable":  # "disabled" or {inactiveAfterSeconds, expungeAfterSeconds}
        if isinstance(value, dict):
            _read_fields(value, (_opt("inactiveAfterSeconds", _int(0)),
                                 _opt("expungeAfterSeconds", _int(0))), path, errors)
        elif value != "disabled":
            bad("error.unknown.enum.literal")


def _read_fields(data: dict[str, Any], fields: tuple[tuple[str, _T, bool], ...], path: str,
                 errors: list[tuple[str, str]]) -> None:
    for name, t, required in fields:
        value = data.get(name)
        if value is None:  # JSON null reads as absent
            if required:
                errors.append((f"{path}/{name}", "error.path.missing"))
            continue
        _read(value, t, f"{path}/{name}", errors)


def raml_problems(data: Any, prefix: str = "", *, update: bool = False) -> list[tuple[str, str]]:
    """What Marathon's App (or, with ``update``, AppUpdate: nothing required) reader refuses."""
    if not isinstance(data, dict):
        return [(prefix or "/", "error.expected.jsobject")]
    errors: list[tuple[str, str]] = []
    fields = tuple((n, t, False) for n, t, _ in _APP_FIELDS) if update else _APP_FIELDS
    _read_fields(data, fields, prefix, errors)
    return errors


def invalid_json(problems: list[tuple[str, str]]) -> ApiError:
    grouped: dict[str, list[str]] = {}
    for path, message in problems:
        if message not in grouped.setdefault(path, []):
            grouped[path].append(message)
    return ApiError(422, {"message": "Invalid JSON",
                          "details": [{"path": p, "errors": e} for p, e in grouped.items()]})


def check_group_update(body: Any, group_id: str, prefix: str = "") -> None:
    """A GroupUpdate read as Marathon reads it: the apps' RAML errors first (422 Invalid
    JSON), then apps that are not direct children of the group (``validNestedApp``)."""
    if not isinstance(body, dict):
        return
    raml: list[tuple[str, str]] = []
    _collect_group_raml(body, prefix, raml)
    if raml:
        raise invalid_json(raml)
    nested = _nested_app_problems(body, normalize_id(group_id), prefix)
    if nested:
        raise invalid(nested)


def _collect_group_raml(body: dict[str, Any], prefix: str, out: list[tuple[str, str]]) -> None:
    for i, app in enumerate(body.get("apps") or []):
        app = {k: v for k, v in app.items() if k not in READ_ONLY} if isinstance(app, dict) else app
        out.extend(raml_problems(app, f"{prefix}/apps({i})"))
    for j, sub in enumerate(body.get("groups") or []):
        if isinstance(sub, dict):
            _collect_group_raml(sub, f"{prefix}/groups({j})", out)


def _nested_app_problems(body: dict[str, Any], group: str, prefix: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for i, app in enumerate(body.get("apps") or []):
        if isinstance(app, dict) and isinstance(app.get("id"), str):
            if normalize_id("..", normalize_id(app["id"], group)) != group:
                problems.append((f"{prefix}/apps({i})/id",
                                 f"Identifier is not child of {group}. Hint: use relative paths."))
    for j, sub in enumerate(body.get("groups") or []):
        if isinstance(sub, dict) and isinstance(sub.get("id"), str):
            problems += _nested_app_problems(sub, normalize_id(sub["id"], group),
                                             f"{prefix}/groups({j})")
    return problems


def check_app_list(bodies: Any) -> None:
    """``PUT /v2/apps`` reads a list of AppUpdates: their RAML errors come first."""
    if not isinstance(bodies, list):
        return
    raml: list[tuple[str, str]] = []
    for i, body in enumerate(bodies):
        if isinstance(body, dict):
            raml += raml_problems({k: v for k, v in body.items() if k not in READ_ONLY},
                                  f"({i})", update=True)
    if raml:
        raise invalid_json(raml)


# --------------------------------------------------------------------------- accord validation

_CONSTRAINT_OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
_MESOS_PROTOCOLS = ("COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")


def _constraint_problem(c: list[Any]) -> str | None:
    """SchedulingValidation.complyWithAppConstraintRules."""
    if len(c) < 2 or len(c) > 3:
        return "Each constraint must have either 2 or 3 fields"
    field_name, operator = c[0], str(c[1]).upper()
    value = c[2] if len(c) == 3 else None
    if not field_name:
        return "illegal constraint specification"
    if operator not in _CONSTRAINT_OPERATORS:
        return ("operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, "
                "MAX_PER, UNLIKE or IS")
    if operator == "UNIQUE" and value is not None:
        return "UNIQUE does not accept a value"
    if operator == "GROUP_BY" and value is not None and not re.fullmatch(r"[+-]?\d+", value):
        return "GROUP BY must define an integer value or else no value at all"
    if operator == "MAX_PER" and (value is None or not re.fullmatch(r"[+-]?\d+", value)):
        return "MAX_PER requires an integer value"
    if operator in ("LIKE", "UNLIKE"):
        if value is None:
            return "LIKE and UNLIKE require a non-empty, regular expression value"
        try:
            re.compile(value)
        except re.error:
            return "is not a valid regular expression"
    if operator == "IS" and not re.fullmatch(r"[a-zA-Z0-9_/.-]*", value or ""):
        return ("IS only supports Mesos text and float values (see "
                "http://mesos.apache.org/documentation/latest/attributes-resources/)")
    return None


def _network_modes(data: dict[str, Any]) -> list[str]:
    networks = data.get("networks") or []
    return [str(n.get("mode") or "container").lower() for n in networks] or ["host"]


def old_api_problems(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """validateOldAppAPI: how the deprecated fields may be combined (checked before
    Marathon translates them)."""
    out: list[tuple[str, str]] = []
    docker = (data.get("container") or {}).get("docker") or {}
    if docker.get("network") and data.get("networks"):
        out.append((f"{prefix}/", "must not specify both container.docker.network and networks"))
    if data.get("ipAddress") and data.get("networks"):
        out.append((f"{prefix}/", "must not specify both networks and ipAddress"))
    ports = [p for p in data.get("ports") or [] if p != 0]
    if len(set(ports)) != len(ports):
        out.append((f"{prefix}/", "ports must be unique"))
    if data.get("ports") and data.get("portDefinitions") and \
            [pd.get("port", 0) for pd in data["portDefinitions"]] != data["ports"]:
        out.append((f"{prefix}/", "cannot specify both ports and port definitions"))
    return out


def canonical_problems(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """validateCanonicalAppAPI (and the scheduling rules it includes), on the translated
    definition: only rules about fields the emulator reads (volumes, secret references and
    external volume providers are not checked)."""
    out: list[tuple[str, str]] = []

    def bad(path: str, message: str) -> None:
        out.append((f"{prefix}{path}", message))

    container = data.get("container") or {}
    docker = container.get("docker") or {}
    app_id = normalize_id(data.get("id") or "/")
    if app_id == "/":
        bad("/", "must not be root")
    modes = _network_modes(data)
    mappings = container.get("portMappings") or docker.get("portMappings") or []
    if "host" in modes and container.get("portMappings"):
        bad("/", "portMappings are not allowed with host-networking")
    if any(m != "host" for m in modes) and data.get("portDefinitions"):
        bad("/", "portDefinitions are only allowed with host-networking")

    pds = data.get("portDefinitions") or []
    names = [pd["name"] for pd in pds if pd.get("name")]
    if len(set(names)) != len(names):
        bad("/portDefinitions", "Port names must be unique.")
    numbers = [pd.get("port", 0) for pd in pds if pd.get("port", 0) != 0]
    if len(set(numbers)) != len(numbers):
        bad("/portDefinitions", "Ports must be unique.")

    cmd, args = bool(data.get("cmd")), bool(data.get("args"))
    engine = str(container.get("type") or "DOCKER").upper() if container else ""
    has_image = bool(container) and (
        (engine == "DOCKER" and docker and not container.get("appc"))
        or (engine == "MESOS" and bool(docker) != bool(container.get("appc"))))
    if not ((cmd != args) or (not (cmd and args) and has_image)):
        bad("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
    if container and engine == "DOCKER" and not docker:
        bad("/container/docker", "not defined")

    port_count = len(mappings if any(m != "host" for m in modes) else (
        pds or [{"port": p} for p in data.get("ports") or []] or [{"port": 0}]))
    for i, hc in enumerate(data.get("healthChecks") or []):
        protocol = str(hc.get("protocol") or "HTTP").upper()
        if not hc.get("command") and protocol in ("HTTP", "HTTPS", "TCP"):
            index = hc.get("portIndex")
            ok = (0 <= index < port_count) if index is not None else (
                hc.get("port") is not None or port_count == 1)
            if not ok:
                bad(f"/healthChecks({i})", "Health check port indices must address an element "
                                           "of the ports array or container port mappings.")
        if str(hc.get("ipProtocol") or "IPv4").lower() == "ipv6" and not (
                protocol in ("MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP") and engine == "DOCKER"):
            bad(f"/healthChecks({i})", "IPv6 can only be used for container type DOCKER and "
                                       "Mesos http/https/tcp health checks")
    health = data.get("healthChecks") or []
    mesos = sum(1 for hc in health if hc.get("command")
                or str(hc.get("protocol") or "HTTP").upper() in _MESOS_PROTOCOLS)
    if mesos - sum(1 for hc in health if hc.get("command")) > 1:
        bad("/", "AppDefinition can contain at most one Mesos health check")

    if data.get("acceptedResourceRoles") == []:
        bad("/acceptedResourceRoles", "must not be empty")
    if (data.get("gpus") or 0) > 0:
        if engine == "DOCKER":
            bad("/", "GPU resources only work with the Mesos containerizer")
        bad("/", "Feature gpu_resources is not enabled. Enable with --enable_features gpu_resources)")
    if data.get("secrets"):
        bad("/secrets", "Feature secrets is not enabled. Enable with --enable_features secrets)")

    readiness = data.get("readinessChecks") or []
    if len(readiness) > 1:
        bad("/readinessChecks", f"got {len(readiness)}, expected 1 or less")
    port_names = {m.get("name") for m in mappings} if mappings else {pd.get("name") for pd in pds}
    for i, rc in enumerate(readiness):
        rc = {**READINESS_DEFAULTS, **rc}
        if rc["portName"] not in port_names:
            bad(f"/readinessChecks({i})/portName",
                f"No port definition reference for portName {rc['portName']}")
        if not rc["timeoutSeconds"] < rc["intervalSeconds"]:
            bad(f"/readinessChecks({i})/timeoutSeconds",
                f"got {rc['timeoutSeconds']}, expected less than {rc['intervalSeconds']}")

    labels = data.get("labels") or {}
    if labels.get("MARATHON_SINGLE_INSTANCE_APP") == "true":
        if (data.get("instances") or 1) > 1:
            bad("/", "Single instance app may only have one instance")
        strategy = data.get("upgradeStrategy")
        if strategy is not None:
            for key in ("minimumHealthCapacity", "maximumOverCapacity"):
                if strategy.get(key) != 0:
                    bad(f"/upgradeStrategy/{key}", f"got {float(strategy.get(key))}, expected 0.0")
    for i, c in enumerate(data.get("constraints") or []):
        problem = _constraint_problem(c)
        if problem:
            bad(f"/constraints({i})", problem)
    return out


# --------------------------------------------------------------------------- normalisation

_DOCKER_NETWORKS = {"HOST": "host", "BRIDGE": "container/bridge", "USER": "container"}


def _translate_networks(data: dict[str, Any]) -> dict[str, Any]:
    """Marathon's NetworkTranslation: the deprecated ``container.docker.network`` (and
    ``docker.portMappings``) become ``networks`` and ``container.portMappings``."""
    docker = (data.get("container") or {}).get("docker") or {}
    if not docker.get("network") and not docker.get("portMappings"):
        return data
    data = copy.deepcopy(data)
    container, docker = data["container"], data["container"]["docker"]
    network = str(docker.pop("network", "") or "").upper()
    if network in _DOCKER_NETWORKS and not data.get("networks"):
        data["networks"] = [{"mode": _DOCKER_NETWORKS[network]}]
    if docker.get("portMappings") is not None:
        container.setdefault("portMappings", docker.pop("portMappings"))
    return data


def _canonical(value: Any, t: _T) -> Any:
    """Enum literals as Marathon stores them (they are read case-insensitively)."""
    if t.kind == "enum" and isinstance(value, str):
        return next((v for v in t.values if v.lower() == value.lower()), value)
    if t.kind == "array" and isinstance(value, list) and t.item is not None:
        return [_canonical(v, t.item) for v in value]
    if t.kind == "object" and isinstance(value, dict):
        types = {name: sub for name, sub, _ in t.fields}
        return {k: _canonical(v, types[k]) if k in types else v for k, v in value.items()}
    return value


def normalize(data: dict[str, Any], base: str = "/", prefix: str = "") -> dict[str, Any]:
    """A full, validated, stored spec from a definition (raises 422 ApiError)."""
    raml = raml_problems(data, prefix)
    if raml:
        raise invalid_json(raml)
    problems = old_api_problems(data, prefix)
    if problems:
        raise invalid(problems)
    data = _translate_networks(_canonical(data, _T("object", fields=_APP_FIELDS)))
    if data.get("constraints"):
        data["constraints"] = [[c[0], str(c[1]).upper(), *c[2:]] if len(c) > 1 else c
                               for c in data["constraints"]]
    problems = canonical_problems(data, prefix)
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
