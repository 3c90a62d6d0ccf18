"""Fixes to moto's models where it differs from AWS in ways the rotator or the
real Terraform provider trip on.

The patches are installed once per process, but each one only acts while a
request is being served by an :class:`~rotator.sandbox.aws.AwsEmulator`
(``serving`` is set around every request); anything else using moto in the
same process sees moto unchanged.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto import settings as moto_settings
from moto.ec2 import models as ec2_models
from moto.elb import models as elb_models
from moto.elb import responses as elb_responses
from moto.elbv2 import models as elbv2_models
from moto.route53 import models as r53_models
from moto.route53.exceptions import (
    DnsNameInvalidForZone,
    InvalidActionValue,
    InvalidInput,
    Route53ClientError,
)
from moto.route53.utils import validate_domain_name

from . import elb_rules, route53_changes
from .serving import ServingContext, serving

# CanonicalHostedZoneNameID of classic load balancers, per region (AWS's published ids).
ELB_HOSTED_ZONE_IDS = {
    "us-east-1": "Z35SXDOTRQ7X7K",
    "us-east-2": "Z3AADJGX6KTTL2",
    "us-west-1": "Z368ELLRRE2KJ0",
    "us-west-2": "Z1H1FL5HABSF5",
    "ca-central-1": "ZQSVJUPU6J1EY",
    "eu-west-1": "Z32O12XQLNTSW2",
    "eu-west-2": "ZHURV8PSTC4K8",
    "eu-central-1": "Z215JYRZR1TBD5",
    "ap-south-1": "ZP97RAFLXTNZK",
    "ap-northeast-1": "Z14GRHDCWA56QT",
    "ap-northeast-2": "ZWKZPGTI48KDX",
    "ap-southeast-1": "Z1LMS91P8CMLE5",
    "ap-southeast-2": "Z1GM3OXH4ZPM65",
    "sa-east-1": "Z2P70J7HTTTPLU",
    "cn-north-1": "Z1GDH35T77C1KE",
    "cn-northwest-1": "ZM7IZAIOVVDZF",
}

OUT_OF_SERVICE_DESCRIPTION = (
    "Instance has failed at least the UnhealthyThreshold number of health checks consecutively."
)


_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Install every patch (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _patch(r53_models.Route53Backend, "change_resource_record_sets", _change_record_sets)
        _patch(elb_models.ELBBackend, "create_load_balancer", _create_load_balancer)
        _patch(
            elb_models.ELBBackend,
            "modify_load_balancer_attributes",
            _modify_load_balancer_attributes,
        )
        _patch(elb_models.ELBBackend, "describe_instance_health", _describe_instance_health)
        _patch(elb_models.ELBBackend, "register_instances", _register_instances)
        _patch(elb_responses.ELBResponse, "describe_instance_health", _instance_health_response)
        _patch(elbv2_models.FakeTargetGroup, "health_for", _target_health)
        _patch(ec2_models.EC2Backend, "create_nat_gateway", _create_nat_gateway)
        route53_changes.install(_patch)
        elb_rules.install(_patch)  # after the fixes above: the rules check first
        moto_settings.ENABLE_AMI_VALIDATION = _AmiValidationFlag(moto_settings.ENABLE_AMI_VALIDATION)
        _installed = True


def _patch(cls: type, name: str, replacement: Callable[..., Any]) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def dispatch(self: Any, *args: Any, **kwargs: Any) -> Any:
        context = serving.get()
        if context is None:
            return original(self, *args, **kwargs)
        return replacement(original, context, self, *args, **kwargs)

    setattr(cls, name, dispatch)


class _AmiValidationFlag:
    """Stands in for moto's module-level setting; truthy per serving emulator."""

    def __init__(self, default: Any) -> None:
        self._default = bool(default)

    def __bool__(self) -> bool:
        context = serving.get()
        return self._default if context is None else context.ami_validation


# --------------------------------------------------------------------------
# Route53: records are identified by name + type + SetIdentifier, as in AWS.


def _record_key(name: str, rtype: str | None, set_identifier: str | None) -> tuple:
    return (name.rstrip(".").lower(), rtype, set_identifier)


def _describe(key: tuple) -> str:
    name, rtype, set_identifier = key
    text = f"name='{name}.', type='{rtype}'"
    if set_identifier is not None:
        text += f", set-identifier='{set_identifier}'"
    return f"[{text}]"


def _values(record: dict[str, Any]) -> tuple:
    values = [
        r["Value"] if isinstance(r, dict) else r for r in record.get("ResourceRecords") or []
    ]
    alias = record.get("AliasTarget") or {}
    ttl = record.get("TTL")
    return (
        None if ttl is None else int(ttl),
        tuple(sorted(values)),
        str(alias.get("DNSName", "")).rstrip(".").lower(),
        None if record.get("Weight") is None else int(record["Weight"]),
    )


def _stored_as_change(rrset: Any) -> dict[str, Any]:
    return {
        "TTL": rrset.ttl,
        "ResourceRecords": list(rrset.records or []),
        "AliasTarget": rrset.alias_target,
        "Weight": rrset.weight,
    }


def _check_routing(index: int, action: str, record: dict[str, Any]) -> None:
    weight = record.get("Weight")
    described = (
        f"[Action={action}, Name={record['Name']}, Type={record.get('Type')}, "
        f"SetIdentifier={record.get('SetIdentifier', 'null')}]"
    )
    if weight is not None:
        try:
            value = int(weight)
        except (TypeError, ValueError):
            raise InvalidInput(f"Invalid request: Weight '{weight}' is not a number") from None
        if not 0 <= value <= 255:
            bound = "greater than or equal to 0" if value < 0 else "less than or equal to 255"
            raise InvalidInput(
                f"1 validation error detected: Value '{value}' at "
                f"'changeBatch.changes.{index}.member.resourceRecordSet.weight' failed to "
                f"satisfy constraint: Member must have value {bound}"
            )
        if record.get("SetIdentifier") is None:
            raise InvalidInput(f"Invalid request: Missing field 'SetIdentifier' in Change with {described}")
    routing = ("Weight", "Region", "Failover", "GeoLocation", "MultiValueAnswer", "CidrRoutingConfig")
    if record.get("SetIdentifier") is not None and not any(record.get(k) is not None for k in routing):
        raise InvalidInput(
            "Invalid request: Expected exactly one of [Weight, Region, Failover, GeoLocation, "
            f"MultiValueAnswer, or CidrRoutingConfig], but found none in Change with {described}"
        )


def _change_record_sets(
    _original: Callable, _context: ServingContext, backend: Any, zoneid: str, change_list: list
) -> None:
    zone = backend.get_hosted_zone(zoneid)
    zone_name = zone.name.strip(".").lower()
    # Validate the whole batch, in order, against a view of the zone, so a
    # rejected batch changes nothing (AWS applies batches atomically).
    view: dict[tuple, dict[str, Any]] = {
        _record_key(r.name, r.type, r.set_identifier): _stored_as_change(r) for r in zone.rrsets
    }
    problems: list[str] = []
    for index, change in enumerate(change_list, start=1):
        action = change["Action"]
        record = change["ResourceRecordSet"]
        validate_domain_name(record["Name"], code="InvalidChangeBatch")
        if action not in ("CREATE", "UPSERT", "DELETE"):
            raise InvalidActionValue(action)
        name = record["Name"].strip(".").lower()
        if name != zone_name and not name.endswith("." + zone_name):
            raise DnsNameInvalidForZone(name=record["Name"], zone_name=zone.name)
        if action != "DELETE":
            _check_routing(index, action, record)
        key = _record_key(record["Name"], record.get("Type"), record.get("SetIdentifier"))
        if action == "CREATE":
            if key in view:
                problems.append(f"Tried to create resource record set {_describe(key)} but it already exists")
            view[key] = record
        elif action == "UPSERT":
            view[key] = record
        elif key not in view:
            problems.append(f"Tried to delete resource record set {_describe(key)} but it was not found")
        elif _values(view[key]) != _values(record):
            problems.append(
                f"Tried to delete resource record set {_describe(key)} but the values "
                "provided do not match the current values"
            )
        else:
            del view[key]
    if problems:
        raise Route53ClientError("InvalidChangeBatch", "[" + ", ".join(problems) + "]")

    for change in change_list:
        original_change = {**change, "ResourceRecordSet": dict(change["ResourceRecordSet"])}
        record = change["ResourceRecordSet"]
        if not record["Name"].endswith("."):
            record["Name"] += "."
        key = _record_key(record["Name"], record.get("Type"), record.get("SetIdentifier"))
        zone.rrsets = [
            r for r in zone.rrsets if _record_key(r.name, r.type, r.set_identifier) != key
        ]
        if change["Action"] != "DELETE":
            if "ResourceRecords" in record:
                record["ResourceRecords"] = [
                    r["Value"] if isinstance(r, dict) else r for r in record["ResourceRecords"]
                ]
            zone.add_rrset(record)
        zone.rr_changes.append(original_change)


# --------------------------------------------------------------------------
# Classic ELB: the defaults and identifiers real AWS returns.


def _create_load_balancer(
    original: Callable, _context: ServingContext, backend: Any, *args: Any, **kwargs: Any
) -> Any:
    existing = backend.load_balancers.get(kwargs.get("name"))
    if existing is not None and _same_balancer(existing, kwargs):
        # "All Elastic Load Balancing operations are idempotent": an SDK retry of a create
        # that did succeed gets the balancer back. moto refuses it (DuplicateLoadBalancerName)
        # and Terraform is left with a balancer its state does not know.
        return existing
    balancer = original(backend, *args, **kwargs)
    region = backend.region_name
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    prefix = "internal-" if balancer.scheme == "internal" else ""
    balancer.dns_name = f"{prefix}{balancer.name}.{region}.elb.{suffix}"
    balancer.canonical_hosted_zone_name_id = ELB_HOSTED_ZONE_IDS.get(region, "Z35SXDOTRQ7X7K")
    if balancer.health_check is None and balancer.listeners:
        # AWS gives every classic ELB a TCP check on the first listener's instance port.
        balancer.health_check = elb_models.FakeHealthCheck(
            timeout="5",
            healthy_threshold="10",
            unhealthy_threshold="2",
            interval="30",
            target=f"TCP:{balancer.listeners[0].instance_port}",
        )
    if "timeout" not in balancer.attributes["connection_draining"]:
        balancer.attributes["connection_draining"]["timeout"] = 300
    return balancer


def _register_instances(original: Callable, _context: ServingContext, backend: Any,
                        load_balancer_name: str, instance_ids: Any, *args: Any,
                        **kwargs: Any) -> Any:
    """Registering an instance that is registered already changes nothing in AWS; moto
    lists it twice (a retried call then leaves duplicates in DescribeLoadBalancers)."""
    balancer = backend.get_load_balancer(load_balancer_name)
    known = set(balancer.instance_sparse_ids) | set(balancer.instance_autoscaling_ids)
    fresh = [i for i in dict.fromkeys(instance_ids) if i not in known]
    return original(backend, load_balancer_name, fresh, *args, **kwargs)


def _same_balancer(balancer: Any, wanted: dict[str, Any]) -> bool:
    def listener(port: dict[str, Any]) -> tuple:
        return ((_first(port, "protocol", "Protocol") or "").lower(),
                int(_first(port, "load_balancer_port", "LoadBalancerPort") or 0),
                int(_first(port, "instance_port", "InstancePort") or 0))

    return (
        sorted(listener(p) for p in wanted.get("ports") or [])
        == sorted((ln.protocol.lower(), int(ln.load_balancer_port), int(ln.instance_port))
                  for ln in balancer.listeners)
        and sorted(wanted.get("subnets") or []) == sorted(balancer.subnets)
        and (wanted.get("scheme") or "internet-facing") == balancer.scheme
        and sorted(wanted.get("security_groups") or []) == sorted(balancer.security_groups)
    )


def _modify_load_balancer_attributes(
    original: Callable,
    _context: ServingContext,
    backend: Any,
    load_balancer_name: str,
    *args: Any,
    **kwargs: Any,
) -> Any:
    draining = kwargs.get("connection_draining")
    balancer = backend.get_load_balancer(load_balancer_name)
    if draining and balancer is not None:
        # moto stores the request's keys beside its own defaults, so the
        # timeout answered is not the one set; AWS also keeps the current
        # timeout when a call only toggles draining.
        current = balancer.attributes.get("connection_draining", {})
        timeout = _first(draining, "Timeout", "timeout")
        if timeout is None:
            timeout = _first(current, "timeout", "Timeout")
        kwargs["connection_draining"] = {
            "enabled": _truthy(_first(draining, "Enabled", "enabled")),
            "timeout": int(timeout if timeout is not None else 300),
        }
    return original(backend, load_balancer_name, *args, **kwargs)


def _create_nat_gateway(original: Callable[..., Any], context: Any, backend: Any,
                        subnet_id: str, allocation_id: str, *args: Any, **kwargs: Any) -> Any:
    """AWS makes CreateNatGateway idempotent (ClientToken): an SDK retry of a call that did
    succeed gets the same gateway back. moto creates a second one, whose EIP association
    then fails (Resource.AlreadyAssociated)."""
    for gateway in backend.nat_gateways.values():
        if (gateway.state != "deleted" and gateway.subnet_id == subnet_id and allocation_id
                and any(a.get("allocationId") == allocation_id for a in gateway.address_set)):
            return gateway
    return original(backend, subnet_id, allocation_id, *args, **kwargs)


def _first(mapping: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return None


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _describe_instance_health(
    original: Callable, context: ServingContext, backend: Any, lb_name: str, instances: list
) -> list[dict[str, Any]]:
    states = original(backend, lb_name, instances)
    for state in states:
        forced = context.forced_health(lb_name, state["InstanceId"])
        if forced is not None and state["State"] != "Unknown" and forced != state["State"]:
            state["State"] = forced
            state.pop("ReasonCode", None)  # a forced state's reason is not the real one's
            state.pop("Description", None)
        if state["State"] == "OutOfService":
            state.setdefault("ReasonCode", "Instance")
            state.setdefault("Description", OUT_OF_SERVICE_DESCRIPTION)
    return states


def _instance_health_response(
    _original: Callable, _context: ServingContext, response: Any
) -> Any:
    lb_name = response._get_param("LoadBalancerName")
    instances = response._get_param("Instances", [])
    states = response.elb_backend.describe_instance_health(lb_name, instances)
    return elb_responses.ActionResult(
        {
            "InstanceStates": [
                {
                    "InstanceId": s["InstanceId"],
                    "State": s["State"],
                    "ReasonCode": s.get("ReasonCode", "N/A"),
                    "Description": s.get("Description", "N/A"),
                }
                for s in states
            ]
        }
    )


_TARGET_REASONS = {
    "initial": ("Elb.InitialHealthChecking", "Initial health checks in progress"),
    "unhealthy": ("Target.FailedHealthChecks", "Health checks failed"),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
    "unavailable": ("Target.HealthCheckDisabled", "Health checks are disabled"),
}


def _target_health(original: Callable, context: ServingContext, group: Any,
                   target: dict[str, Any], ec2_backend: Any) -> Any:
    status = original(group, target, ec2_backend)
    forced = context.forced_target_health(group.arn, target["Id"])
    if forced is not None and target["Id"] in group.targets:
        status.status = forced
        status.reason, status.description = _TARGET_REASONS.get(forced, (None, None))
    return status
