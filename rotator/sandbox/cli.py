"""`rotate sandbox ...`: start, stop, inspect and seed the embedded world."""

from __future__ import annotations

import os
import sys

import click

from rotator.config import Project


def _project() -> Project:
    root = os.environ.get("ROTATOR_ROOT")
    from pathlib import Path

    return Project(Path(root)) if root else Project.find()


def _say(message: str) -> None:
    click.echo(message)
    sys.stdout.flush()


@click.group("sandbox")
def sandbox() -> None:
    """The embedded world on 127.0.0.1: AWS (moto), Terraform with the real AWS provider,
    Marathon and Consul emulators."""


@sandbox.command("up")
@click.option("--step-seconds", default=0.5, show_default=True,
              help="how long each Marathon deployment step takes")
def up_cmd(step_seconds):
    """Start the world in the background and build every group's blue slot."""
    from rotator.sandbox.control import Sandbox
    from rotator.sandbox.tf_install import (
        DEFAULT_MIRROR_DIRS,
        registry_reachable,
        require_provider_source,
    )

    require_provider_source(os.environ, DEFAULT_MIRROR_DIRS, registry_reachable)
    box = Sandbox(_project())
    box.up(_say, step_seconds)
    _say("stop it with: rotate sandbox down")


@sandbox.command("down")
def down_cmd():
    """Stop the world (everything in it is forgotten)."""
    from rotator.sandbox.control import Sandbox

    if Sandbox(_project()).stop_world():
        _say("sandbox stopped")
    else:
        _say("the sandbox was not running")


@sandbox.command("reset")
@click.option("--step-seconds", default=0.5, show_default=True)
def reset_cmd(step_seconds):
    """Stop the world and bring a fresh one up."""
    from rotator.sandbox.control import Sandbox

    box = Sandbox(_project())
    box.stop_world()
    box.up(_say, step_seconds)


@sandbox.command("status")
def status_cmd():
    """Where the world listens, and every group's status in it."""
    from rich.console import Console

    from rotator.sandbox.control import Sandbox
    from rotator.status import show_status

    box = Sandbox(_project())
    info = box.info()
    if info is None:
        _say("the sandbox is not running (`rotate sandbox up` starts it)")
        sys.exit(3)
    _say(f"sandbox world pid {info['pid']}")
    _say(f"  aws (moto):       {info['aws']}")
    _say(f"  consul:           {info['consul']}")
    _say(f"  marathon (proxy): {info['marathon_proxy']}")
    if info.get("dns"):
        host, port = info["dns"].rsplit(":", 1)
        _say(f"  dns:              {info['dns']} (port {port}; dig @{host} -p {port} NAME)")
    _say(f"  terraform:        {info['terraform']} (providers: "
         + (", ".join(sorted(info['reattach'])) or "launched per command") + ")")
    seed = box.seed()
    if seed.get("base_amis"):
        _say("  base AMIs:        " + ", ".join(f"{r} {a}" for r, a in seed["base_amis"].items()))
    show_status(box.project, None, "text", Console(highlight=False))


@sandbox.command("bake")
@click.option("--from", "from_ami", help="the AMI to start from (default: a fresh base)")
@click.option("--region", default=None, help="region (default: the group's, or cn-north-1)")
@click.option("--group", "group_name", help="bake for this group's region")
def bake_cmd(from_ami, region, group_name):
    """Register a new AMI, as a Packer build would, and print its id."""
    from rotator.sandbox.control import Sandbox

    project = _project()
    if group_name:
        region = project.group(group_name).aws.region
    click.echo(Sandbox(project).bake(region or "cn-north-1", from_ami))
