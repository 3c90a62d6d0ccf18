"""Builds the real adapters for one group from its configuration and the environment.

This is the only place that knows which implementation serves each port. The
engine never learns whether it talks to AWS or to the sandbox: only the
environment's endpoints differ.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotator.config import GroupConfig, Project, RecordSettings
from rotator.environment import Environment
from rotator.errors import InputError
from rotator.ports import RecordStore
from rotator.tls import TlsSettings

if TYPE_CHECKING:
    from rotator.traffic.spec import EdgeSpec, RecordSpec

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
    from rotator.infra.terraform import TerraformInfrastructure, TerraformRun

    tf_env = access.terraform_env()
    if env.terraform.cli_config_file:
        tf_env["TF_CLI_CONFIG_FILE"] = env.terraform.cli_config_file
    reattach = (env.terraform.reattach_providers_by_region.get(group.aws.region)
                or env.terraform.reattach_providers)
    if reattach:
        tf_env["TF_REATTACH_PROVIDERS"] = reattach
    tf_env.update(env.terraform.extra_env)
    backend = {**group.terraform.backend, **env.terraform.backend_config}
    settings = TerraformRun(
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


def record_specs(records: list[RecordSettings]) -> list[RecordSpec]:
    from rotator.traffic.spec import RecordSpec

    return [RecordSpec(zone=r.zone, name=r.name, type=r.type, ttl=r.ttl) for r in records]


def edge_spec(group: GroupConfig) -> EdgeSpec | None:
    from rotator.traffic.spec import EdgeSpec

    edge = group.traffic.edge
    return None if edge is None else EdgeSpec(
        load_balancer=edge.load_balancer, target_groups=dict(edge.target_groups),
        port=edge.port, role=edge.role)


def make_traffic(group: GroupConfig, access: AwsAccess, services_passing):
    from rotator.traffic.calls import client_config
    from rotator.traffic.router import build_group_router

    return build_group_router(
        group.name, record_specs(group.traffic.records), edge_spec(group),
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


def in_environment(group: GroupConfig, env: Environment) -> GroupConfig:
    """The group as this environment runs it (records written with its TTL, if it sets one)."""
    ttl = env.traffic.record_ttl
    if ttl is None:
        return group
    records = [r.model_copy(update={"ttl": ttl}) for r in group.traffic.records]
    return group.model_copy(update={"traffic": group.traffic.model_copy(
        update={"records": records})})
