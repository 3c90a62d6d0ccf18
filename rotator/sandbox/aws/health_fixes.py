"""Load-balancer health from real health checks, where the emulator has a source of them.

moto reports every running registered instance ``InService`` and every target
``healthy``, and forgets a target the moment it is deregistered. When the emulator's
``health_source`` is set (the world's data plane runs real health checks and drains
deregistered targets), DescribeInstanceHealth and DescribeTargetHealth answer from it:
classic ``InService``/``OutOfService`` with AWS's reason codes and descriptions, ALB
``initial``/``healthy``/``unhealthy``/``unused``/``draining``. The emulator's forced
health (``set_instance_health``) still wins: :mod:`.moto_fixes` applies it on top.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from moto.elb import models as elb_models
from moto.elbv2 import models as elbv2_models

from .moto_fixes import _patch
from .serving import ServingContext

_installed = False


class HealthSource(Protocol):
    def instance_health(self, region: str, lb_name: str) -> dict[str, Any]:
        """instance id -> verdict (``state``, ``reason``, ``description``)."""

    def target_health(self, region: str, group_arn: str) -> dict[tuple[str, int], Any] | None:
        """(target id, port) -> verdict, draining targets included; None: unknown group."""


def install() -> None:
    global _installed
    if _installed:
        return
    _patch(elb_models.ELBBackend, "describe_instance_health", _describe_instance_health)
    _patch(elbv2_models.ELBv2Backend, "describe_target_health", _describe_target_health)
    _installed = True


def _source(context: ServingContext) -> HealthSource | None:
    return getattr(context, "health_source", None)


def _describe_instance_health(original: Callable, context: ServingContext, backend: Any,
                              lb_name: str, instances: list) -> list[dict[str, Any]]:
    states = original(backend, lb_name, instances)
    source = _source(context)
    if source is None:
        return states
    verdicts = source.instance_health(backend.region_name, lb_name)
    for state in states:
        verdict = verdicts.get(state["InstanceId"])
        if verdict is None:
            continue
        state["State"] = verdict.state
        state["ReasonCode"] = verdict.reason or "N/A"
        state["Description"] = verdict.description or "N/A"
    return states


def _describe_target_health(original: Callable, context: ServingContext, backend: Any,
                            target_group_arn: str, targets: list[dict[str, Any]]) -> list[Any]:
    statuses = original(backend, target_group_arn, targets)
    source = _source(context)
    if source is None:
        return statuses
    verdicts = source.target_health(backend.region_name, target_group_arn)
    if verdicts is None:
        return statuses
    group = backend.target_groups[target_group_arn]
    seen = set()
    for status in statuses:
        key = (status.instance_id, int(status.port))
        verdict = verdicts.get(key) or next(
            (v for (i, _), v in verdicts.items() if i == status.instance_id), None)
        seen.add(key)
        if verdict is not None:
            _set(status, verdict)
    if not targets:  # the listing includes targets that are still draining
        for (target_id, port), verdict in verdicts.items():
            if verdict.state == "draining" and (target_id, port) not in seen:
                status = elbv2_models.FakeHealthStatus(target_id, str(port),
                                                       group.health_check_port, "draining")
                _set(status, verdict)
                statuses.append(status)
    return statuses


def _set(status: Any, verdict: Any) -> None:
    status.status = verdict.state
    status.reason = verdict.reason
    status.description = verdict.description
