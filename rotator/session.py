"""One group as one command sees it: its configuration, its environment's adapters, and
the engine over them (what `rotate`, `rotate serve` and the sandbox run)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from rotator.config import GroupConfig, Policy, Project
from rotator.engine import Engine, Event
from rotator.environment import Environment, load_environment
from rotator.errors import InputError
from rotator.model import RotationRecord, RotationStatus
from rotator.state.control import operator_request
from rotator.steps import requirements
from rotator.wiring import (
    AwsAccess,
    Deferred,
    absolute_apps,
    aws_access,
    in_environment,
    make_apps,
    make_health,
    make_infra,
    make_store,
    make_traffic,
    warm,
)


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


def _dead_holder(info) -> bool:
    from rotator.identity import holder_dead

    return holder_dead(info.host, info.pid)

