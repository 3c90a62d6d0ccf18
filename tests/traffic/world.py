"""Builds a group's AWS world in the emulator with boto3: zones, slot ELBs, instances, and an
edge: an ALB in a VPC of its own with an ip target group per slot."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from rotator.ports import SlotOutputs
from rotator.traffic import EdgeSpec, RecordSpec, client_config

DRAINING = 45
_SLOT_BLOCKS = itertools.cycle(range(20, 200))  # slot VPCs: 10.20/16 ... (never the edge's)


class FakeClock:
    """Monotonic time that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: list = []  # callables run after each sleep (the world moving on)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for hook in self.on_sleep:
            hook()


@dataclass
class World:
    emulator: Any
    region: str
    route53: Any
    elb: Any
    ec2: Any
    elbv2: Any
    ami: str
    tag: str = ""  # makes this test's names unique: the emulator's state is shared
    edge_network: dict[str, list[str]] = field(default_factory=dict)
    services: dict[str, bool | None] = field(default_factory=dict)
    clock: FakeClock = field(default_factory=FakeClock)
    asked: list[str] = field(default_factory=list)  # slots the guard asked about, in order

    def passing(self, slot: str) -> bool | None:
        self.asked.append(slot)
        return self.services.get(slot)

    def n(self, base: str) -> str:
        """A name unique to this test."""
        return f"{base}-{self.tag}"

    def zone(self, name: str) -> str:
        answer = self.route53.create_hosted_zone(Name=name, CallerReference=name)
        return answer["HostedZone"]["Id"].split("/")[-1]

    def create_elb(self, name: str, draining: int = DRAINING, subnet: str | None = None) -> str:
        where = {"Subnets": [subnet]} if subnet else {"AvailabilityZones": [f"{self.region}a"]}
        answer = self.elb.create_load_balancer(
            LoadBalancerName=name,
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
            **where,
        )
        self.elb.modify_load_balancer_attributes(
            LoadBalancerName=name,
            LoadBalancerAttributes={"ConnectionDraining": {"Enabled": True, "Timeout": draining}},
        )
        return answer["DNSName"]

    def instances(self, count: int, subnet: str) -> list[tuple[str, str]]:
        """(instance id, private IP) of ``count`` new instances in ``subnet``."""
        answer = self.ec2.run_instances(
            ImageId=self.ami, MinCount=count, MaxCount=count, InstanceType="t3.micro",
            SubnetId=subnet,
        )
        return sorted((i["InstanceId"], i["PrivateIpAddress"]) for i in answer["Instances"])

    def slot(self, group: str, slot: str, roles: dict[str, int]) -> SlotOutputs:
        """A slot: a VPC of its own, its own ELB with all its instances registered (as
        Terraform builds it)."""
        name = self.n(f"{group}-{slot}")
        block = f"10.{next(_SLOT_BLOCKS)}.0.0/16"
        vpc = self.ec2.create_vpc(CidrBlock=block)["Vpc"]["VpcId"]
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock=block.replace("0.0/16", "1.0/24"),
                                        AvailabilityZone=f"{self.region}a")["Subnet"]["SubnetId"]
        dns = self.create_elb(name, subnet=subnet)
        made = {role: self.instances(n, subnet) for role, n in roles.items()}
        every = [i for pairs in made.values() for i, _ in pairs]
        self.elb.register_instances_with_load_balancer(
            LoadBalancerName=name, Instances=[{"InstanceId": i} for i in every]
        )
        return SlotOutputs(
            marathon_url=f"http://127.0.0.1:1/{name}", elb_name=name, elb_dns=dns,
            instances={role: [i for i, _ in pairs] for role, pairs in made.items()},
            private_ips={role: [ip for _, ip in pairs] for role, pairs in made.items()},
            ami=self.ami,
        )

    def edge_vpc(self) -> tuple[str, list[str]]:
        """The region's edge VPC and its two subnets (made once per world)."""
        if not self.edge_network:
            vpc = self.ec2.create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"]
            zones = [z["ZoneName"] for z in
                     self.ec2.describe_availability_zones()["AvailabilityZones"]][:2]
            subnets = [self.ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.250.{i}.0/24",
                                              AvailabilityZone=zones[i])["Subnet"]["SubnetId"]
                       for i in range(2)]
            self.edge_network[vpc] = subnets
        vpc, subnets = next(iter(self.edge_network.items()))
        return vpc, subnets

    def edge(self, owner: str, groups: list[str], draining: int = DRAINING
             ) -> dict[str, EdgeSpec]:
        """An edge ALB for ``owner`` whose listener forwards to a target group per slot of
        each of ``groups`` (a pair shares its master's); weight 100 on the owner's blue."""
        vpc, subnets = self.edge_vpc()
        lb = self.elbv2.create_load_balancer(
            Name=self.n(f"{owner}-edge")[:32], Subnets=subnets, Type="application",
        )["LoadBalancers"][0]["LoadBalancerArn"]
        specs, tuples = {}, []
        for group in groups:
            names = {slot: self.n(f"{group}-{slot}")[:32] for slot in ("blue", "green")}
            for slot, name in names.items():
                arn = self.elbv2.create_target_group(
                    Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip",
                    HealthCheckPath="/health")["TargetGroups"][0]["TargetGroupArn"]
                self.elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
                    {"Key": "deregistration_delay.timeout_seconds", "Value": str(draining)}])
                tuples.append({"TargetGroupArn": arn,
                               "Weight": 100 if (group, slot) == (owner, "blue") else 0})
            specs[group] = EdgeSpec(load_balancer=self.n(f"{owner}-edge")[:32],
                                    target_groups=names)
        self.elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[
            {"Type": "forward", "ForwardConfig": {"TargetGroups": tuples}}])
        return specs

    def targets(self, spec: EdgeSpec, slot: str) -> dict[str, str]:
        """ip -> state of the slot's target group, read straight from the emulator."""
        arn = self.elbv2.describe_target_groups(
            Names=[spec.target_groups[slot]])["TargetGroups"][0]["TargetGroupArn"]
        found = self.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found}

    def listener_weights(self, spec: EdgeSpec) -> dict[str, int]:
        """target group name -> weight on the edge listener."""
        lb = self.elbv2.describe_load_balancers(
            Names=[spec.load_balancer])["LoadBalancers"][0]["LoadBalancerArn"]
        listener = self.elbv2.describe_listeners(LoadBalancerArn=lb)["Listeners"][0]
        names = {tg["TargetGroupArn"]: tg["TargetGroupName"]
                 for tg in self.elbv2.describe_target_groups()["TargetGroups"]}
        return {names[t["TargetGroupArn"]]: t["Weight"] for t in
                listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]}

    def members(self, elb_name: str) -> list[str]:
        described = self.elb.describe_load_balancers(LoadBalancerNames=[elb_name])
        return sorted(i["InstanceId"] for i in described["LoadBalancerDescriptions"][0]["Instances"])

    def weights(self, zone_id: str, name: str, rtype: str) -> dict[str, int]:
        """SetIdentifier -> weight, read straight from Route53."""
        answer = self.route53.list_resource_record_sets(
            HostedZoneId=zone_id, StartRecordName=name, StartRecordType=rtype, MaxItems="100"
        )
        return {
            r["SetIdentifier"]: r["Weight"]
            for r in answer["ResourceRecordSets"]
            if r["Name"] == name and r["Type"] == rtype and "SetIdentifier" in r
        }


def clients(emulator: Any, region: str) -> tuple[Any, Any, Any, Any]:
    import boto3

    def make(service: str) -> Any:
        return boto3.client(
            service, region_name=region, endpoint_url=emulator.url,
            aws_access_key_id="test", aws_secret_access_key="test", config=client_config(),
        )

    return make("route53"), make("elb"), make("ec2"), make("elbv2")


def prd_cn_records(w: World) -> list[RecordSpec]:
    """3 records in 2 zones: CNAME and alias in the public zone, CNAME in the internal one."""
    demo, internal = w.n("demo") + ".cn.", w.n("internal") + ".cn."
    return [
        RecordSpec(zone=demo, name="api", type="CNAME"),
        RecordSpec(zone=demo, name=f"www.{demo}", type="A"),
        RecordSpec(zone=internal, name="agents", type="CNAME", ttl=30),
    ]
