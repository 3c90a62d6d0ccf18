"""`rotate sandbox ...`: start, stop, inspect and seed the embedded world."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from rotator.config import Project


def _project() -> Project:
    root = os.environ.get("ROTATOR_ROOT")
    return Project(Path(root)) if root else Project.find()


def _say(message: str) -> None:
    click.echo(message)
    sys.stdout.flush()


@click.group("sandbox")
def sandbox() -> None:
    """The embedded world on 127.0.0.1: AWS (moto), Terraform with the real AWS provider,
    Marathon and Consul emulators."""


TIME_SCALE_HELP = ("sandbox seconds per AWS second for health-check intervals and timeouts "
                   "and the CloudWatch period, e.g. 1/6 (the default) or 0.05")


@sandbox.command("up")
@click.option("--step-seconds", default=0.5, show_default=True,
              help="how long each Marathon deployment step takes")
@click.option("--time-scale", default=None, help=TIME_SCALE_HELP)
def up_cmd(step_seconds, time_scale):
    """Start the world in the background and build every group's blue slot."""
    from rotator.sandbox.control import Sandbox
    from rotator.sandbox.tf_install import (
        DEFAULT_MIRROR_DIRS,
        registry_reachable,
        require_provider_source,
    )

    require_provider_source(os.environ, DEFAULT_MIRROR_DIRS, registry_reachable)
    box = Sandbox(_project())
    box.up(_say, step_seconds, _time_scale(time_scale))
    _say("stop it with: rotate sandbox down")


def _time_scale(text):
    if text is None:
        return None
    from rotator.sandbox.dataplane.timescale import parse_time_scale

    try:
        parse_time_scale(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise click.BadParameter(str(exc), param_hint="--time-scale") from None
    return text


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
@click.option("--time-scale", default=None, help=TIME_SCALE_HELP)
def reset_cmd(step_seconds, time_scale):
    """Stop the world and bring a fresh one up."""
    from rotator.sandbox.control import Sandbox

    box = Sandbox(_project())
    box.stop_world()
    box.up(_say, step_seconds, _time_scale(time_scale))


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
    if info.get("lb_port"):
        _say(f"  load balancers:   each on its own 127.x.y.z, port {info['lb_port']} "
             f"(health checks and metrics at time scale {info.get('time_scale', 1):.4g}, "
             f"CloudWatch period {info.get('metric_period', 60)}s)")
    if info.get("addresses"):
        _say(f"  addresses:        {info['addresses']} (where a private address listens)")
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
@click.option("--fault", type=click.Choice(["5xx", "slow", "unhealthy", "crash"]),
              help="bake a bad release: its tasks answer 500s (5xx), answer late (slow), "
                   "fail their health check (unhealthy) or exit (crash)")
@click.option("--rate", type=click.FloatRange(0, 1), default=None,
              help="share of requests (5xx, slow) or of tasks (unhealthy, crash); default 1")
@click.option("--after", "after", default=None,
              help="how long after a task starts the fault begins, e.g. 30s "
                   "(default: 0 for 5xx and slow, 10s for unhealthy and crash)")
@click.option("--latency", default=None, help="added latency of slow requests (default 500ms)")
def bake_cmd(from_ami, region, group_name, fault, rate, after, latency):
    """Register a new AMI, as a Packer build would, and print its id."""
    from rotator.sandbox.control import Sandbox

    project = _project()
    if group_name:
        region = project.group(group_name).aws.region
    baked = None
    if fault:
        from rotator.sandbox.dataplane.faults import ReleaseFault

        baked = ReleaseFault.of(fault, rate, _seconds(after, "--after"),
                                _seconds(latency, "--latency"))
    elif any(v is not None for v in (rate, after, latency)):
        raise click.UsageError("--rate, --after and --latency describe a --fault")
    click.echo(Sandbox(project).bake(region or "cn-north-1", from_ami, fault=baked))


def _duration(ctx, param, value):
    from rotator.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@sandbox.command("load")
@click.argument("name")
@click.option("--rps", default=200.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="requests per second, all clients together")
@click.option("--duration", default="60s", show_default=True, callback=_duration,
              help="how long to run (stops by itself; SIGINT or SIGTERM stops it early, and "
                   "it still reports)")
@click.option("--clients", default=50, show_default=True, type=click.IntRange(min=1),
              help="simulated clients, each with its own DNS cache and connections")
@click.option("--ttl-ignoring", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="share of clients that keep DNS answers past their TTL")
@click.option("--overstay", default="30s", show_default=True, callback=_duration,
              help="how long past the TTL those clients keep an answer (the JVM's default "
                   "cache time)")
@click.option("--connect-timeout", default="2s", show_default=True, callback=_duration)
@click.option("--read-timeout", default="5s", show_default=True, callback=_duration)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="write timeline.json (per second) and chart.png into this folder")
@click.option("--group", "groups", multiple=True,
              help="mark this group's rotation steps (default: the groups serving NAME)")
def load_cmd(name, rps, duration, clients, ttl_ignoring, overstay, connect_timeout,
             read_timeout, output, report_dir, groups):
    """Send HTTP traffic to NAME through the sandbox's DNS and load balancers, as TTL-caching
    clients do, and report every request: served by slot and AMI, failed by cause, latency.
    Loopback only: an address outside 127.0.0.0/8 is refused before anything is sent."""
    from rotator.sandbox.control import Sandbox
    from rotator.sandbox.load.command import NotServing, live_stream, render, run
    from rotator.sandbox.load.generator import LoadSettings
    from rotator.sandbox.load.loopback import NotLoopback

    box = Sandbox(_project())
    info = box.info()
    if info is None:
        click.echo("the sandbox is not running (`rotate sandbox up` starts it)", err=True)
        sys.exit(3)
    try:
        settings = LoadSettings(rps=rps, duration=duration, clients=clients,
                                ttl_ignoring=ttl_ignoring, overstay=overstay,
                                connect_timeout=connect_timeout, read_timeout=read_timeout)
        report = run(box.project, info, name, settings, groups=list(groups),
                     report_dir=report_dir, live=live_stream())
    except (NotServing, NotLoopback, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(render(report, output))


def _seconds(text, hint):
    if text is None:
        return None
    from rotator.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None
