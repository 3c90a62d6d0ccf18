"""Where the groups run: production, or another world such as the sandbox.

The same ``groups/`` folders serve every world. An environment file only says
where the endpoints are and which record store to use. The environment is
chosen explicitly, with ``--env`` or ``ROTATOR_ENV``:

- ``production``: real AWS with each group's own credentials and the addresses
  in its group.yaml;
- ``sandbox``: the project's sandbox (``.rotator/sandbox/environment.yaml``);
- a path: that environment file.

Only the sandbox is a default, and only while it runs: its file names the
process serving it, and a file whose process is gone is not used. A checkout
that once ran the demo therefore never targets a stale sandbox, and never real
AWS, without being told which.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from rotator.durations import parse_duration
from rotator.errors import InputError
from rotator.identity import pid_alive
from rotator.yamlsource import load_yaml

SANDBOX_ENV = Path(".rotator/sandbox/environment.yaml")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StaticCredentials(_Model):
    """Only for emulators: dummy keys that unlock nothing."""

    access_key_id: str
    secret_access_key: str


class AwsEnv(_Model):
    endpoint_url: str | None = None
    credentials: StaticCredentials | None = None


class TerraformEnv(_Model):
    binary: str | None = None
    cli_config_file: str | None = None
    reattach_providers: str | None = None
    reattach_providers_by_region: dict[str, str] = Field(default_factory=dict)
    backend_config: dict[str, Any] = Field(default_factory=dict)
    extra_env: dict[str, str] = Field(default_factory=dict)


class MarathonEnv(_Model):
    proxy: str | None = None  # HTTP proxy through which slot Marathons are reached
    anonymous: bool = False  # the Marathons there take no credentials


class ConsulEnv(_Model):
    address: str | None = None  # overrides every group's consul.address
    address_by_region: dict[str, str] = Field(default_factory=dict)  # ... per region
    anonymous: bool = False  # that Consul takes no token


class CloudWatchEnv(_Model):
    """How the load balancers' metrics reach CloudWatch: one data point per ``period``
    seconds (60 for ELB), available ``delay`` seconds after its period ends."""

    period: float = Field(default=60.0, gt=0)
    delay: float = Field(default=60.0, ge=0)


class TrafficEnv(_Model):
    # the TTL every weighted record is written with in this environment, in place of the
    # groups' (a test world that cannot wait a production TTL out)
    record_ttl: int | None = Field(default=None, ge=0, le=172800)


class StateEnv(_Model):
    backend: Literal["file", "consul"] = "file"
    path: str = ".rotator/state"
    consul_address: str | None = None
    consul_datacenter: str | None = None
    consul_token_env: str | None = None
    prefix: str = "rotator"


class NotifyEnv(_Model):
    """Where `rotate serve` sends notifications: apprise URLs (Slack, Teams, webhooks, mail...).

    The URLs carry tokens: give them here only in a file kept as secret as the tokens, or
    name variables that hold them (``urls_env``, ``groups_env``); they are never logged,
    shown on a page or answered by the API."""

    urls: list[str] = Field(default_factory=list, repr=False)  # every group's events
    urls_env: list[str] = Field(default_factory=list)  # variables holding such URLs
    groups: dict[str, list[str]] = Field(default_factory=dict, repr=False)  # group -> its URLs
    groups_env: dict[str, list[str]] = Field(default_factory=dict)  # group -> variables
    dashboard_url: str | None = None  # the link sent with a notice (default: --listen's)
    # a past event (done, rolled back...) older than this when first seen is not sent
    max_age: Annotated[float, BeforeValidator(parse_duration)] = 900.0


class ServeEnv(_Model):
    """What `rotate serve`'s controller takes over."""

    resume_orphaned: bool = True  # running/rolling back, its process gone, lock expired
    resume_paused: bool = False  # stopped for an operator (a failure under on_failure: pause)
    chart_period: Annotated[int, Field(ge=1, le=3600)] = 60  # seconds per traffic chart point


class Environment(_Model):
    name: str = "production"
    # the process serving this environment (an emulator): when it is gone, so is the world
    pid: int | None = None
    aws: AwsEnv = AwsEnv()
    terraform: TerraformEnv = TerraformEnv()
    marathon: MarathonEnv = MarathonEnv()
    consul: ConsulEnv = ConsulEnv()
    cloudwatch: CloudWatchEnv = CloudWatchEnv()
    traffic: TrafficEnv = TrafficEnv()
    state: StateEnv = StateEnv()
    sandbox_control: str | None = None  # URL of the sandbox's control API, when it is one
    notify: NotifyEnv = NotifyEnv()
    serve: ServeEnv = ServeEnv()
    source: str | None = Field(default=None, exclude=True)


def load_environment(project_root: Path) -> Environment:
    chosen = os.environ.get("ROTATOR_ENV")
    sandbox = project_root / SANDBOX_ENV
    if chosen == "production":
        return Environment()
    if chosen == "sandbox" or (not chosen and sandbox.is_file()):
        if not sandbox.is_file():
            raise InputError("the sandbox is not running (`rotate sandbox up` starts it)",
                             field="--env")
        env = _read(sandbox)
        if env.pid is not None and not pid_alive(env.pid):
            if chosen:
                raise InputError("the sandbox's world process is gone: `rotate sandbox up` "
                                 "starts it again", file=str(sandbox), field="pid")
            raise _choose(f"{sandbox} names a sandbox that is no longer running")
        return env
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise InputError("environment file not found", file=chosen, field="--env")
        return _read(path)
    raise _choose("no environment was chosen")


def _choose(why: str) -> InputError:
    return InputError(
        f"{why}: choose one with --env production (real AWS, each group's credentials), "
        "--env sandbox, or --env FILE (or ROTATOR_ENV)", field="--env")


def _read(path: Path) -> Environment:
    doc = load_yaml(path)
    try:
        env = Environment.model_validate(doc.data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise InputError(err["msg"], file=str(path), field=".".join(map(str, loc)),
                         line=doc.line_of(loc)) from None
    return env.model_copy(update={"source": str(path)})
