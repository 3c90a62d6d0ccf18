"""Terraform in the sandbox: the binary, the CLI configuration, the long-lived provider
and the S3 state buckets, assembled into per-group ``TerraformRun``.

The groups' Terraform is the production one; only the environment differs: the
provider and the S3 backend are pointed at the AWS emulator (``AWS_ENDPOINT_URL``,
dummy keys, backend ``endpoints``), nothing in the ``.tf`` files knows about it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rotator.infra.terraform import TerraformRun
from rotator.sandbox.tf_install import (
    DEFAULT_MIRROR_DIRS,
    find_terraform,
    provider_binaries,
    registry_reachable,
    require_provider_source,
    write_cli_config,
)
from rotator.sandbox.tf_provider import ProviderDaemon

SANDBOX_ACCESS_KEY = "test"
SANDBOX_SECRET_KEY = "test"

REGION_OF_GROUP = {
    "ops-cn": "cn-north-1",
    "prd-cn": "cn-north-1",
    "ops-sg": "ap-southeast-1",
    "prd-sg-master": "ap-southeast-1",
    "prd-sg-slave": "ap-southeast-1",
}


# The sandbox's Terraform runs on one core, and its long-lived providers at a lower CPU
# priority: at each command's start the CLI and the provider load the AWS provider's
# schema, which took both cores of a 2-core machine for a second or more, while the world
# (standing in for AWS's load balancers) was serving requests.
TOOL_ENV = {"GOMAXPROCS": "1"}
TOOL_NICENESS = 10


def state_bucket(region: str) -> str:
    """One state bucket per region: a bucket made in aws-cn is invisible to aws clients."""
    return f"rotator-tfstate-{region}"


def emulator_env(endpoint_url: str, region: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET_KEY,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        # Never reach for the instance metadata service (a non-loopback address).
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def emulator_backend(endpoint_url: str) -> dict:
    """What the S3 backend needs to keep its state (and lock) in the emulator."""
    return {
        "endpoints": {"s3": endpoint_url},
        "use_path_style": True,
        "skip_credentials_validation": True,
        "skip_requesting_account_id": True,
        "skip_metadata_api_check": True,
        "skip_region_validation": True,
        "skip_s3_checksum": True,
    }


def create_state_buckets(endpoint_url: str, regions: Iterable[str]) -> list[str]:
    """Create (idempotently) the S3 backend bucket of each region in the emulator."""
    import boto3

    made = []
    for region in sorted(set(regions)):
        s3 = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=SANDBOX_ACCESS_KEY,
            aws_secret_access_key=SANDBOX_SECRET_KEY,
        )
        bucket = state_bucket(region)
        try:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        made.append(bucket)
    return made


@dataclass
class TerraformRuntime:
    """Everything the sandbox needs to run the groups' Terraform against an emulator.

    ``start()`` finds Terraform and the provider, writes the CLI configuration and creates
    the state buckets; ``settings(group, region)`` gives the adapter's settings, starting
    (or reusing) one long-lived provider per region when ``reattach`` is on.
    """

    endpoint_url: str
    state_dir: Path
    reattach: bool = True
    lock_timeout: float = 0.0
    mirror_search: Iterable[str] = DEFAULT_MIRROR_DIRS
    registry_probe: Callable[[], bool] = registry_reachable
    terraform: str = ""
    mirror: Path | None = None
    cli_config: Path | None = None
    daemons: dict[str, ProviderDaemon] = field(default_factory=dict)
    _daemon_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, regions: Iterable[str] = ()) -> TerraformRuntime:
        self.state_dir = Path(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.terraform = find_terraform(self.state_dir / "bin")
        self.mirror = require_provider_source(os.environ, self.mirror_search, self.registry_probe)
        self.cli_config = write_cli_config(
            self.state_dir / "terraform.rc",
            self.mirror,
            plugin_cache=None if self.mirror else self.state_dir / "plugin-cache",
        )
        regions = list(regions)
        if regions:
            create_state_buckets(self.endpoint_url, regions)
        return self

    def provider_binary(self) -> Path | None:
        return provider_binaries(self.mirror)[0] if self.mirror else None

    def daemon(self, region: str) -> ProviderDaemon | None:
        """The long-lived provider of ``region`` (started, or reused from an earlier process)."""
        if not self.reattach or self.provider_binary() is None:
            return None
        with self._daemon_lock:
            current = self.daemons.get(region)
            if current is not None and current.running():
                return current
            workdir = self.state_dir / "providers" / region
            workdir.mkdir(parents=True, exist_ok=True)
            # Processes sharing the state dir take turns: one starts, the others attach.
            with open(workdir / "start.lock", "w") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                current = ProviderDaemon.attach(workdir)
                if current is None:
                    # The sandbox provider signs with dummy keys only, whatever the shell holds.
                    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
                    env.update(emulator_env(self.endpoint_url, region))
                    env.update(TOOL_ENV)
                    current = ProviderDaemon(self.provider_binary(), env, workdir,
                                             niceness=TOOL_NICENESS).start()
            self.daemons[region] = current
            return current

    def backend_config(self, group: str, region: str) -> dict:
        return {
            "bucket": state_bucket(region),
            "key": f"groups/{group}/terraform.tfstate",
            "region": region,
            **emulator_backend(self.endpoint_url),
        }

    def settings(
        self,
        group: str,
        region: str | None = None,
        *,
        key: str | None = None,
        data_dir: Path | None = None,
        **overrides,
    ) -> TerraformRun:
        region = region or REGION_OF_GROUP[group]
        env = emulator_env(self.endpoint_url, region)
        env["TF_CLI_CONFIG_FILE"] = str(self.cli_config)
        daemon = self.daemon(region)
        if daemon is not None:
            env.update(daemon.reattach_env())
        backend = self.backend_config(group, region)
        if key:
            backend["key"] = key
        options = {"lock_timeout": self.lock_timeout, **overrides}
        return TerraformRun(
            terraform=self.terraform,
            env=env,
            backend_config=backend,
            data_dir=data_dir,
            **options,
        )

    def stop(self, include_attached: bool = False) -> None:
        """Stop the providers this runtime started (and, if asked, those it attached to)."""
        for daemon in self.daemons.values():
            if include_attached or daemon.started_here:
                daemon.stop()
        self.daemons.clear()
