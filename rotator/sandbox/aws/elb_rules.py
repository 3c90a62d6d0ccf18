"""Rules AWS enforces on load balancers that moto does not, and one it enforces wrongly.

Each rule quotes its source (the Elastic Load Balancing API references):

- Classic ELB, RegisterInstancesWithLoadBalancer: "The instance must be a running instance
  in the same network as the load balancer (EC2-Classic or the same VPC)". AWS answers
  ``InvalidInstance`` ("The specified endpoint is not valid").
- Classic ELB, CreateLoadBalancer: the name "must have a maximum of 32 characters, must
  contain only alphanumeric characters or hyphens, and cannot begin or end with a hyphen"
  (``ValidationError``).
- ELBv2, CreateLoadBalancer / CreateTargetGroup: the same for their names, and a load
  balancer's name "must not begin with "internal-"" (``ValidationError``).
- ELBv2, target type ``ip`` (CreateTargetGroup TargetType, TargetDescription): targets
  may be addresses of the target group's VPC, of RFC 1918 (10/8, 172.16/12, 192.168/16) or
  RFC 6598 (100.64/10); "You can't specify publicly routable IP addresses". For an address
  outside the VPC, AvailabilityZone "is required"; for one inside, it is detected and
  cannot be overridden to ``all`` (``ValidationError``).
- ELBv2, ForwardConfig: each TargetGroupTuple weight "is a value from 0 to 999"; at most 5
  target groups per forward action (quotas) (``ValidationError``).
- ELBv2, DeregisterTargets: "If the specified target does not exist, the action returns
  successfully" (moto refuses it with InvalidTarget).
- ELBv2, ``deregistration_delay.timeout_seconds``: "The range is 0-3600 seconds" (moto
  refuses 3600).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from moto.ec2.models import ec2_backends
from moto.elb import models as elb_models
from moto.elb.exceptions import ELBClientError
from moto.elbv2 import models as elbv2_models
from moto.elbv2.exceptions import ValidationError

NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
PRIVATE = [ipaddress.ip_network(n) for n in
           ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]
MAX_WEIGHT = 999
MAX_TARGET_GROUPS = 5


class InvalidInstance(ELBClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidInstance", message)


class ClassicValidationError(ELBClientError):
    def __init__(self, message: str) -> None:
        super().__init__("ValidationError", message)


def _name_problem(name: str, what: str) -> str | None:
    if len(name) > 32:
        return f"{what} name cannot be longer than 32 characters"
    if not NAME.match(name):
        return (f"{what} name cannot contain characters that are not letters, or digits or "
                "the dash, nor begin or end with a dash")
    return None


# -- classic ELB ----------------------------------------------------------------------------


def create_classic(original: Callable, _context: Any, backend: Any, *args: Any,
                   **kwargs: Any) -> Any:
    name = kwargs.get("name", args[0] if args else "")
    problem = _name_problem(name, "LoadBalancer")
    if problem:
        raise ClassicValidationError(problem)
    return original(backend, *args, **kwargs)


def register_classic(original: Callable, _context: Any, backend: Any, load_balancer_name: str,
                     instance_ids: Any, *args: Any, **kwargs: Any) -> Any:
    balancer = backend.get_load_balancer(load_balancer_name)
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    for instance_id in instance_ids:
        try:
            instance = ec2.get_instance(instance_id)
        except Exception:  # unknown ids: moto's own answer stands
            continue
        if balancer is not None and instance.vpc_id != balancer.vpc_id:
            raise InvalidInstance(
                f"EC2 instance {instance_id} is not in the same VPC as ELB "
                f"{load_balancer_name} ({instance.vpc_id} vs {balancer.vpc_id})")
    return original(backend, load_balancer_name, instance_ids, *args, **kwargs)


# -- ELBv2 ----------------------------------------------------------------------------------


def create_v2(original: Callable, _context: Any, backend: Any, *args: Any, **kwargs: Any) -> Any:
    name = kwargs.get("name", args[0] if args else "")
    problem = _name_problem(name, "Load balancer")
    if problem is None and name.startswith("internal-"):
        problem = "Load balancer name cannot begin with 'internal-'"
    if problem:
        raise ValidationError(problem)
    return original(backend, *args, **kwargs)


def create_target_group(original: Callable, _context: Any, backend: Any, name: str,
                        *args: Any, **kwargs: Any) -> Any:
    problem = _name_problem(name, "Target group")
    if problem:
        raise ValidationError(problem)
    return original(backend, name, *args, **kwargs)


def register_targets(original: Callable, _context: Any, backend: Any, target_group_arn: str,
                     instances: list[Any], *args: Any, **kwargs: Any) -> Any:
    group = backend.target_groups.get(target_group_arn)
    if group is not None and group.target_type == "ip":
        vpc = ec2_backends[backend.account_id][backend.region_name].get_vpc(group.vpc_id)
        inside = ipaddress.ip_network(vpc.cidr_block)
        for target in instances:
            _check_ip_target(target, inside)
    return original(backend, target_group_arn, instances, *args, **kwargs)


def _check_ip_target(target: dict[str, Any], vpc: ipaddress.IPv4Network) -> None:
    ip_text, zone = target["Id"], target.get("AvailabilityZone")
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        raise ValidationError(f"The IP address '{ip_text}' is not a valid IPv4 address") from None
    if ip in vpc:
        if zone == "all":
            raise ValidationError(f"The IP address '{ip}' is within the VPC, and cannot have its "
                                  "Availability Zone overridden to 'all'")
        return
    if not any(ip in net for net in PRIVATE):
        raise ValidationError(f"The IP address '{ip}' is publicly routable: ip targets must be "
                              "in the VPC, RFC 1918 or RFC 6598 ranges")
    if not zone:
        raise ValidationError(f"The Availability Zone is required for IP address '{ip}' because "
                              "it is not in the VPC")


def deregister_quietly(original: Callable, _context: Any, group: Any,
                       targets: list[dict[str, Any]]) -> Any:
    known = [t for t in targets if t["Id"] in group.targets]
    return original(group, known)


def _check_forward(actions: list[dict[str, Any]] | None) -> None:
    for action in actions or []:
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
        if len(groups) > MAX_TARGET_GROUPS:
            raise ValidationError(f"A forward action can have at most {MAX_TARGET_GROUPS} "
                                  f"target groups, not {len(groups)}")
        for tg in groups:
            weight = int(tg.get("Weight", 1))
            if not 0 <= weight <= MAX_WEIGHT:
                raise ValidationError(f"Target group weight {weight} is not between 0 and "
                                      f"{MAX_WEIGHT}")


def create_listener(original: Callable, _context: Any, backend: Any, *args: Any,
                    **kwargs: Any) -> Any:
    _check_forward(kwargs.get("actions"))
    return original(backend, *args, **kwargs)


def modify_listener(original: Callable, _context: Any, backend: Any, *args: Any,
                    **kwargs: Any) -> Any:
    # (arn, port, protocol, ssl_policy, certificates, actions), as moto's response calls it
    _check_forward(kwargs.get("actions", args[5] if len(args) > 5 else None))
    return original(backend, *args, **kwargs)


def target_group_attributes(original: Callable, _context: Any, backend: Any, arn: str,
                            attributes: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    key = "deregistration_delay.timeout_seconds"
    if str(attributes.get(key)) == "3600":  # AWS's upper bound, refused by moto
        result = original(backend, arn, {**attributes, key: "3599"}, *args, **kwargs)
        backend.target_groups[arn].attributes[key] = "3600"
        return result
    return original(backend, arn, attributes, *args, **kwargs)


def install(patch: Callable[[type, str, Callable], None]) -> None:
    patch(elb_models.ELBBackend, "create_load_balancer", create_classic)
    patch(elb_models.ELBBackend, "register_instances", register_classic)
    patch(elbv2_models.ELBv2Backend, "create_load_balancer", create_v2)
    patch(elbv2_models.ELBv2Backend, "create_target_group", create_target_group)
    patch(elbv2_models.ELBv2Backend, "register_targets", register_targets)
    patch(elbv2_models.FakeTargetGroup, "deregister", deregister_quietly)
    patch(elbv2_models.ELBv2Backend, "create_listener", create_listener)
    patch(elbv2_models.ELBv2Backend, "modify_listener", modify_listener)
    patch(elbv2_models.ELBv2Backend, "modify_target_group_attributes", target_group_attributes)
