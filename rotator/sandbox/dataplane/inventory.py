"""What the data plane serves, read from the AWS emulator's models: load balancers, their
listeners, health checks, registrations and settings, target groups, the instances they
name, the proxy instances and VPC peerings. Plain frozen values, read under the
emulator's lock (``AwsEmulator.inspect``), so the event loop never touches moto.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PROXY_ROLE = "proxy"


@dataclass(frozen=True)
class Instance:
    id: str
    region: str
    state: str
    private_ip: str | None
    vpc_id: str | None
    image_id: str | None
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True)
class HealthCheck:
    protocol: str  # HTTP or TCP (HTTPS and SSL are probed as HTTP and TCP: no TLS here)
    port: int | None  # None: the traffic port
    path: str
    interval: float
    timeout: float
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str = "200"
    enabled: bool = True


@dataclass(frozen=True)
class ClassicBalancer:
    region: str
    name: str
    dns_name: str
    instance_port: int
    health: HealthCheck
    instances: tuple[str, ...]
    draining: bool
    draining_timeout: float

    @property
    def key(self) -> str:
        return f"elb:{self.region}:{self.name}"


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str
    region: str
    vpc_id: str | None
    port: int
    target_type: str
    health: HealthCheck
    deregistration_delay: float
    targets: tuple[tuple[str, int], ...]  # (id, port)

    @property
    def full_name(self) -> str:
        """``targetgroup/<name>/<id>``: the CloudWatch ``TargetGroup`` dimension."""
        return self.arn.split(":", 5)[-1]


@dataclass(frozen=True)
class ApplicationBalancer:
    arn: str
    name: str
    region: str
    dns_name: str
    vpc_id: str | None
    forward: tuple[tuple[str, int], ...]  # (target group arn, weight) of the listener

    @property
    def key(self) -> str:
        return f"alb:{self.arn}"

    @property
    def full_name(self) -> str:
        """``app/<name>/<id>``: the CloudWatch ``LoadBalancer`` dimension."""
        return self.arn.split(":loadbalancer/", 1)[-1]


@dataclass
class Inventory:
    classics: dict[str, ClassicBalancer] = field(default_factory=dict)
    albs: dict[str, ApplicationBalancer] = field(default_factory=dict)
    groups: dict[str, TargetGroup] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    peers: dict[str, frozenset[str]] = field(default_factory=dict)  # vpc -> peered vpcs

    def proxies(self) -> list[Instance]:
        return [i for i in self.instances.values()
                if i.state == "running" and i.tag("role") == PROXY_ROLE and i.private_ip]

    def networks_from(self, vpc_id: str | None) -> set[str]:
        if vpc_id is None:
            return set()
        return {vpc_id, *self.peers.get(vpc_id, ())}


def _regions(backends: Any) -> list[tuple[str, Any]]:
    """Every (region, backend) moto has created, in every account (no lazy creation)."""
    out = []
    for account in list(dict.values(backends)):
        out.extend(list(dict.items(account)))
    return out


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _classic_health(hc: Any, instance_port: int) -> HealthCheck:
    if hc is None:
        # AWS gives every classic ELB a TCP check on the instance port
        return HealthCheck("TCP", instance_port, "", 30, 5, 10, 2)
    match = re.match(r"(\w+):(\d+)(/.*)?$", str(hc.target))
    protocol, port, path = (match.group(1).upper(), int(match.group(2)), match.group(3) or "/") \
        if match else ("TCP", instance_port, "/")
    return HealthCheck("TCP" if protocol in ("TCP", "SSL") else "HTTP", port, path,
                       float(hc.interval), float(hc.timeout),
                       _int(hc.healthy_threshold, 10), _int(hc.unhealthy_threshold, 2))


def _group_health(tg: Any) -> HealthCheck:
    port = tg.health_check_port
    protocol = str(tg.health_check_protocol or "HTTP").upper()
    matcher = (getattr(tg, "matcher", None) or {}).get("HttpCode", "200")
    return HealthCheck("TCP" if protocol in ("TCP", "TLS", "UDP") else "HTTP",
                       None if port in (None, "traffic-port") else _int(port, 80),
                       tg.health_check_path or "/", float(tg.health_check_interval_seconds),
                       float(tg.health_check_timeout_seconds), _int(tg.healthy_threshold_count, 5),
                       _int(tg.unhealthy_threshold_count, 2), matcher,
                       bool(tg.health_check_enabled))


def _forward(listener: Any) -> tuple[tuple[str, int], ...]:
    for action in listener.default_actions:
        data = getattr(action, "data", {}) or {}
        if data.get("Type") != "forward":
            continue
        groups = (data.get("ForwardConfig") or {}).get("TargetGroups") or []
        if groups:
            return tuple((g["TargetGroupArn"], _int(g.get("Weight", 1), 1)) for g in groups)
        if data.get("TargetGroupArn"):
            return ((data["TargetGroupArn"], 1),)
    return ()


def read_instances() -> list[Instance]:
    """Every EC2 instance of every region, in any state. Call under the AWS emulator's lock."""
    from moto.ec2.models import ec2_backends

    out = []
    for region, ec2 in _regions(ec2_backends):
        tags = ec2.tags
        for reservation in list(ec2.reservations.values()):
            for inst in reservation.instances:
                out.append(Instance(inst.id, region, inst.state, inst.private_ip, inst.vpc_id,
                                    inst.image_id, tuple(sorted(tags.get(inst.id, {}).items()))))
    return out


def read_inventory() -> Inventory:
    """Call under the AWS emulator's lock."""
    from moto.ec2.models import ec2_backends
    from moto.elb.models import elb_backends
    from moto.elbv2.models import elbv2_backends

    inv = Inventory()
    inv.instances = {i.id: i for i in read_instances()}
    for _region, ec2 in _regions(ec2_backends):
        for pcx in list(ec2.vpc_pcxs.values()):
            if pcx._status.code != "active":
                continue
            a, b = pcx.vpc.id, pcx.peer_vpc.id
            inv.peers[a] = inv.peers.get(a, frozenset()) | {b}
            inv.peers[b] = inv.peers.get(b, frozenset()) | {a}
    for region, elb in _regions(elb_backends):
        for lb in list(elb.load_balancers.values()):
            listener = next((ln for ln in lb.listeners if int(ln.load_balancer_port) == 80),
                            lb.listeners[0] if lb.listeners else None)
            if listener is None:
                continue
            port = int(listener.instance_port)
            draining = lb.attributes.get("connection_draining") or {}
            enabled = draining.get("enabled")
            value = ClassicBalancer(
                region, lb.name, lb.dns_name, port, _classic_health(lb.health_check, port),
                tuple(dict.fromkeys([*lb.instance_sparse_ids, *lb.instance_autoscaling_ids])),
                enabled is True or str(enabled).lower() == "true",
                float(draining.get("timeout") or draining.get("Timeout") or 300))
            inv.classics[value.key] = value
    for region, v2 in _regions(elbv2_backends):
        for tg in list(v2.target_groups.values()):
            inv.groups[tg.arn] = TargetGroup(
                tg.arn, tg.name, region, tg.vpc_id, _int(tg.port, 80), tg.target_type,
                _group_health(tg),
                float(tg.attributes.get("deregistration_delay.timeout_seconds", 300)),
                tuple((t["Id"], _int(t.get("Port"), _int(tg.port, 80)))
                      for t in tg.targets.values()))
        for lb in list(v2.load_balancers.values()):
            if lb.type != "application" or not lb.listeners:
                continue
            listeners = list(lb.listeners.values())
            listener = next((ln for ln in listeners if _int(ln.port, 0) == 80), listeners[0])
            value = ApplicationBalancer(lb.arn, lb.name, region, lb.dns_name, lb.vpc_id,
                                        _forward(listener))
            inv.albs[value.key] = value
    return inv
