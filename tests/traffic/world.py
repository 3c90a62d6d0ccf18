"""Builds a group's AWS world in the emulator with boto3: zones, slot ELBs, instances, edge ELB."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rotator.ports import SlotOutputs
from rotator.traffic import RecordSpec, client_config

DRAINING = 45


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
    ami: str
    tag: str = ""  # makes this test's names unique: the emulator's state is shared
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

    def create_elb(self, name: str, draining: int = DRAINING) -> str:
        answer = self.elb.create_load_balancer(
            LoadBalancerName=name,
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
            AvailabilityZones=[f"{self.region}a"],
        )
        self.elb.modify_load_balancer_attributes(
            LoadBalancerName=name,
            LoadBalancerAttributes={"ConnectionDraining": {"Enabled": True, "Timeout": draining}},
        )
        return answer["DNSName"]

    def instances(self, count: int) -> list[str]:
        answer = self.ec2.run_instances(
            ImageId=self.ami, MinCount=count, MaxCount=count, InstanceType="t3.micro"
        )
        return sorted(i["InstanceId"] for i in answer["Instances"])

    def slot(self, group: str, slot: str, roles: dict[str, int]) -> SlotOutputs:
        """A slot: its own ELB with all its instances registered (as Terraform builds it)."""
        name = self.n(f"{group}-{slot}")
        dns = self.create_elb(name)
        instances = {role: self.instances(n) for role, n in roles.items()}
        every = [i for ids in instances.values() for i in ids]
        self.elb.register_instances_with_load_balancer(
            LoadBalancerName=name, Instances=[{"InstanceId": i} for i in every]
        )
        return SlotOutputs(
            marathon_url=f"http://127.0.0.1:1/{name}", elb_name=name, elb_dns=dns,
            instances=instances, ami=self.ami,
        )

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


def clients(emulator: Any, region: str) -> tuple[Any, Any, Any]:
    import boto3

    def make(service: str) -> Any:
        return boto3.client(
            service, region_name=region, endpoint_url=emulator.url,
            aws_access_key_id="test", aws_secret_access_key="test", config=client_config(),
        )

    return make("route53"), make("elb"), make("ec2")


def prd_cn_records(w: World) -> list[RecordSpec]:
    """3 records in 2 zones: CNAME and alias in the public zone, CNAME in the internal one."""
    demo, internal = w.n("demo") + ".cn.", w.n("internal") + ".cn."
    return [
        RecordSpec(zone=demo, name="api", type="CNAME"),
        RecordSpec(zone=demo, name=f"www.{demo}", type="A"),
        RecordSpec(zone=internal, name="agents", type="CNAME", ttl=30),
    ]
