"""AWS API calls per full rotation, by operation, against the sandbox AWS emulator.

Drives the group traffic router through a blue-green policy [100] and a canary
policy [5, 25, 50, 100], then retires the old slot, for 1, 10 and 50 records in
one and in two hosted zones, with the group's edge (an ALB listener forwarding to one
target group per slot). Lower bounds: Route53, one batch per zone per step (plus one per
zone to delete the old slot's sets); the edge, exactly one ModifyListener per step.

    .venv/bin/python bench/traffic_calls.py
"""

from __future__ import annotations

import time
import uuid

import boto3

from rotator.ports import SlotOutputs
from rotator.sandbox.aws import AwsEmulator
from rotator.traffic import EdgeSpec, RecordSpec, build_group_router, client_config

REGION = "cn-north-1"
POLICIES = {"blue-green": [100], "canary": [5, 25, 50, 100]}


def clients(url: str):
    def make(service):
        return boto3.client(service, region_name=REGION, endpoint_url=url,
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=client_config())
    return make("route53"), make("elb"), make("ec2"), make("elbv2")


def build_world(route53, elb, ec2, elbv2, records: int, zones: int, ami: str):
    tag = uuid.uuid4().hex[:8]
    zone_names = [f"z{z}-{tag}.cn." for z in range(zones)]
    for name in zone_names:
        route53.create_hosted_zone(Name=name, CallerReference=name)
    specs = [RecordSpec(zone=zone_names[i % zones], name=f"r{i}") for i in range(records)]

    slots = {}
    for i, slot in enumerate(("blue", "green")):
        name = f"{slot}-{tag}"
        vpc = ec2.create_vpc(CidrBlock=f"10.{20 + i}.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{20 + i}.1.0/24",
                                   AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
        dns = elb.create_load_balancer(
            LoadBalancerName=name, Subnets=[subnet],
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
        )["DNSName"]
        made = ec2.run_instances(ImageId=ami, MinCount=2, MaxCount=2, InstanceType="t3.micro",
                                 SubnetId=subnet)["Instances"]
        elb.register_instances_with_load_balancer(
            LoadBalancerName=name, Instances=[{"InstanceId": i["InstanceId"]} for i in made])
        slots[slot] = SlotOutputs(marathon_url="", elb_name=name, elb_dns=dns,
                                  instances={"proxy": [i["InstanceId"] for i in made]},
                                  private_ips={"proxy": [i["PrivateIpAddress"] for i in made]})
    vpc = ec2.create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.250.{i}.0/24",
                                 AvailabilityZone=f"{REGION}{'ab'[i]}")["Subnet"]["SubnetId"]
               for i in range(2)]
    lb = elbv2.create_load_balancer(Name=f"edge-{tag}", Subnets=subnets,
                                    Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
    names = {slot: f"{slot}-{tag}" for slot in ("blue", "green")}
    arns = {slot: elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc,
                                            TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
            for slot, name in names.items()}
    elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[
        {"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": arns["blue"], "Weight": 100},
            {"TargetGroupArn": arns["green"], "Weight": 0}]}}])
    return specs, EdgeSpec(load_balancer=f"edge-{tag}", target_groups=names), slots


def rotate(emulator, route53, elb, elbv2, specs, edge, slots, steps):
    router = build_group_router("bench", specs, edge, route53=route53, elb=elb, elbv2=elbv2,
                                services_passing=lambda slot: True, sleep=lambda s: None)
    router.set_weights({"blue": 100}, {"blue": slots["blue"]})
    emulator.reset_calls()
    started = time.perf_counter()
    expected = {"blue": 100}
    for green in steps:
        weights = {"blue": 100 - green, "green": green}
        router.set_weights(weights, slots, expected)
        expected = weights
    router.remove_slot("blue", slots["blue"])
    router.check_destroy("blue")
    return emulator.calls(), time.perf_counter() - started


def main() -> None:
    emulator = AwsEmulator(ami_validation=False).start()
    try:
        route53, elb, ec2, elbv2 = clients(emulator.url)
        ami = emulator.register_ami("bench", region=REGION)
        header = (f"{'policy':<10} {'records':>7} {'zones':>5} {'r53 changes':>11} "
                  f"{'bound':>5} {'ratio':>5} {'listener':>8} {'bound':>5} {'ratio':>5} "
                  f"{'r53 reads':>9} {'elb calls':>9} {'total':>5} {'seconds':>7}")
        print(header)
        print("-" * len(header))
        totals = {}
        for policy, steps in POLICIES.items():
            for records in (1, 10, 50):
                for zones in (1, 2):
                    if zones > records:
                        continue
                    specs, edge, slots = build_world(route53, elb, ec2, elbv2, records, zones,
                                                     ami)
                    calls, seconds = rotate(emulator, route53, elb, elbv2, specs, edge, slots,
                                            steps)
                    changes = calls.get("route53:ChangeResourceRecordSets", 0)
                    bound = (len(steps) + 1) * zones  # steps + the retire DELETE batch
                    modifies = calls.get("elbv2:ModifyListener", 0)
                    reads = sum(v for k, v in calls.items()
                                if k.startswith("route53:") and k != "route53:ChangeResourceRecordSets")
                    elb_calls = sum(v for k, v in calls.items() if k.startswith("elb"))
                    print(f"{policy:<10} {records:>7} {zones:>5} {changes:>11} {bound:>5} "
                          f"{changes / bound:>5.2f} {modifies:>8} {len(steps):>5} "
                          f"{modifies / len(steps):>5.2f} {reads:>9} {elb_calls:>9} "
                          f"{sum(calls.values()):>5} {seconds:>7.2f}")
                    totals[(policy, records, zones)] = calls
        print()
        print("by operation, canary policy, 50 records in 2 zones:")
        for op, n in sorted(totals[("canary", 50, 2)].items()):
            print(f"  {op:<45} {n:>4}")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
