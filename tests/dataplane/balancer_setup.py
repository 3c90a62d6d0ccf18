"""Building load balancers in the test world with boto3, as Terraform or rotator would."""

from __future__ import annotations

import uuid

from tests.dataplane.conftest import World


def classic(world: World, slot, *, draining: int | None = None, interval: int = 10) -> str:
    elb = world.client("elb")
    name = f"c-{uuid.uuid4().hex[:8]}"
    elb.create_load_balancer(
        LoadBalancerName=name, Subnets=[slot.subnet],
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP",
                    "InstancePort": 80}])
    elb.configure_health_check(LoadBalancerName=name, HealthCheck={
        "Target": "HTTP:80/health", "Interval": interval, "Timeout": 5,
        "HealthyThreshold": 2, "UnhealthyThreshold": 2})
    if draining is not None:
        elb.modify_load_balancer_attributes(LoadBalancerName=name, LoadBalancerAttributes={
            "ConnectionDraining": {"Enabled": True, "Timeout": draining}})
    return name


def edge(world: World, *slots, cidr: str = "10.99.0.0/16"):
    """An edge VPC peered with each slot's VPC, and an ALB in it."""
    ec2 = world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("0.0/16", f"{i}.0/24"),
                                 AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(zones)]
    for slot in slots:
        pcx = ec2.create_vpc_peering_connection(VpcId=vpc, PeerVpcId=slot.vpc)
        ec2.accept_vpc_peering_connection(
            VpcPeeringConnectionId=pcx["VpcPeeringConnection"]["VpcPeeringConnectionId"])
    elbv2 = world.client("elbv2")
    lb = elbv2.create_load_balancer(Name=f"a-{uuid.uuid4().hex[:8]}", Subnets=subnets,
                                    Type="application")["LoadBalancers"][0]
    return vpc, lb


def target_group(world: World, vpc: str, *, delay: int = 300, interval: int = 10) -> str:
    elbv2 = world.client("elbv2")
    arn = elbv2.create_target_group(
        Name=f"t-{uuid.uuid4().hex[:8]}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip",
        HealthCheckPath="/health", HealthCheckIntervalSeconds=interval,
        HealthCheckTimeoutSeconds=5, HealthyThresholdCount=2,
        UnhealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": str(delay)}])
    return arn


def listener(world: World, lb_arn: str, weights: dict[str, int]) -> str:
    return world.client("elbv2").create_listener(
        LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80, DefaultActions=[{
            "Type": "forward", "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": arn, "Weight": w} for arn, w in weights.items()]}}],
    )["Listeners"][0]["ListenerArn"]


def register_proxies(world: World, arn: str, *slots) -> None:
    world.client("elbv2").register_targets(TargetGroupArn=arn, Targets=[
        {"Id": p["PrivateIpAddress"], "Port": 80, "AvailabilityZone": "all"}
        for slot in slots for p in slot.proxies])


def target_states(world: World, arn: str) -> dict[str, str]:
    found = world.client("elbv2").describe_target_health(TargetGroupArn=arn)
    return {d["Target"]["Id"]: d["TargetHealth"]["State"]
            for d in found["TargetHealthDescriptions"]}


def instance_states(world: World, name: str) -> dict[str, tuple[str, str]]:
    found = world.client("elb").describe_instance_health(LoadBalancerName=name)
    return {s["InstanceId"]: (s["State"], s["Description"]) for s in found["InstanceStates"]}
