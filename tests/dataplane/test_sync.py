"""The data plane follows the AWS emulator, leaves its event loop alone when what it
serves has not changed, and spaces AWS requests out while requests flow."""

from __future__ import annotations

from rotator.sandbox.dataplane.plane import AWS_GAP, FLOWING


def test_a_change_that_serves_nothing_new_is_not_applied(world, monkeypatch):
    applied = []
    original = world.plane._apply

    async def counting(inventory):
        applied.append(inventory)
        await original(inventory)

    monkeypatch.setattr(world.plane, "_apply", counting)
    world.plane.sync()  # whatever earlier tests left
    applied.clear()
    world.plane.sync()
    ec2 = world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.71.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.71.1.0/24")["Subnet"]["SubnetId"]
    ec2.create_security_group(GroupName="unserved", Description="-", VpcId=vpc)
    assert applied == []

    proxy = ec2.run_instances(ImageId=world.bake(), MinCount=1, MaxCount=1, SubnetId=subnet,
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "role", "Value": "proxy"}]}])["Instances"][0]
    assert applied and proxy["InstanceId"] in applied[-1].instances
    assert any(p.instance.id == proxy["InstanceId"] for p in world.plane._proxies.values())
    ec2.terminate_instances(InstanceIds=[proxy["InstanceId"]])
    assert proxy["InstanceId"] not in world.plane._proxies


def test_aws_requests_give_way_while_requests_flow(world, monkeypatch):
    plane = world.plane
    assert world.aws.before_serving == plane.give_way
    gaps = []
    monkeypatch.setattr(plane, "_sleep", gaps.append)
    monkeypatch.setattr(plane, "_clock", lambda: 1000.0)
    monkeypatch.setattr(plane.balancers, "last_request", float("-inf"))  # no traffic
    world.client("ec2").describe_vpcs()
    assert gaps == []
    monkeypatch.setattr(plane.balancers, "last_request", 1000.0 - FLOWING / 2)
    world.client("ec2").describe_vpcs()
    assert gaps == [AWS_GAP]
    monkeypatch.setattr(plane.balancers, "last_request", 1000.0 - FLOWING)  # a second ago
    world.client("ec2").describe_vpcs()
    assert gaps == [AWS_GAP]
