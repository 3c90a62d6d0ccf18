"""The sandbox refuses what AWS refuses on load balancers (and accepts what AWS accepts).
Each test quotes its source; the rules live in rotator/sandbox/aws/elb_rules.py."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def _code(err: pytest.ExceptionInfo) -> str:
    return err.value.response["Error"]["Code"]


@pytest.fixture
def edge(client, unique):
    """An edge VPC with two subnets, an ALB, an ip target group and a listener."""
    ec2, elbv2 = client("ec2"), client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.250.{i}.0/24",
                                 AvailabilityZone=zones[i])["Subnet"]["SubnetId"]
               for i in range(2)]
    lb = elbv2.create_load_balancer(Name=unique("edge"), Subnets=subnets,
                                    Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
    tgs = [elbv2.create_target_group(Name=unique(f"tg{i}"), Protocol="HTTP", Port=80, VpcId=vpc,
                                     TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
           for i in range(6)]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb, Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tgs[0]}])["Listeners"][0]
    return elbv2, tgs, listener["ListenerArn"], ec2, subnets


def test_classic_elb_registers_only_instances_of_its_own_vpc(client, unique):
    """RegisterInstancesWithLoadBalancer: "The instance must be a running instance in the same
    network as the load balancer (EC2-Classic or the same VPC)"; the error is InvalidInstance
    (InvalidEndPointException, "The specified endpoint is not valid")."""
    ec2, elb = client("ec2"), client("elb")
    vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.60.1.0/24")["Subnet"]["SubnetId"]
    name = unique("slot")
    elb.create_load_balancer(LoadBalancerName=name, Subnets=[subnet], Listeners=[
        {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    elsewhere = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    inside = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                               SubnetId=subnet)["Instances"][0]
    with pytest.raises(ClientError) as err:
        elb.register_instances_with_load_balancer(
            LoadBalancerName=name, Instances=[{"InstanceId": elsewhere["InstanceId"]}])
    assert _code(err) == "InvalidInstance"
    elb.register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": inside["InstanceId"]}])


def test_classic_elb_names_have_at_most_32_characters(client):
    """CreateLoadBalancer: "must have a maximum of 32 characters, must contain only
    alphanumeric characters or hyphens, and cannot begin or end with a hyphen"."""
    elb = client("elb")
    for name in ("x" * 33, "-edge", "edge_1"):
        with pytest.raises(ClientError) as err:
            elb.create_load_balancer(LoadBalancerName=name, AvailabilityZones=["cn-north-1a"],
                                     Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80,
                                                 "InstancePort": 80}])
        assert _code(err) == "ValidationError", name


def test_alb_and_target_group_names_follow_the_same_rules(client, unique):
    """ELBv2 CreateLoadBalancer: "...maximum of 32 characters... must not begin with
    "internal-""; CreateTargetGroup: "can have a maximum of 32 characters"."""
    elbv2, ec2 = client("elbv2"), client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    for name in ("t" * 33, "internal-edge"):
        with pytest.raises(ClientError) as err:
            elbv2.create_load_balancer(Name=name, Subnets=[], Type="application")
        assert _code(err) == "ValidationError", name
    with pytest.raises(ClientError) as err:
        elbv2.create_target_group(Name="g" * 33, Protocol="HTTP", Port=80, VpcId=vpc,
                                  TargetType="ip")
    assert _code(err) == "ValidationError"


def test_ip_targets_follow_the_address_rules(edge):
    """CreateTargetGroup TargetType ip: "You can specify IP addresses from the subnets of the
    [VPC], the RFC 1918 range ... and the RFC 6598 range ... You can't specify publicly
    routable IP addresses." TargetDescription.AvailabilityZone: "If the IP address is outside
    the VPC, this parameter is required"; `all` is for addresses outside the VPC."""
    elbv2, tgs, _, _, _ = edge
    refused = [
        {"Id": "8.8.8.8", "Port": 80, "AvailabilityZone": "all"},  # publicly routable
        {"Id": "10.20.10.5", "Port": 80},  # a peered VPC's address without a zone
        {"Id": "10.250.0.9", "Port": 80, "AvailabilityZone": "all"},  # inside, overridden
    ]
    for target in refused:
        with pytest.raises(ClientError) as err:
            elbv2.register_targets(TargetGroupArn=tgs[0], Targets=[target])
        assert _code(err) == "ValidationError", target
    elbv2.register_targets(TargetGroupArn=tgs[0], Targets=[
        {"Id": "10.20.10.5", "Port": 80, "AvailabilityZone": "all"},
        {"Id": "100.64.1.1", "Port": 80, "AvailabilityZone": "all"},
        {"Id": "10.250.0.9", "Port": 80}])
    found = elbv2.describe_target_health(TargetGroupArn=tgs[0])["TargetHealthDescriptions"]
    assert sorted(d["Target"]["Id"] for d in found) == ["10.20.10.5", "10.250.0.9", "100.64.1.1"]


def test_listener_weights_are_0_to_999_over_at_most_5_target_groups(edge):
    """TargetGroupTuple.Weight: "The range is 0 to 999"; "Target Groups per Action per
    Application Load Balancer: 5" (ALB quotas)."""
    elbv2, tgs, listener, _, _ = edge

    def forward(weights):
        return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": tg, "Weight": w} for tg, w in zip(tgs, weights, strict=False)]}}]

    for weights in ([1000, 0], [-1, 100], [1] * 6):
        with pytest.raises(ClientError) as err:
            elbv2.modify_listener(ListenerArn=listener, DefaultActions=forward(weights))
        assert _code(err) == "ValidationError", weights
    elbv2.modify_listener(ListenerArn=listener, DefaultActions=forward([999, 0, 0, 0, 1]))
    got = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]
    weights = [t["Weight"] for t in got["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]]
    assert weights == [999, 0, 0, 0, 1]


def test_deregistering_an_unknown_target_succeeds_and_3600_s_of_draining_is_allowed(edge):
    """DeregisterTargets: "If the specified target does not exist, the action returns
    successfully"; deregistration_delay.timeout_seconds: "The range is 0-3600 seconds"."""
    elbv2, tgs, _, _, _ = edge
    elbv2.deregister_targets(TargetGroupArn=tgs[1], Targets=[{"Id": "10.20.0.1", "Port": 80}])
    elbv2.modify_target_group_attributes(TargetGroupArn=tgs[1], Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "3600"}])
    attrs = elbv2.describe_target_group_attributes(TargetGroupArn=tgs[1])["Attributes"]
    assert {a["Key"]: a["Value"] for a in attrs}["deregistration_delay.timeout_seconds"] == "3600"
