"""Route53, classic ELB and ELBv2 as boto3 clients of one group's fake world, for the real
routers and the real traffic guard to drive.

They enforce nothing of rotator's promises: a change batch with weights summing to anything,
weight on a dead slot, a deregistration of the last healthy targets are all applied, as
AWS would apply them. Only what AWS itself refuses is refused (a DELETE of a set that is not
there). Every write is recorded by the world with the state before and after it, and the
tests judge the promises from that log (``tests/promises.py``).

Time is the world's clock: a change is INSYNC ``propagation`` seconds after it was made, a
registered target is ``initial`` for ``health_delay`` seconds, then healthy while its slot's
services pass, and a deregistered one is ``draining`` for the deregistration delay.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

from rotator.traffic.route53 import route53_sort_key
from rotator.traffic.spec import EdgeSpec, RecordSpec, normalize_name

ZONE_ID_OF_CLASSIC_ELBS = "Z1GDH35T77C1KE"  # cn-north-1


def client_error(code: str, message: str, status: int = 400, operation: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class Lost(Exception):
    """Fault marker: the request is applied, then its answer is lost (a 500)."""


@dataclass
class Target:
    ip: str
    registered_at: float
    deregistered_at: float | None = None


@dataclass
class FakeAws:
    world: Any  # tests.fakes.FakeWorld
    records: list[RecordSpec]
    edge: EdgeSpec
    drain: float = 10.0
    propagation: float = 2.0
    health_delay: float = 3.0
    # (zone, fqdn, type) -> SetIdentifier -> record set
    sets: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    changes: dict[str, float] = field(default_factory=dict)  # change id -> INSYNC at
    listener: dict[str, int] = field(default_factory=dict)  # target group ARN -> weight
    targets: dict[str, dict[str, Target]] = field(default_factory=dict)  # ARN -> ip -> target
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.zone_ids = {spec.zone_name: f"Z{i:04d}" for i, spec in enumerate(self.records)}
        self.arns = {slot: f"arn:aws-cn:elasticloadbalancing:cn-north-1:1:targetgroup/{name}/{i}"
                     for i, (slot, name) in enumerate(sorted(self.edge.target_groups.items()))}
        self.slot_of_arn = {arn: slot for slot, arn in self.arns.items()}
        self.listener = dict.fromkeys(self.arns.values(), 0)
        self.targets = {arn: {} for arn in self.arns.values()}
        self.route53 = FakeRoute53(self)
        self.elb = FakeElb(self)
        self.elbv2 = FakeElbv2(self)

    # -- the world's side ---------------------------------------------------------------

    def now(self) -> float:
        return self.world.clock()

    def call(self, label: str, apply, detail: Any = None, write: bool = False) -> Any:
        """One request: its faults first (an injected error, or an answer lost after the
        change was applied), the write recorded by the world."""
        queue = self.world.faults.get(label)
        fault = queue.pop(0) if queue else None
        if fault is not None and not isinstance(fault, Lost):
            self.world.calls.append(label)
            raise fault
        result = self.world.effect(label, apply, detail) if write else apply()
        if fault is not None:
            raise client_error("InternalError", "the answer was lost", 500)
        return result

    def target_state(self, arn: str, target: Target) -> str | None:
        """The target's state now; None once it is gone."""
        now = self.now()
        if target.deregistered_at is not None:
            return "draining" if now < target.deregistered_at + self.drain else None
        if now < target.registered_at + self.health_delay:
            return "initial"
        return "healthy" if self.world.can_serve(self.slot_of_arn[arn], elb=False) else "unhealthy"

    def states(self, slot: str) -> dict[str, str]:
        arn = self.arns[slot]
        out = {}
        for ip, target in list(self.targets[arn].items()):
            state = self.target_state(arn, target)
            if state is None:
                del self.targets[arn][ip]
            else:
                out[ip] = state
        return out

    def seed(self, slot: str, outputs: Any) -> None:
        """A slot that serves all traffic, as its first rotation left it."""
        for spec in self.records:
            rrset = {"Name": spec.fqdn, "Type": spec.type, "SetIdentifier":
                     f"{self.world.group}-{slot}", "Weight": 100, "TTL": spec.ttl,
                     "ResourceRecords": [{"Value": outputs.elb_dns}]}
            self.sets.setdefault(self.key(spec.zone_name, spec.fqdn, spec.type), {})[
                rrset["SetIdentifier"]] = rrset
        self.listener[self.arns[slot]] = 100
        for ip in outputs.private_ips[self.edge.role]:
            self.targets[self.arns[slot]][ip] = Target(ip, self.now() - 3600)

    @staticmethod
    def key(zone: str, name: str, rtype: str) -> tuple[str, str, str]:
        return normalize_name(zone), normalize_name(name), rtype

    def zone_name(self, zone_id: str) -> str:
        return next(name for name, i in self.zone_ids.items() if i == zone_id.split("/")[-1])


def _meta(service: str, region: str = "cn-north-1") -> SimpleNamespace:
    class Mapping(dict):
        def get(self, op, default=None):  # snake_case -> the API's name, as botocore has it
            return "".join(part.title() for part in op.split("_"))
    return SimpleNamespace(service_model=SimpleNamespace(service_name=service),
                           method_to_api_mapping=Mapping(), region_name=region)


class FakeRoute53:
    def __init__(self, aws: FakeAws):
        self.aws = aws
        self.meta = _meta("route53")

    def list_hosted_zones_by_name(self, DNSName: str, MaxItems: str = "100") -> dict:  # noqa: N803
        zones = sorted(self.aws.zone_ids.items())
        found = [{"Id": f"/hostedzone/{i}", "Name": n} for n, i in zones
                 if n >= normalize_name(DNSName)]
        return self.aws.call("route53:ListHostedZonesByName",
                             lambda: {"HostedZones": found[:int(MaxItems)]})

    def list_resource_record_sets(self, HostedZoneId: str, StartRecordName: str,  # noqa: N803
                                  StartRecordType: str, MaxItems: str = "300") -> dict:  # noqa: N803
        zone = self.aws.zone_name(HostedZoneId)

        def answer() -> dict:
            start = route53_sort_key(StartRecordName, StartRecordType)
            every = sorted(((route53_sort_key(name, rtype), i, dict(rrset))
                            for (z, name, rtype), sets in self.aws.sets.items() if z == zone
                            for i, rrset in sets.items()), key=lambda t: (t[0], t[1]))
            return {"ResourceRecordSets": [r for k, _, r in every if k >= start],
                    "IsTruncated": False}
        return self.aws.call("route53:ListResourceRecordSets", answer)

    def change_resource_record_sets(self, HostedZoneId: str, ChangeBatch: dict) -> dict:  # noqa: N803
        zone = self.aws.zone_name(HostedZoneId)
        changes = ChangeBatch["Changes"]
        for change in changes:  # AWS refuses the whole batch
            rrset = change["ResourceRecordSet"]
            here = self.aws.sets.get(self.aws.key(zone, rrset["Name"], rrset["Type"]), {})
            if change["Action"] == "DELETE" and rrset.get("SetIdentifier") not in here:
                raise client_error("InvalidChangeBatch", "Tried to delete resource record set "
                                   f"[name='{rrset['Name']}', type='{rrset['Type']}'] but it "
                                   "was not found")
        change_id = f"/change/C{next(self.aws._ids):06d}"

        def apply() -> dict:
            for change in changes:
                rrset = dict(change["ResourceRecordSet"])
                sets = self.aws.sets.setdefault(
                    self.aws.key(zone, rrset["Name"], rrset["Type"]), {})
                if change["Action"] == "DELETE":
                    del sets[rrset["SetIdentifier"]]
                else:
                    sets[rrset["SetIdentifier"]] = rrset
            self.aws.changes[change_id] = self.aws.now() + self.aws.propagation
            return {"ChangeInfo": {"Id": change_id, "Status": "PENDING"}}
        return self.aws.call("route53:ChangeResourceRecordSets", apply,
                             {"changes": changes, "insync_at": self.aws.now()
                              + self.aws.propagation}, write=True)

    def get_change(self, Id: str) -> dict:  # noqa: N803
        def answer() -> dict:
            due = self.aws.changes[Id]
            return {"ChangeInfo": {"Id": Id, "Status":
                                   "INSYNC" if self.aws.now() >= due else "PENDING"}}
        return self.aws.call("route53:GetChange", answer)


class FakeElb:
    """The slots' own classic ELBs: one per provisioned slot, every instance registered."""

    def __init__(self, aws: FakeAws):
        self.aws = aws
        self.meta = _meta("elb")

    def _slot(self, name: str) -> str:
        for slot, outputs in self.aws.world.slots.items():
            if outputs.elb_name == name:
                return slot
        raise client_error("LoadBalancerNotFound", f"There is no ACTIVE Load Balancer named "
                           f"'{name}'")

    def describe_load_balancers(self, LoadBalancerNames: list[str]) -> dict:  # noqa: N803
        def answer() -> dict:
            outputs = self.aws.world.slots[self._slot(LoadBalancerNames[0])]
            every = [i for ids in outputs.instances.values() for i in ids]
            return {"LoadBalancerDescriptions": [{
                "LoadBalancerName": outputs.elb_name, "DNSName": outputs.elb_dns,
                "CanonicalHostedZoneNameID": ZONE_ID_OF_CLASSIC_ELBS,
                "Instances": [{"InstanceId": i} for i in every]}]}
        return self.aws.call("elb:DescribeLoadBalancers", answer)

    def describe_instance_health(self, LoadBalancerName: str, Instances: list) -> dict:  # noqa: N803
        def answer() -> dict:
            up = self.aws.world.can_serve(self._slot(LoadBalancerName))
            return {"InstanceStates": [{"InstanceId": i["InstanceId"],
                                        "State": "InService" if up else "OutOfService"}
                                       for i in Instances]}
        return self.aws.call("elb:DescribeInstanceHealth", answer)


class FakeElbv2:
    """The group's edge: one ALB, one listener, one ip target group per slot."""

    BALANCER = "arn:aws-cn:elasticloadbalancing:cn-north-1:1:loadbalancer/app/edge/1"
    LISTENER = "arn:aws-cn:elasticloadbalancing:cn-north-1:1:listener/app/edge/1/1"

    def __init__(self, aws: FakeAws):
        self.aws = aws
        self.meta = _meta("elbv2")

    def describe_load_balancers(self, Names: list[str]) -> dict:  # noqa: N803
        return self.aws.call("elbv2:DescribeLoadBalancers",
                             lambda: {"LoadBalancers": [{"LoadBalancerArn": self.BALANCER}]})

    def describe_listeners(self, **_: Any) -> dict:
        def answer() -> dict:
            groups = [{"TargetGroupArn": arn, "Weight": w}
                      for arn, w in sorted(self.aws.listener.items())]
            return {"Listeners": [{"ListenerArn": self.LISTENER, "Port": self.aws.edge.port,
                                   "DefaultActions": [{"Type": "forward", "ForwardConfig": {
                                       "TargetGroups": groups}}]}]}
        return self.aws.call("elbv2:DescribeListeners", answer)

    def describe_target_groups(self, Names: list[str]) -> dict:  # noqa: N803
        names = {name: slot for slot, name in self.aws.edge.target_groups.items()}
        return self.aws.call("elbv2:DescribeTargetGroups", lambda: {"TargetGroups": [
            {"TargetGroupName": n, "TargetGroupArn": self.aws.arns[names[n]]} for n in Names]})

    def describe_target_health(self, TargetGroupArn: str) -> dict:  # noqa: N803
        def answer() -> dict:
            states = self.aws.states(self.aws.slot_of_arn[TargetGroupArn])
            return {"TargetHealthDescriptions": [
                {"Target": {"Id": ip, "Port": self.aws.edge.port}, "TargetHealth": {"State": s}}
                for ip, s in sorted(states.items())]}
        return self.aws.call("elbv2:DescribeTargetHealth", answer)

    def describe_target_group_attributes(self, TargetGroupArn: str) -> dict:  # noqa: N803
        return self.aws.call("elbv2:DescribeTargetGroupAttributes", lambda: {"Attributes": [
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(int(self.aws.drain))}]})

    def register_targets(self, TargetGroupArn: str, Targets: list[dict]) -> dict:  # noqa: N803
        def apply() -> dict:
            here = self.aws.targets[TargetGroupArn]
            self.aws.states(self.aws.slot_of_arn[TargetGroupArn])  # forget those gone
            for t in Targets:
                if t["Id"] not in here or here[t["Id"]].deregistered_at is not None:
                    here[t["Id"]] = Target(t["Id"], self.aws.now())
            return {}
        return self.aws.call("elbv2:RegisterTargets", apply, {
            "slot": self.aws.slot_of_arn[TargetGroupArn], "ips": [t["Id"] for t in Targets]},
            write=True)

    def deregister_targets(self, TargetGroupArn: str, Targets: list[dict]) -> dict:  # noqa: N803
        def apply() -> dict:
            here = self.aws.targets[TargetGroupArn]
            for t in Targets:
                if t["Id"] in here and here[t["Id"]].deregistered_at is None:
                    here[t["Id"]].deregistered_at = self.aws.now()
            return {}
        return self.aws.call("elbv2:DeregisterTargets", apply, {
            "slot": self.aws.slot_of_arn[TargetGroupArn], "ips": [t["Id"] for t in Targets]},
            write=True)

    def modify_listener(self, ListenerArn: str, DefaultActions: list[dict]) -> dict:  # noqa: N803
        groups = DefaultActions[0]["ForwardConfig"]["TargetGroups"]

        def apply() -> dict:
            for tg in groups:
                self.aws.listener[tg["TargetGroupArn"]] = int(tg.get("Weight", 0))
            return {}
        return self.aws.call("elbv2:ModifyListener", apply, {
            "weights": {self.aws.slot_of_arn[g["TargetGroupArn"]]: g.get("Weight", 0)
                        for g in groups}}, write=True)
