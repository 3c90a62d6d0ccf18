"""Where the groups run: production (the default) or another world such as the sandbox.

The same ``groups/`` folders serve every world. An environment file only
says where the endpoints are and which record store to use; it is named by
``ROTATOR_ENV``, or found at ``.rotator/sandbox/environment.yaml`` in the
project while the sandbox is up. With neither, rotator talks to real AWS
with each group's own credentials and the addresses in its group.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rotator.errors import InputError
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
    anonymous: bool = False  # that Consul takes no token


class StateEnv(_Model):
    backend: Literal["file", "consul"] = "file"
    path: str = ".rotator/state"
    consul_address: str | None = None
    consul_datacenter: str | None = None
    consul_token_env: str | None = None
    prefix: str = "rotator"


class Environment(_Model):
    name: str = "production"
    aws: AwsEnv = AwsEnv()
    terraform: TerraformEnv = TerraformEnv()
    marathon: MarathonEnv = MarathonEnv()
    consul: ConsulEnv = ConsulEnv()
    state: StateEnv = StateEnv()
    sandbox_control: str | None = None  # URL of the sandbox's control API, when it is one
    source: str | None = Field(default=None, exclude=True)


def load_environment(project_root: Path) -> Environment:
    explicit = os.environ.get("ROTATOR_ENV")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InputError("environment file not found", file=explicit, field="ROTATOR_ENV")
    else:
        path = project_root / SANDBOX_ENV
        if not path.is_file():
            return Environment()
    doc = load_yaml(path)
    try:
        env = Environment.model_validate(doc.data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise InputError(err["msg"], file=str(path), field=".".join(map(str, loc)),
                         line=doc.line_of(loc)) from None
    return env.model_copy(update={"source": str(path)})
