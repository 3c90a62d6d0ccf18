"""Builds the real adapters for one group from its configuration and the environment.

This is the only place that knows which implementation serves each port. The
engine never learns whether it talks to AWS or to the sandbox: only the
environment's endpoints differ.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotator.config import GroupConfig, Policy, Project
from rotator.engine import Engine, Event
from rotator.environment import Environment, load_environment
from rotator.errors import InputError
from rotator.model import RotationRecord, RotationStatus
from rotator.ports import RecordStore
from rotator.state.control import operator_request
from rotator.steps import requirements
from rotator.tls import TlsSettings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class AwsAccess:
    """One group's AWS access: used for that group's clients and Terraform only."""

    region: str
    partition: str
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    endpoint_url: str | None = None

    def __repr__(self) -> str:  # never show the keys
        return f"AwsAccess(region={self.region!r}, profile={self.profile!r})"

    def boto3_session(self):
        return _boto3_session(self)

    def client(self, service: str, config=None):
        from botocore.config import Config

        config = config or Config(retries={"mode": "standard", "max_attempts": 8},
                                  connect_timeout=5, read_timeout=30)
        # boto3 sessions are not safe for concurrent client creation
        with _CLIENTS_LOCK:
            return self.boto3_session().client(service, endpoint_url=self.endpoint_url,
                                               config=config)

    def terraform_env(self) -> dict[str, str]:
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.profile:
            env["AWS_PROFILE"] = self.profile
        else:
            env["AWS_ACCESS_KEY_ID"] = self.access_key_id or ""
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key or ""
            if self.session_token:
                env["AWS_SESSION_TOKEN"] = self.session_token
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env


_CLIENTS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=16)
def _boto3_session(access: AwsAccess):
    """One session per access: its loader parses each service model once (EC2's takes 0.4 s)."""
    import boto3

    if access.profile:
        return boto3.Session(profile_name=access.profile, region_name=access.region)
    return boto3.Session(
        aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key,
        aws_session_token=access.session_token,
        region_name=access.region,
    )


def _secret_from_env(name: str, group: GroupConfig, field: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise InputError(f"environment variable {name} is not set (it holds the group's "
                         f"credentials)", file=str(group.directory / "group.yaml"), field=field)
    return value


def aws_access(group: GroupConfig, env: Environment) -> AwsAccess:
    base = {"region": group.aws.region, "partition": group.aws.partition,
            "endpoint_url": env.aws.endpoint_url}
    if env.aws.credentials is not None:  # an emulator: dummy keys for every group
        return AwsAccess(**base, access_key_id=env.aws.credentials.access_key_id,
                         secret_access_key=env.aws.credentials.secret_access_key)
    creds = group.aws.credentials
    if creds.profile:
        return AwsAccess(**base, profile=creds.profile)
    return AwsAccess(
        **base,
        access_key_id=_secret_from_env(creds.access_key_id_env, group,
                                       "aws.credentials.access_key_id_env"),
        secret_access_key=_secret_from_env(creds.secret_access_key_env, group,
                                           "aws.credentials.secret_access_key_env"),
        session_token=os.environ.get(creds.session_token_env) if creds.session_token_env else None,
    )


# --------------------------------------------------------------------------- adapters


def make_store(project: Project, env: Environment) -> RecordStore:
    if env.state.backend == "consul":
        from rotator.state.consul_store import ConsulRecordStore

        address = env.state.consul_address or env.consul.address
        if not address:
            raise InputError("the consul record store needs state.consul_address",
                             file=env.source, field="state.consul_address")
        token = os.environ.get(env.state.consul_token_env) if env.state.consul_token_env else None
        return ConsulRecordStore(address, env.state.consul_datacenter, token,
                                 prefix=env.state.prefix)
    from rotator.state.file_store import FileRecordStore

    path = Path(env.state.path)
    return FileRecordStore(path if path.is_absolute() else project.root / path)


def make_infra(group: GroupConfig, env: Environment, access: AwsAccess):
    from rotator.infra.terraform import TerraformInfrastructure, TerraformSettings

    tf_env = access.terraform_env()
    if env.terraform.cli_config_file:
        tf_env["TF_CLI_CONFIG_FILE"] = env.terraform.cli_config_file
    reattach = (env.terraform.reattach_providers_by_region.get(group.aws.region)
                or env.terraform.reattach_providers)
    if reattach:
        tf_env["TF_REATTACH_PROVIDERS"] = reattach
    tf_env.update(env.terraform.extra_env)
    backend = {**group.terraform.backend, **env.terraform.backend_config}
    settings = TerraformSettings(
        terraform=env.terraform.binary or "terraform",
        env=tf_env,
        backend_config=backend,
        variables=dict(group.terraform.vars),
        secret_variables=tuple(group.terraform.secret_vars),
        var_files=tuple(str(group.directory / f) for f in group.terraform.var_files),
        lock_timeout=group.terraform.lock_timeout,
    )
    return TerraformInfrastructure(group.directory, group=group.name, settings=settings)


class Deferred:
    """An adapter built on first use (or by ``warm``) and then used through this object.

    The Marathon and Consul clients pull in requests and friends, a quarter of a second
    of imports that ``rotate`` is better off spending while Terraform provisions than
    before its first step. Configuration errors are still raised at once: only the
    construction is deferred, never the checks."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._built: Any = None
        self._lock = threading.Lock()

    def resolve(self) -> Any:
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle probes: not the adapter's business
            raise AttributeError(name)
        return getattr(self.resolve(), name)


def warm(*deferred: Deferred) -> None:
    """Build these in a background thread (while the caller waits on something else)."""
    def build() -> None:
        for d in deferred:
            try:
                d.resolve()
            except Exception:  # the first real use raises it where it belongs
                log.debug("warming %r failed", d, exc_info=True)
    threading.Thread(target=build, name="warm-adapters", daemon=True).start()


def _warming(handler: Callable[[Event], None],
             deferred: tuple[Deferred, ...]) -> Callable[[Event], None]:
    """``handler``, which also warms ``deferred`` once the first step has begun."""
    cold = list(deferred)

    def on_event(event: Event) -> None:
        if cold and event.kind == "step-started":
            warm(*cold)
            cold.clear()
        handler(event)
    return on_event


def make_apps(group: GroupConfig, env: Environment) -> Deferred:
    from rotator.config import BasicAuth, TokenAuth

    username = password = token = None
    creds = group.marathon.credentials
    if isinstance(creds, BasicAuth) and not env.marathon.anonymous:
        username = _secret_from_env(creds.username_env, group, "marathon.credentials.username_env")
        password = _secret_from_env(creds.password_env, group, "marathon.credentials.password_env")
    elif isinstance(creds, TokenAuth) and not env.marathon.anonymous:
        token = _secret_from_env(creds.token_env, group, "marathon.credentials.token_env")
    tls = TlsSettings(**group.marathon.tls.model_dump())

    def build():
        from rotator.apps.marathon import MarathonDeployer

        return MarathonDeployer(username=username, password=password, token=token, tls=tls,
                                proxy=env.marathon.proxy, on_conflict=group.marathon.on_conflict)
    return Deferred(build)


def make_health(group: GroupConfig, env: Environment) -> Deferred:
    token = None
    if group.consul.token_env and not env.consul.anonymous:
        token = _secret_from_env(group.consul.token_env, group, "consul.token_env")

    address = (env.consul.address_by_region.get(group.aws.region) or env.consul.address
               or group.consul.address)
    tls = TlsSettings(**group.consul.tls.model_dump())

    def build():
        from rotator.health.consul import ConsulHealthSource

        return ConsulHealthSource(address, group.consul.datacenter, token, tls=tls)
    return Deferred(build)


def make_traffic(group: GroupConfig, access: AwsAccess, services_passing):
    from rotator.traffic.calls import client_config
    from rotator.traffic.router import build_group_router
    from rotator.traffic.spec import EdgeSpec, RecordSpec

    edge = group.traffic.edge
    return build_group_router(
        group.name,
        [RecordSpec(zone=r.zone, name=r.name, type=r.type, ttl=r.ttl) for r in group.traffic.records],
        None if edge is None else EdgeSpec(
            load_balancer=edge.load_balancer, target_groups=dict(edge.target_groups),
            port=edge.port, role=edge.role),
        # the routers retry with their own jittered backoff: botocore must not retry too
        route53=access.client("route53", client_config()),
        elb=access.client("elb", client_config()),
        elbv2=access.client("elbv2", client_config()),
        services_passing=services_passing,
    )


def absolute_apps(project: Project, group: GroupConfig) -> list[dict[str, Any]]:
    """The group's app definitions, validated, with ids under the group's root group."""
    from rotator.apps.app_definition import group_apps

    out = group_apps([(str(p), a) for p, a in project.apps(group)], group.marathon.root_group)
    if not out:
        raise InputError("no app definitions (*.json)",
                         file=str(group.directory / group.marathon.apps_dir))
    return out


# --------------------------------------------------------------------------- session


class Session:
    """Everything one CLI invocation needs for one group."""

    def __init__(self, project: Project, group: GroupConfig, policy: Policy, env: Environment):
        self.project = project
        self.group = in_environment(group, env)
        self.policy = policy
        self.env = env
        project.check_credentials(group, os.environ)
        self.apps_defs = absolute_apps(project, group)
        self.store = make_store(project, env)

    @classmethod
    def open(cls, project: Project, group_name: str, policy_name: str | None) -> Session:
        group = project.group(group_name)
        policy = project.policy(policy_name or group.default_policy)
        return cls(project, group, policy, load_environment(project.root))

    @classmethod
    def open_current(cls, project: Project, group_name: str) -> Session:
        group = project.group(group_name)
        env = load_environment(project.root)
        record = make_store(project, env).load(group.name)
        if record is None:
            raise InputError(f"{group.name} has no rotation")
        return cls(project, group, project.policy(record["policy"]), env)

    @functools.cached_property
    def access(self) -> AwsAccess:
        return aws_access(self.group, self.env)

    @functools.cached_property
    def infra(self):
        return make_infra(self.group, self.env, self.access)

    @functools.cached_property
    def health(self):
        return make_health(self.group, self.env)

    @functools.cached_property
    def traffic(self):
        return make_traffic(self.group, self.access, self.services_passing)

    def services_passing(self, slot: str) -> bool | None:
        """For the traffic guard: are the slot's services passing in Consul right now?"""
        reqs = requirements(self.group, self.apps_defs, slot, self.policy.gate)
        counts = self.health.passing_now(reqs)
        if counts is None:
            return None
        return all(n >= req.required for n, req in zip(counts, reqs, strict=True))

    @functools.cached_property
    def metrics(self):
        from rotator.health.cloudwatch import CloudWatchMetrics
        from rotator.traffic.calls import client_config

        return CloudWatchMetrics(self.access.client("cloudwatch", client_config()),
                                 edge=self.traffic.edge, period=self.env.cloudwatch.period,
                                 calls=self.traffic.calls)

    def engine(self, on_event=None, interactive: bool = False, sleep=None) -> Engine:
        apps = make_apps(self.group, self.env)
        return Engine(
            group=self.group, policy=self.policy, infra=self.infra, apps=apps,
            health=self.health, traffic=self.traffic, store=self.store,
            guard=self.traffic.guard, app_definitions=self.apps_defs,
            on_event=_warming(self._publishing(on_event), (apps, self.health)),
            interactive=interactive, environment=self.env.name,
            metrics=self.metrics, metrics_delay=self.env.cloudwatch.delay,
            **({"sleep": sleep} if sleep is not None else {}),  # `rotate serve` hands over
        )

    def _publishing(self, on_event):
        publish = getattr(self.store, "publish_live", None)

        def handler(event: Event) -> None:
            if on_event is not None:
                on_event(event)
            if publish and event.kind == "step-done" and event.step and \
                    event.step.kind in ("shift", "rollback-weights"):
                rec = event.record
                live = max(rec.weights, key=lambda s: rec.weights[s]) if rec.weights else None
                publish(rec.group, {"live_slot": live, "weights": rec.weights,
                                    "ami": rec.ami if live == rec.candidate else rec.stable_ami,
                                    "rotation": rec.id})
        return handler

    def plan(self, ami: str) -> RotationRecord:
        return self.engine().new_record(ami)

    def _renderer(self, output: str, interactive: bool):
        from rotator.render import make_renderer

        return make_renderer(output, interactive)

    def preflight(self, ami: str) -> None:
        """Checks that need the world but change nothing: refuse bad input before acting."""
        from concurrent.futures import ThreadPoolExecutor

        from botocore.exceptions import ClientError

        validate = getattr(self.infra, "validate", None)
        with ThreadPoolExecutor(1) as pool:
            # Terraform spends seconds loading the provider's schema: overlap it.
            checked = pool.submit(validate) if validate is not None else None
            try:
                images = self.access.client("ec2").describe_images(ImageIds=[ami])["Images"]
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = error.get("Code", "")
                if not code.startswith("InvalidAMIID"):
                    raise InputError(
                        f"ec2:DescribeImages of {ami} refused: {code}: {error.get('Message', '')}"
                        " (the group's credentials must allow it); nothing was changed",
                        file=str(self.group.directory / "group.yaml"), field="aws.credentials",
                    ) from None
                images = []
            if checked is not None:
                checked.result()
        if not images:
            raise InputError(f"AMI {ami} does not exist in {self.group.aws.region}",
                             field="--ami")

    def run(self, ami: str, *, output: str, interactive: bool, break_lock: bool) -> RotationRecord:
        self.preflight(ami)
        renderer = self._renderer(output, interactive)
        try:
            return self.engine(renderer, interactive).start(ami, break_lock=break_lock)
        finally:
            renderer.close()

    def override_quiet(self, slot: str, via: str = "rotate") -> None:
        """Let ``slot`` be destroyed without waiting until it is quiet (recorded)."""
        data = self.store.load(self.group.name)
        if data is None or RotationStatus(data["status"]).terminal:
            raise InputError(f"{self.group.name} has no unfinished rotation")
        if slot not in data.get("slots", {}):
            raise InputError(f"rotation {data['id']} has no slot {slot!r} to retire",
                             field="--override-quiet")
        self.store.write_control(self.group.name, data["id"],
                                 operator_request("override-quiet", step=slot, via=via))

    def resume(self, *, output: str, interactive: bool, break_lock: bool) -> RotationRecord:
        renderer = self._renderer(output, interactive)
        try:
            return self.engine(renderer, interactive).resume(break_lock=break_lock)
        finally:
            renderer.close()

    def request(self, *, abort: str | None = None, promote: bool = False,
                output: str = "text", via: str = "rotate") -> RotationRecord | None:
        """Ask the rotation to abort or go on; carry it out here when nobody is running it."""
        data = self.store.load(self.group.name)
        if data is None or RotationStatus(data["status"]).terminal:
            raise InputError(f"{self.group.name} has no unfinished rotation")
        if promote:
            step = waiting_approval(RotationRecord.from_dict(data))
            request = operator_request("promote", step=step, via=via)
        else:
            request = operator_request("abort", reason=abort or "requested by operator", via=via)
        self.store.write_control(self.group.name, data["id"], request)
        info = self.store.lock_info(self.group.name)
        if info is not None and not _dead_holder(info):
            return None  # the running engine acts on the request
        interactive = sys.stdout.isatty() and output == "text"
        return self.resume(output=output, interactive=interactive, break_lock=True)


def waiting_approval(record: RotationRecord) -> str:
    """The name of the approval step this rotation waits at now; InputError when none is.

    A promotion approves exactly that step: sent earlier, it would pass a later approval
    before anyone had seen the steps leading to it."""
    step = record.current_step
    if (record.status in (RotationStatus.WAITING, RotationStatus.RUNNING)
            and not record.rolling_back and step is not None and step.kind == "approve"):
        return step.name
    where = f"at step {step.name!r}" if step is not None else "past its last step"
    raise InputError(
        f"rotation {record.id} of {record.group} is {record.status.value} {where}: nothing is "
        "waiting for approval (`rotate promote` approves only the approval step waiting now)"
    )


def in_environment(group: GroupConfig, env: Environment) -> GroupConfig:
    """The group as this environment runs it (records written with its TTL, if it sets one)."""
    ttl = env.traffic.record_ttl
    if ttl is None:
        return group
    records = [r.model_copy(update={"ttl": ttl}) for r in group.traffic.records]
    return group.model_copy(update={"traffic": group.traffic.model_copy(
        update={"records": records})})


def _dead_holder(info) -> bool:
    from rotator.identity import holder_dead

    return holder_dead(info.host, info.pid)


def run_failover(project: Project, source: str, target: str, *, force: bool,
                 action: str = "failover") -> dict[str, Any]:
    from rotator.failover_runner import failover_between

    return failover_between(project, source, target, force=force, action=action)
