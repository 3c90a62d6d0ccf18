"""The slots' Marathons learn of EC2 from moto's models, after changes only: a slot's
agents, the Marathon behind an address, the sweep of a destroyed slot."""

from __future__ import annotations

import itertools
import uuid

import pytest

from rotator.sandbox.consul import ConsulCore
from rotator.sandbox.ec2_view import Ec2View, changes_instances
from rotator.sandbox.world import SlotMarathons

REGION = "cn-north-1"


@pytest.fixture
def ec2(emulator):
    return emulator.client("ec2", REGION)


@pytest.fixture
def subnet(ec2):
    """A VPC of its own, with addresses no other test's instance has (a private address
    is unique within its VPC only; ``resolve`` takes the first Marathon it finds)."""
    block = f"10.{next(_BLOCKS)}"
    vpc = ec2.create_vpc(CidrBlock=f"{block}.0.0/16")["Vpc"]["VpcId"]
    return ec2.create_subnet(VpcId=vpc, CidrBlock=f"{block}.1.0/24")["Subnet"]["SubnetId"]


_BLOCKS = itertools.count(200)


@pytest.fixture
def view(emulator):
    found = Ec2View(emulator)
    yield found
    found.close()


@pytest.fixture
def marathons(emulator, view):
    consul = ConsulCore([REGION], run_timers=False)
    yield SlotMarathons(emulator, consul, 0.05, ec2=view)
    consul.close()


class Slot:
    def __init__(self, ec2, subnet: str):
        self.ec2, self.subnet = ec2, subnet
        self.group = f"g{uuid.uuid4().hex[:6]}"
        self.ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def run(self, role: str, count: int = 1) -> list[dict]:
        return self.ec2.run_instances(
            ImageId=self.ami, MinCount=count, MaxCount=count, SubnetId=self.subnet,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "group", "Value": self.group}, {"Key": "slot", "Value": "blue"},
                {"Key": "role", "Value": role}]}])["Instances"]

    def terminate(self, *instances: dict) -> None:
        self.ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in instances])


def test_a_slots_agents_follow_its_instances_without_an_aws_request(emulator, ec2, subnet,
                                                                  marathons):
    slot = Slot(ec2, subnet)
    marathon = slot.run("marathon")[0]
    agents = slot.run("mesos-agent", 2)
    seen: list[str | None] = []
    emulator.add_observer(seen.append)
    try:
        found = marathons.resolve(f"{marathon['PrivateIpAddress']}:8080")
        assert found is not None
        assert marathons.resolve(f"{marathon['PrivateIpAddress']}:8080") is found
        assert [(a.id, a.host) for a in found._agents()] == sorted(
            (a["InstanceId"], a["PrivateIpAddress"]) for a in agents)
        assert seen == []  # moto's models are read, never through an AWS request
    finally:
        emulator.remove_observer(seen.append)

    third = slot.run("mesos-agent")[0]
    assert third["InstanceId"] in {a.id for a in found._agents()}
    slot.terminate(agents[0])
    assert agents[0]["InstanceId"] not in {a.id for a in found._agents()}


def test_an_unknown_address_has_no_marathon(ec2, subnet, marathons):
    slot = Slot(ec2, subnet)
    agent = slot.run("mesos-agent")[0]
    assert marathons.resolve(f"{agent['PrivateIpAddress']}:8080") is None
    assert marathons.resolve("10.255.255.254:8080") is None


def test_the_sweep_forgets_a_slot_whose_marathon_instance_is_gone(ec2, subnet, marathons):
    slot = Slot(ec2, subnet)
    marathon = slot.run("marathon")[0]
    slot.run("mesos-agent")
    address = f"{marathon['PrivateIpAddress']}:8080"
    found = marathons.resolve(address)
    assert marathons.for_slot(REGION, slot.group, "blue") is found
    marathons.sweep()
    assert marathons.for_slot(REGION, slot.group, "blue") is found

    slot.terminate(marathon)
    marathons.sweep()
    assert marathons.for_slot(REGION, slot.group, "blue") is None
    assert found not in marathons.emulators()


def test_the_view_calls_back_after_changes_of_instances_only(ec2, subnet, view):
    changes: list[int] = []
    view.on_change(lambda: changes.append(1))
    slot = Slot(ec2, subnet)
    ec2.describe_instances()
    assert changes == []
    instance = slot.run("proxy")[0]
    assert changes
    changes.clear()
    ec2.create_tags(Resources=[instance["InstanceId"]], Tags=[{"Key": "x", "Value": "y"}])
    assert changes
    assert view.find(REGION, group=slot.group)[0].tag("x") == "y"


@pytest.mark.parametrize("operation, changes", [
    ("ec2:RunInstances", True), ("ec2:TerminateInstances", True), ("ec2:CreateTags", True),
    ("autoscaling:SetDesiredCapacity", True), ("reset", True), (None, True),
    ("ec2:DescribeInstances", False), ("autoscaling:DescribeAutoScalingGroups", False),
    ("elb:RegisterInstancesWithLoadBalancer", False), ("route53:ChangeResourceRecordSets", False),
])
def test_what_counts_as_a_change_of_instances(operation, changes):
    assert changes_instances(operation) is changes
