"""The `rotate` command: parse, call, render. No rotation logic lives here.

Exit codes: 0 done; 1 failed and rolled back; 2 bad usage or input; 3 refused before
anything changed (lock held, an unfinished rotation, a failover the traffic guard refuses);
4 stopped, waiting for an operator; 5 the rollback itself failed: a human must act.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from rotator.config import Project, validate_ami
from rotator.diagnostics import dump_stacks_on
from rotator.errors import InputError, RotatorError
from rotator.model import RotationRecord, RotationStatus

EXIT_DONE, EXIT_FAILED, EXIT_INPUT, EXIT_REFUSED, EXIT_WAITING = 0, 1, 2, 3, 4
EXIT_ROLLBACK_FAILED = 5

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def exit_code_of(record: RotationRecord) -> int:
    if record.status is RotationStatus.DONE:
        return EXIT_DONE
    if record.status in (RotationStatus.WAITING, RotationStatus.PAUSED):
        return EXIT_WAITING
    if record.status is RotationStatus.ROLLBACK_FAILED:
        return EXIT_ROLLBACK_FAILED
    return EXIT_FAILED


class RotateGroup(click.Group):
    """`rotate GROUP --ami AMI` runs a rotation; every other first word is a verb."""

    def parse_args(self, ctx, args):
        # `rotate [--env E] GROUP --ami AMI`: the first word after the group's own options
        i = 0
        while i < len(args) and args[i].startswith("--env"):
            i += 1 if "=" in args[i] else 2
        if i < len(args) and not args[i].startswith("-") and args[i] not in self.commands:
            args = [*args[:i], "run", *args[i:]]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage("rotate", "GROUP --ami AMI [OPTIONS]\n       rotate COMMAND [ARGS]...")

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RotatorError as exc:
            _fail(exc)
        except (ClientError, BotoCoreError) as exc:  # a read outside any step (status, plan)
            _fail(RotatorError(f"AWS: {exc}"))
        except KeyboardInterrupt:
            err_console.print("interrupted: the record keeps the rotation's progress; "
                              "`rotate resume GROUP` carries on")
            sys.exit(130)


def _fail(exc: RotatorError) -> None:
    from rotator.ports import LockHeld

    label = {2: "error", 3: "refused", 4: "waiting"}.get(exc.exit_code, "failed")
    err_console.print(f"[bold red]{label}:[/] {exc}", markup=True, highlight=False)
    if isinstance(exc, LockHeld) and not exc.stale:
        err_console.print("another rotation of this group is running; try again when it ends")
    sys.exit(exc.exit_code)


def _project() -> Project:
    import os

    root = os.environ.get("ROTATOR_ROOT")
    return Project(Path(root)) if root else Project.find()


def _choose_env(ctx, param, value):
    import os

    if value:
        os.environ["ROTATOR_ENV"] = value  # read by every command, and by what it starts
    return value


@click.group(cls=RotateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rotator", prog_name="rotate")
@click.option("--env", "env", metavar="production|sandbox|FILE", expose_value=False,
              callback=_choose_env, is_eager=True,
              help="where the groups run (default: ROTATOR_ENV; the sandbox while it runs)")
def main() -> None:
    """Rotate immutable infrastructure groups on AWS: build a fresh copy from a new AMI,
    deploy its Marathon apps, gate on Consul health, shift Route53 weights and ELB
    registrations, destroy the old copy.

    \b
    Exit codes: 0 done, 1 failed (rolled back), 2 bad input, 3 refused before
                anything changed (lock held, traffic guard on failover), 4 waiting for an
                operator, 5 the rollback failed (a human must act).
    \b
    `kill -USR1 PID` makes a running command print where each of its threads is (to
    stderr) and carry on: what a command that seems stuck is waiting for.
    """
    dump_stacks_on(signal.SIGUSR1)


output_option = click.option("--output", type=click.Choice(["text", "json"]), default="text",
                             show_default=True, help="text on a terminal, or one JSON object per event")


@main.command("run", hidden=True)
@click.argument("group")
@click.option("--ami", required=True, help="the AMI to build the new slot from")
@click.option("--policy", "policy_name", help="policy name (default: the group's default_policy)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation on a terminal")
@click.option("--dry-run", is_flag=True, help="print the plan and stop")
@click.option("--break-lock", is_flag=True, help="break a stale lock left by a dead process")
@output_option
def run_cmd(group, ami, policy_name, yes, dry_run, break_lock, output):
    """Rotate GROUP onto AMI."""
    from rotator.session import Session

    validate_ami(ami)
    session = Session.open(_project(), group, policy_name)
    if dry_run:
        _print_plan(session, ami, output)
        return
    interactive = sys.stdout.isatty() and output == "text"
    if interactive and not yes:
        _print_plan(session, ami, output)
        if not click.confirm("Proceed?", default=False):
            raise InputError("cancelled: nothing was changed")
    record = session.run(ami, output=output, interactive=interactive, break_lock=break_lock)
    _finish(record, output)


def _print_plan(session, ami: str, output: str) -> None:
    record = session.plan(ami)
    if output == "json":
        print(json.dumps({"event": "plan", **record.to_dict()}))
        return
    out_console.print(f"[bold]{record.group}[/] [magenta]({record.environment})[/]: "
                      f"{record.stable or '(nothing live)'} → "
                      f"[cyan]{record.candidate}[/] from {ami} under policy {record.policy}")
    if record.stable_ami:
        out_console.print(f"  live slot {record.stable} runs {record.stable_ami}")
    for i, st in enumerate(record.steps, 1):
        undo = f"  [dim](undo: {st.compensation})[/]" if st.compensation else ""
        out_console.print(f"  {i:2}. {st.name}{undo}")
    out_console.print("  on failure: " + {
        "rollback": "weights back to the live slot, candidate out of the ELB and destroyed",
        "pause": "stop and wait for an operator (resume or abort)",
    }[session.policy.on_failure])


def _finish(record: RotationRecord, output: str) -> None:
    from rotator.render import left_behind, summary

    code = exit_code_of(record)
    if output == "json":
        print(json.dumps(summary(record)))
    else:
        style = {0: "bold green", 1: "bold red", 4: "bold yellow", 5: "bold red"}[code]
        message = {
            RotationStatus.DONE: f"{record.group} now runs {record.ami} on {record.candidate}",
            RotationStatus.ROLLED_BACK: f"rolled back: {record.reason}",
            RotationStatus.ROLLBACK_FAILED: f"{record.reason}\n{left_behind(record)}\n"
                                   f"an operator must act: fix the cause, then "
                                   f"`rotate resume {record.group}` finishes the rollback",
            RotationStatus.WAITING: f"waiting for approval: run `rotate promote {record.group}`"
                                    f" (or `rotate abort {record.group}`)",
            RotationStatus.PAUSED: f"paused: {record.reason}",
        }[record.status]
        out_console.print(f"[{style}]{record.status.value}[/]: {message}")
    sys.exit(code)


@main.command("plan")
@click.argument("group")
@click.option("--ami", required=True)
@click.option("--policy", "policy_name")
@click.option("--terraform", "with_terraform", is_flag=True,
              help="also run `terraform plan` for the new slot")
@output_option
def plan_cmd(group, ami, policy_name, with_terraform, output):
    """Show the steps a rotation of GROUP onto AMI would run (changes nothing)."""
    from rotator.session import Session

    validate_ami(ami)
    session = Session.open(_project(), group, policy_name)
    _print_plan(session, ami, output)
    if with_terraform:
        record = session.plan(ami)
        summary = session.infra.plan(record.candidate, ami)
        out_console.print(f"  terraform: {summary.add} to add, {summary.change} to change, "
                          f"{summary.destroy} to destroy")
        for line in summary.resources:
            out_console.print(f"    {line}")


@main.command("resume")
@click.argument("group")
@click.option("--break-lock", is_flag=True, help="break a stale lock left by a dead process")
@click.option("--override-quiet", "override_quiet", metavar="SLOT",
              help="destroy SLOT without waiting until it is quiet (recorded in the history)")
@output_option
def resume_cmd(group, break_lock, override_quiet, output):
    """Carry on GROUP's unfinished rotation or failover (after a crash, a pause or an approval)."""
    from rotator.failover_runner import resume_failover
    from rotator.session import Session

    project = _project()
    event = resume_failover(project, group)
    if event is not None:
        _print_event(event, output)
        return
    session = Session.open_current(project, group)
    if override_quiet:
        session.override_quiet(override_quiet)
    interactive = sys.stdout.isatty() and output == "text"
    record = session.resume(output=output, interactive=interactive, break_lock=break_lock)
    _finish(record, output)


@main.command("abort")
@click.argument("group")
@click.option("--reason", default="requested by operator", show_default=True)
@output_option
def abort_cmd(group, reason, output):
    """Roll GROUP's rotation back (before it retires the old slot)."""
    from rotator.session import Session

    session = Session.open_current(_project(), group)
    record = session.request(abort=reason, output=output)
    if record is None:
        out_console.print(f"abort requested; the running rotation of {group} acts on it "
                          "before its next step")
        return
    _finish(record, output)


@main.command("promote")
@click.argument("group")
@output_option
def promote_cmd(group, output):
    """Approve GROUP's rotation waiting at an approval step, and carry it on."""
    from rotator.session import Session

    session = Session.open_current(_project(), group)
    record = session.request(promote=True, output=output)
    if record is None:
        out_console.print(f"promoted; the running rotation of {group} carries on")
        return
    _finish(record, output)


@main.command("status")
@click.argument("group", required=False)
@output_option
def status_cmd(group, output):
    """Show GROUP's live slot, AMI, weights, registrations and its latest rotation."""
    from rotator.status import show_status

    show_status(_project(), group, output, out_console)


@main.command("history")
@click.argument("group")
@click.option("--limit", default=20, show_default=True)
@output_option
def history_cmd(group, limit, output):
    """List GROUP's rotations and failovers, newest last."""
    from rotator.status import show_history

    show_history(_project(), group, limit, output, out_console)


@main.command("validate")
def validate_cmd():
    """Check every group and policy (and app definitions); exit 2 listing all errors."""
    project = _project()
    groups, policies, errors = project.validate_all()
    if errors:
        for e in errors:
            err_console.print(f"[red]✘[/] {e}", highlight=False)
        err_console.print(f"{len(errors)} error(s)")
        sys.exit(EXIT_INPUT)
    out_console.print(f"[green]✔[/] {len(groups)} group(s) and {len(policies)} policies are valid: "
                      + ", ".join(g.name for g in groups))


@main.command("failover")
@click.argument("group")
@click.option("--to", "peer", required=True, help="the peer group to move traffic to")
@click.option("--force", is_flag=True, help="skip the SOURCE's health check (it is down); "
                                            "the target's is always checked")
@click.option("--yes", is_flag=True)
@output_option
def failover_cmd(group, peer, force, yes, output):
    """Move all traffic of a master/slave pair from GROUP to its PEER."""
    from rotator.failover_runner import failover_between

    if sys.stdout.isatty() and not yes and not click.confirm(
            f"Move all traffic of {group}'s shared records to {peer}?", default=False):
        raise InputError("cancelled: nothing was changed")
    event = failover_between(_project(), group, peer, force=force)
    _print_event(event, output)


@main.command("failback")
@click.argument("group")
@click.option("--force", is_flag=True, help="skip the current side's health check")
@click.option("--yes", is_flag=True)
@output_option
def failback_cmd(group, force, yes, output):
    """Move the pair's traffic back to GROUP (the master) from its peer."""
    from rotator.failover_runner import failover_between

    project = _project()
    peer = project.group(group).peer
    if not peer:
        raise InputError(f"group {group} has no peer", field="peer",
                         file=str(project.groups_dir / group / "group.yaml"))
    if sys.stdout.isatty() and not yes and not click.confirm(
            f"Move all traffic of the pair back to {group}?", default=False):
        raise InputError("cancelled: nothing was changed")
    event = failover_between(project, peer, group, force=force, action="failback")
    _print_event(event, output)


def _print_event(event: dict, output: str) -> None:
    if output == "json":
        print(json.dumps(event, default=str))
        return
    out_console.print(f"[bold green]{event['kind']}[/]: {event['from']} → {event['to']}"
                      + (" (forced)" if event.get("forced") else ""))
    for key, weights in event.get("after", {}).items():
        out_console.print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in sorted(weights.items())))


@main.command("serve")
@click.option("--listen", default="127.0.0.1:8686", show_default=True, metavar="HOST:PORT",
              help="where to serve the dashboard, the API and /metrics")
@click.option("--env", "env", metavar="production|sandbox|FILE", expose_value=False,
              callback=_choose_env, is_eager=True, help="as `rotate --env`")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="file holding the token pages and API calls need (default: "
                   "ROTATOR_SERVE_TOKEN); required beyond loopback")
@click.option("--public-url", help="the dashboard's address, for links in notifications")
@click.option("--resume-paused/--no-resume-paused", default=None,
              help="also carry on rotations paused for an operator (default: the "
                   "environment's serve.resume_paused, off)")
def serve_cmd(listen, token_file, public_url, resume_paused):
    """Run a controller with a web dashboard, notifications and Prometheus metrics: it carries
    on every group's rotation that no `rotate` process holds (an approval waiting after a
    non-interactive run, a rotation whose process died)."""
    from rotator.serve import serve

    serve(_project(), listen=listen, token_file=token_file, public_url=public_url,
          resume_paused=resume_paused)


def _register_sandbox() -> None:
    from rotator.sandbox.cli import sandbox

    main.add_command(sandbox)


_register_sandbox()


if __name__ == "__main__":  # pragma: no cover
    main()
