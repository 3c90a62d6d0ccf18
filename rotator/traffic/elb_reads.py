"""Reads of a slot's own classic ELB (where its DNS records point), for the guard and failover.

Membership is read with ``DescribeLoadBalancers``: the register/deregister
answers are not trusted to list the members (moto gets them wrong).
"""

from __future__ import annotations

from typing import Any

from rotator.traffic.calls import AwsCalls, AwsError

IN_SERVICE = "InService"

# Hosted zone ids of classic ELBs per region (AWS "Elastic Load Balancing endpoints and
# quotas"), used when DescribeLoadBalancers does not return CanonicalHostedZoneNameID.
CLASSIC_ELB_ZONE_IDS = {
    "cn-north-1": "Z1GDH35T77C1KE",
    "cn-northwest-1": "ZM7IZAIOVVDZF",
    "ap-southeast-1": "Z1LMS91P8CMLE5",
    "ap-northeast-1": "Z14GRHDCWA56QT",
    "us-east-1": "Z35SXDOTRQ7X7K",
    "us-west-2": "Z1H1FL5HABSF5",
    "eu-west-1": "Z32O12XQLNTSW2",
}


def describe(calls: AwsCalls, elb: Any, name: str) -> dict[str, Any]:
    answer = calls(elb, "describe_load_balancers", LoadBalancerNames=[name])
    return answer["LoadBalancerDescriptions"][0]


def registered_instances(calls: AwsCalls, elb: Any, name: str) -> list[str]:
    return sorted(i["InstanceId"] for i in describe(calls, elb, name).get("Instances", []))


def instance_health(calls: AwsCalls, elb: Any, name: str) -> dict[str, str]:
    """Registered instance id -> state ("InService", "OutOfService", "Unknown")."""
    members = registered_instances(calls, elb, name)
    if not members:
        return {}
    answer = calls(
        elb,
        "describe_instance_health",
        LoadBalancerName=name,
        Instances=[{"InstanceId": i} for i in members],
    )
    return {s["InstanceId"]: s["State"] for s in answer["InstanceStates"]}


def in_service(health: dict[str, str]) -> set[str]:
    return {i for i, state in health.items() if state == IN_SERVICE}


def canonical_zone_id(calls: AwsCalls, elb: Any, name: str) -> str:
    """The hosted zone id a Route53 alias to this ELB must name."""
    try:
        zone_id = describe(calls, elb, name).get("CanonicalHostedZoneNameID")
    except AwsError:
        zone_id = None
    if zone_id:
        return zone_id
    region = elb.meta.region_name
    if region not in CLASSIC_ELB_ZONE_IDS:
        raise ValueError(f"no known classic ELB hosted zone id for region {region}")
    return CLASSIC_ELB_ZONE_IDS[region]
