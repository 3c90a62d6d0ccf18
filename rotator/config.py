"""Load and validate ``groups/<name>/group.yaml`` and ``policies/<name>.yaml``.

Every problem is reported as an InputError naming the file, the field and
(where the YAML has it) the line, before anything in the world changes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from rotator.durations import parse_duration
from rotator.errors import InputError
from rotator.yamlsource import YamlDocument, load_yaml

GROUP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Duration = Annotated[float, BeforeValidator(parse_duration)]


def validate_ami(ami: str) -> str:
    if not AMI_ID.match(ami or ""):
        raise InputError(
            f"invalid AMI id {ami!r}: expected 'ami-' followed by 8 or 17 hex digits",
            field="--ami",
        )
    return ami


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str | None) -> str | None:
    if value is not None and not ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


# --------------------------------------------------------------------------
# group.yaml


class Credentials(_Strict):
    """Where a group's AWS credentials come from: a profile, or env variable *names*."""

    profile: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    session_token_env: str | None = None

    _check_env = field_validator(
        "access_key_id_env", "secret_access_key_env", "session_token_env"
    )(_env_name)

    @model_validator(mode="after")
    def _one_source(self) -> Credentials:
        env = self.access_key_id_env or self.secret_access_key_env
        if self.profile and env:
            raise ValueError("give either profile or the *_env variable names, not both")
        if not self.profile and not (self.access_key_id_env and self.secret_access_key_env):
            raise ValueError(
                "give a profile, or both access_key_id_env and secret_access_key_env"
            )
        return self


class AwsSettings(_Strict):
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    partition: Literal["aws", "aws-cn"]
    credentials: Credentials

    @model_validator(mode="after")
    def _partition_matches_region(self) -> AwsSettings:
        expected = "aws-cn" if self.region.startswith("cn-") else "aws"
        if self.partition != expected:
            raise ValueError(
                f"region {self.region} belongs to partition {expected}, not {self.partition}"
            )
        return self


class TerraformSettings(_Strict):
    backend: dict[str, str | int | bool] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    # names in vars whose values are secret: redacted from every message and log
    secret_vars: list[str] = Field(default_factory=list)
    var_files: list[str] = Field(default_factory=list)
    lock_timeout: Duration = 60.0

    @model_validator(mode="after")
    def _secret_vars_exist(self) -> TerraformSettings:
        unknown = [n for n in self.secret_vars if n not in self.vars]
        if unknown:
            raise ValueError(f"secret_vars names variables not in vars: {unknown}")
        return self


class BasicAuth(_Strict):
    username_env: str
    password_env: str

    _check = field_validator("username_env", "password_env")(_env_name)


class TokenAuth(_Strict):
    """A token sent as ``Authorization: token=<token>`` (DC/OS and Marathons behind it)."""

    token_env: str

    _check = field_validator("token_env")(_env_name)


class TlsConfig(_Strict):
    """TLS towards a server: a CA bundle to trust, a client certificate, verification."""

    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert")
        return self


class MarathonSettings(_Strict):
    apps_dir: str = "apps"
    root_group: str = Field(default="/", pattern=r"^/([a-z0-9.-]+(/[a-z0-9.-]+)*)?$")
    credentials: BasicAuth | TokenAuth | None = None
    tls: TlsConfig = TlsConfig()
    on_conflict: Literal["wait", "force"] = "wait"


class ConsulSettings(_Strict):
    address: str = Field(pattern=r"^https?://[^\s/]+(:\d+)?/?$")
    datacenter: str
    token_env: str | None = None
    tls: TlsConfig = TlsConfig()
    # How a Marathon app id maps to its Consul service name: {name} is the last
    # path segment, {path} the whole id with '/' turned into '-'. An app label
    # SERVICE_NAME (registrator's convention) overrides it.
    service_name: str = "{name}"
    # What registers the slot's tasks in Consul, and so where rotator writes the slot's
    # tag into the app definitions it sends (see rotator.apps.slot_identity).
    tagging: Literal["registrator", "marathon-consul"] = "registrator"

    _check = field_validator("token_env")(_env_name)

    @field_validator("service_name")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(name="x", path="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unknown placeholder {exc}; use {{name}} or {{path}}") from None
        return value


class RecordSettings(_Strict):
    zone: str
    name: str
    type: Literal["CNAME", "A"] = "CNAME"
    ttl: int = Field(default=60, ge=0, le=172800)

    @model_validator(mode="after")
    def _name_in_zone(self) -> RecordSettings:
        zone = self.zone.rstrip(".")
        name = self.name.rstrip(".")
        if name != zone and not name.endswith("." + zone):
            raise ValueError(f"record {self.name} is not inside zone {self.zone}")
        return self


# Load balancer and target group names: at most 32 letters, digits or hyphens, not
# beginning or ending with a hyphen (ELBv2 API reference, CreateLoadBalancer/CreateTargetGroup).
LB_NAME = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$"


class EdgeSettings(_Strict):
    """The group's part of its region's edge: an ALB whose listener forwards to one target
    group per slot, by weight; the slot's proxies are registered by private IP."""

    load_balancer: str = Field(pattern=LB_NAME)
    port: int = Field(default=80, ge=1, le=65535)
    target_groups: dict[Literal["blue", "green"], Annotated[str, Field(pattern=LB_NAME)]]
    role: str = "proxy"
    # seconds a deregistered target keeps its in-flight requests (AWS: 0-3600, default 300)
    deregistration_delay: int = Field(default=300, ge=0, le=3600)

    @field_validator("load_balancer")
    @classmethod
    def _not_internal(cls, value: str) -> str:
        if value.startswith("internal-"):
            raise ValueError("a load balancer name must not begin with 'internal-'")
        return value

    @model_validator(mode="after")
    def _both_slots(self) -> EdgeSettings:
        if set(self.target_groups) != {"blue", "green"}:
            raise ValueError("target_groups needs one target group for blue and one for green")
        return self


class TrafficSettings(_Strict):
    records: list[RecordSettings] = Field(default_factory=list)
    edge: EdgeSettings | None = None


class GroupConfig(_Strict):
    name: str = Field(pattern=GROUP_NAME.pattern)
    description: str = ""
    aws: AwsSettings
    terraform: TerraformSettings = TerraformSettings()
    marathon: MarathonSettings = MarathonSettings()
    consul: ConsulSettings
    traffic: TrafficSettings = TrafficSettings()
    peer: str | None = None
    # the slave of a master/slave pair: its records carry weight only after a failover
    standby: bool = False
    default_policy: str = "blue-green"

    # filled by the loader, not by the file
    directory: Path = Field(default=Path("."), exclude=True)


# --------------------------------------------------------------------------
# policies/<name>.yaml


class ConsulGate(_Strict):
    min_passing_ratio: float = Field(default=1.0, gt=0, le=1)


class ElbGate(_Strict):
    min_in_service_ratio: float = Field(default=1.0, gt=0, le=1)


class MarathonGate(_Strict):
    require_healthy: bool = True


class MetricsGate(_Strict):
    """Canary analysis by metrics (as Argo Rollouts' AnalysisTemplates and Kayenta do, from
    CloudWatch): the candidate's error ratio and p99 latency over the last ``window``,
    against absolute limits and against the stable slot as baseline."""

    window: Duration = 120.0
    # fewer requests than this in the window is no data: never a pass
    min_requests: int = Field(default=50, ge=1)
    max_error_ratio: float | None = Field(default=0.05, ge=0, le=1)
    # e.g. 0.005: the candidate's error ratio at most 0.5 points above the stable's
    max_error_ratio_over_stable: float | None = Field(default=0.005, ge=0, le=1)
    max_p99: Duration | None = None
    max_p99_ratio_to_stable: float | None = Field(default=1.5, gt=0)
    # a p99 above the stable's by less than this never fails the ratio: at a few
    # milliseconds, scheduling and GC pauses move a p99 by more than any ratio means
    p99_tolerance: Duration = 0.025
    # consecutive failed evaluations before the gate fails
    failure_limit: int = Field(default=2, ge=1, le=100)


class RetireSettings(_Strict):
    """When an old slot (or a rolled-back candidate) may be destroyed: once it is quiet,
    observed, not guessed. Its weight is 0; then at least the records' largest TTL counted
    from the change being INSYNC, its edge targets drained, and its own load balancer's
    RequestCount at or below ``max_requests`` for ``quiet_for`` (CloudWatch)."""

    quiet_for: Duration = 120.0
    max_requests: int = Field(default=0, ge=0)
    max_wait: Duration = 1800.0
    then: Literal["destroy", "pause"] = "pause"  # when max_wait passes without quiet


class GateConfig(_Strict):
    consul: ConsulGate | None = ConsulGate()
    elb: ElbGate | None = ElbGate()  # the slot's own ELB: where its records point
    marathon: MarathonGate | None = MarathonGate()
    consecutive_successes: int = Field(default=1, ge=1, le=1000)
    failure_threshold: int = Field(default=1, ge=1, le=1000)
    no_data: Duration = 60.0
    metrics: MetricsGate | None = None
    # how long the gate must hold (a soak); 0 = the first success passes
    duration: Duration = 0.0
    timeout: Duration | None = None


class WeightStep(_Strict):
    weight: int = Field(ge=0, le=100)


class PauseStep(_Strict):
    pause: Duration


class GateStep(_Strict):
    gate: GateConfig


class ApproveStep(_Strict):
    approve: dict[str, Any] = Field(default_factory=dict)

    @field_validator("approve", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value is None else value  # `- approve:` with nothing after it


_STEP_TAGS = {"weight": "WeightStep", "pause": "PauseStep", "gate": "GateStep",
              "approve": "ApproveStep"}
STEPS_EXPECTED = "weight: N, pause: 5m, gate: {...} or approve: {}"


def step_kind(value: Any) -> str | None:
    """A policy step is a mapping with one key, its kind (the model's name is the tag, which
    error locations leave out); an unknown key is returned as is, for the message."""
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return _STEP_TAGS.get(key, key)
    return None


PolicyStep = Annotated[
    Annotated[WeightStep, Tag("WeightStep")] | Annotated[PauseStep, Tag("PauseStep")]
    | Annotated[GateStep, Tag("GateStep")] | Annotated[ApproveStep, Tag("ApproveStep")],
    Discriminator(step_kind),
]


class Deadlines(_Strict):
    provision: Duration = 1800.0
    deploy: Duration = 900.0
    verify: Duration = 600.0
    shift: Duration = 600.0
    retire: Duration = 1800.0
    rollback: Duration = 1800.0


class Policy(_Strict):
    name: str = Field(pattern=GROUP_NAME.pattern)
    description: str = ""
    steps: list[PolicyStep]
    gate: GateConfig = GateConfig()  # used by verify, and watched through shift and bake
    deadlines: Deadlines = Deadlines()
    retain_stable: Duration = 0.0
    retire: RetireSettings = RetireSettings()
    on_failure: Literal["rollback", "pause"] = "rollback"
    keep_failed_candidate: bool = False

    @model_validator(mode="after")
    def _weights_climb_to_100(self) -> Policy:
        weights = [s.weight for s in self.steps if isinstance(s, WeightStep)]
        if not weights:
            raise ValueError("steps: a policy needs at least one weight step, ending at 100")
        if weights[-1] != 100:
            raise ValueError(f"steps: the last weight step must be 100, not {weights[-1]}")
        for a, b in zip(weights, weights[1:], strict=False):
            if b <= a:
                raise ValueError(f"steps: weights must increase ({a} then {b})")
        if weights[0] <= 0:
            raise ValueError("steps: the first weight must be above 0")
        return self

    def fingerprint(self) -> str:
        """Stable hash: a rotation refuses to resume under an edited policy."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------
# loading


def _errors_from_validation(exc: ValidationError, doc: YamlDocument) -> list[InputError]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        # pydantic adds union member names and "function-after" to the path; drop them
        loc = tuple(p for p in loc if not (isinstance(p, str) and "[" in p))
        field = ".".join(str(p) for p in loc) or "(document)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "union_tag_invalid" and err["ctx"]["discriminator"] == "step_kind()":
            msg = f"unknown step {err['ctx']['tag']!r}; expected {STEPS_EXPECTED}"
        elif err["type"] == "union_tag_not_found" and err["ctx"]["discriminator"] == "step_kind()":
            msg = f"expected one key: {STEPS_EXPECTED}"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        out.append(InputError(msg, file=str(doc.path), field=field, line=doc.line_of(loc)))
    return out


class ConfigErrors(InputError):
    """Several input errors found at once (``rotate validate`` lists them all)."""

    def __init__(self, errors: list[InputError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def _load_named(model: type[BaseModel], path: Path, name: str, kind: str,
                known: Callable[[], list[str]], where: str) -> Any:
    """The ``kind`` called ``name`` from ``path``: refused when there is none (naming the
    ``known`` ones) or when the name it gives itself differs from ``where`` it is."""
    if not GROUP_NAME.match(name) or not path.is_file():
        raise InputError(f"unknown {kind} {name!r} (known: {', '.join(known()) or 'none'})",
                         file=str(path))
    loaded = _load_model(model, path)
    if loaded.name != name:
        raise InputError(f"name is {loaded.name!r} but {where}", file=str(path), field="name",
                         line=load_yaml(path).line_of(("name",)))
    return loaded


def _load_model(model: type[BaseModel], path: Path, extra: dict[str, Any] | None = None):
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise InputError("expected a mapping at the top of the file", file=str(path), line=1)
    data = dict(doc.data)
    if extra:
        data.update(extra)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = _errors_from_validation(exc, doc)
        raise (errors[0] if len(errors) == 1 else ConfigErrors(errors)) from None


class Project:
    """The folder holding ``groups/`` and ``policies/``."""

    def __init__(self, root: Path):
        self.root = root
        self.groups_dir = root / "groups"
        self.policies_dir = root / "policies"

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / "groups").is_dir() and (candidate / "policies").is_dir():
                return cls(candidate)
        raise InputError(
            f"no groups/ and policies/ folders in {here} or its parents "
            "(run rotate from the project folder, or set ROTATOR_ROOT)"
        )

    def group_names(self) -> list[str]:
        if not self.groups_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.groups_dir.iterdir() if (p / "group.yaml").is_file()
        )

    def policy_names(self) -> list[str]:
        if not self.policies_dir.is_dir():
            return []
        return sorted(p.stem for p in self.policies_dir.glob("*.yaml"))

    def group(self, name: str) -> GroupConfig:
        path = self.groups_dir / name / "group.yaml"
        group = _load_named(GroupConfig, path, name, "group", self.group_names,
                            f"the folder is {name!r}")
        return group.model_copy(update={"directory": path.parent})

    def policy(self, name: str) -> Policy:
        path = self.policies_dir / f"{name}.yaml"
        return _load_named(Policy, path, name, "policy", self.policy_names,
                           f"the file is {name}.yaml")

    def apps(self, group: GroupConfig) -> list[tuple[Path, dict[str, Any]]]:
        """The group's Marathon app definitions (shape checked by the apps adapter)."""
        folder = group.directory / group.marathon.apps_dir
        out = []
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
            if not isinstance(data, dict):
                raise InputError("expected one app definition (a JSON object)", file=str(path))
            out.append((path, data))
        return out

    def validate_all(self) -> tuple[list[GroupConfig], list[Policy], list[InputError]]:
        """Load everything; return what loaded and every error found."""
        errors: list[InputError] = []
        groups: list[GroupConfig] = []
        policies: list[Policy] = []
        for name in self.policy_names():
            try:
                policies.append(self.policy(name))
            except ConfigErrors as exc:
                errors.extend(exc.errors)
            except InputError as exc:
                errors.append(exc)
        policy_names = {p.name for p in policies} | set(self.policy_names())
        partition_of_source: dict[str, tuple[str, str]] = {}
        for name in self.group_names():
            try:
                group = self.group(name)
            except ConfigErrors as exc:
                errors.extend(exc.errors)
                continue
            except InputError as exc:
                errors.append(exc)
                continue
            groups.append(group)
            errors.extend(self._cross_check(group, policy_names))
            errors.extend(_credentials_cross_partition(group, partition_of_source))
        errors.extend(self.address_conflicts(groups))
        return groups, policies, errors

    def edges(self) -> dict[str, tuple[Path, dict[str, Any]]]:
        """The regions' edges (``edge/*/edge.yaml``), by region."""
        out = {}
        for path in sorted((self.root / "edge").glob("*/edge.yaml")):
            data = load_yaml(path).data or {}
            if isinstance(data, dict) and data.get("region"):
                out[str(data["region"])] = (path, data)
        return out

    def address_conflicts(self, groups: list[GroupConfig]) -> list[InputError]:
        """Every slot of a region peers with the region's edge VPC, whose route table holds a
        route to each slot: no slot CIDR may overlap the edge's, nor another slot's."""
        edges = self.edges()
        errors = []
        taken: dict[str, list[tuple[ipaddress.IPv4Network, str]]] = {}
        for region, (path, data) in edges.items():
            try:
                taken[region] = [(ipaddress.ip_network(str(data.get("vpc_cidr"))),
                                  f"the edge VPC ({path})")]
            except ValueError:
                errors.append(InputError("not a CIDR", file=str(path), field="vpc_cidr"))
        for group in groups:
            cidrs = group.terraform.vars.get("slot_cidrs") or {}
            here = str(group.directory / "group.yaml")
            for slot, cidr in sorted(cidrs.items()) if isinstance(cidrs, dict) else []:
                field = f"terraform.vars.slot_cidrs.{slot}"
                try:
                    net = ipaddress.ip_network(str(cidr))
                except ValueError:
                    errors.append(InputError(f"{cidr!r} is not a CIDR", file=here, field=field))
                    continue
                seen = taken.setdefault(group.aws.region, [])
                for other, what in seen:
                    if net.overlaps(other):
                        errors.append(InputError(
                            f"{net} overlaps {other} of {what}: the edge routes to every slot "
                            "of the region, so their addresses must not overlap",
                            file=here, field=field))
                seen.append((net, f"{group.name} {slot}"))
        return errors

    def check_credentials(self, group: GroupConfig,
                          environ: Mapping[str, str] | None = None) -> None:
        """Refuse ``group`` when a group of the other partition names the same credential
        source (China and global keys are separate): at every rotation, not only in
        ``rotate validate``. Groups that do not load are ``validate``'s business."""
        seen: dict[str, tuple[str, str]] = {}
        key_id = _key_id(group, environ)
        for name in self.group_names():
            if name == group.name:
                continue
            try:
                other = self.group(name)
            except InputError:
                continue
            _credentials_cross_partition(other, seen)
            if (key_id and other.aws.partition != group.aws.partition
                    and _key_id(other, environ) == key_id):
                raise InputError(
                    f"{group.aws.credentials.access_key_id_env} holds the same access key as "
                    f"{other.aws.credentials.access_key_id_env} of {other.name} (partition "
                    f"{other.aws.partition}): each partition needs its own credentials",
                    file=str(group.directory / "group.yaml"), field="aws.credentials")
        errors = _credentials_cross_partition(group, seen)
        if errors:
            raise errors[0]

    def _cross_check(self, group: GroupConfig, policy_names: Iterable[str]) -> list[InputError]:
        path = str(group.directory / "group.yaml")
        doc = load_yaml(group.directory / "group.yaml")
        errors = []
        if group.default_policy not in set(policy_names):
            errors.append(InputError(
                f"unknown policy {group.default_policy!r}",
                file=path, field="default_policy", line=doc.line_of(("default_policy",)),
            ))
        if group.standby and group.peer is None:
            errors.append(InputError("a standby group needs a peer", file=path, field="standby",
                                     line=doc.line_of(("standby",))))
        if group.peer is not None:
            if group.peer == group.name:
                errors.append(InputError("a group cannot be its own peer", file=path,
                                         field="peer", line=doc.line_of(("peer",))))
            elif group.peer not in self.group_names():
                errors.append(InputError(f"unknown peer group {group.peer!r}", file=path,
                                         field="peer", line=doc.line_of(("peer",))))
        if not (group.directory / group.marathon.apps_dir).is_dir():
            errors.append(InputError(
                f"apps folder {group.marathon.apps_dir!r} does not exist",
                file=path, field="marathon.apps_dir",
            ))
        else:
            try:
                from rotator.apps.app_definition import group_apps

                group_apps([(str(p), a) for p, a in self.apps(group)], group.marathon.root_group)
            except InputError as exc:
                errors.append(exc)
        return errors


def _key_id(group: GroupConfig, environ: Mapping[str, str] | None) -> str | None:
    name = group.aws.credentials.access_key_id_env
    return (environ or {}).get(name) if name else None


def _credentials_cross_partition(group: GroupConfig,
                                 seen: dict[str, tuple[str, str]]) -> list[InputError]:
    """China and global are separate partitions with separate keys: a credential source
    named by groups of both partitions would hand one partition's keys to the other."""
    creds = group.aws.credentials
    sources = [f"profile {creds.profile}"] if creds.profile else [
        f"variable {creds.access_key_id_env}", f"variable {creds.secret_access_key_env}"]
    errors = []
    for source in sources:
        here = str(group.directory / "group.yaml")
        other = seen.setdefault(source, (group.aws.partition, here))
        if other[0] != group.aws.partition:
            errors.append(InputError(
                f"{source} is also used in partition {other[0]} ({other[1]}): each partition "
                "needs its own credentials",
                file=str(group.directory / "group.yaml"), field="aws.credentials"))
    return errors
