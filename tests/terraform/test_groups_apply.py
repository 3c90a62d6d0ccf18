"""Every group and edge root: apply, no-op re-plan and destroy with the real provider."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from rotator.sandbox.terraform_runtime import REGION_OF_GROUP

pytestmark = pytest.mark.slow

GROUP_NAMES = sorted(REGION_OF_GROUP)


def _cycle_group(world, name):
    infra = world.group(name)
    ami = world.ami(name)
    assert infra.slots_with_resources() == []
    assert infra.read_outputs("blue") is None
    out = infra.provision("blue", ami)
    plan = infra.plan("blue", ami)
    listed = infra.slots_with_resources()
    again = infra.read_outputs("blue")
    infra.destroy("blue")
    return infra, out, plan, listed, again


def test_every_group_applies_replans_clean_and_destroys(tf_world):
    with ThreadPoolExecutor(len(GROUP_NAMES)) as pool:
        results = dict(zip(GROUP_NAMES, pool.map(lambda g: _cycle_group(tf_world, g), GROUP_NAMES), strict=True))

    for name, (infra, out, plan, listed, again) in results.items():
        assert (plan.add, plan.change, plan.destroy) == (0, 0, 0), (name, plan.resources)
        assert listed == ["blue"]
        assert again == out
        assert out.ami == tf_world.ami(name)
        assert out.elb_name == f"{name}-blue"
        assert re.fullmatch(r"http://10\.\d+\.\d+\.\d+:8080", out.marathon_url)
        assert {r: len(ids) for r, ids in out.instances.items()} == {
            "mesos-agent": 2,
            "proxy": 2,
            "marathon": 1,
        }
        assert infra.slots_with_resources() == []
        assert infra.read_outputs("blue") is None

    # What the outputs name is what the emulator holds, tagged by role / group / slot.
    ec2 = tf_world.emulator.client("ec2", "cn-north-1", internal=True)
    gone = {i["InstanceId"]: i for r in ec2.describe_instances(
        InstanceIds=results["prd-cn"][1].instances["proxy"])["Reservations"] for i in r["Instances"]}
    assert {i["State"]["Name"] for i in gone.values()} == {"terminated"}
    tags = {t["Key"]: t["Value"] for t in next(iter(gone.values()))["Tags"]}
    assert tags["role"] == "proxy" and tags["group"] == "prd-cn" and tags["slot"] == "blue"
    assert tags["Name"].startswith("prd-cn-blue-proxy-")
    for region in ("cn-north-1", "ap-southeast-1"):
        assert tf_world.running_instances(region) == []


def test_both_slots_coexist_and_elb_fronts_the_proxies(tf_world):
    infra = tf_world.group("prd-cn")
    ami = tf_world.ami("prd-cn")
    with ThreadPoolExecutor(2) as pool:
        blue, green = pool.map(lambda s: infra.provision(s, ami), ["blue", "green"])
    try:
        assert infra.slots_with_resources() == ["blue", "green"]
        assert blue.marathon_url != green.marathon_url
        elb = tf_world.emulator.client("elb", "cn-north-1", internal=True)
        desc = elb.describe_load_balancers(LoadBalancerNames=[green.elb_name])["LoadBalancerDescriptions"][0]
        assert sorted(i["InstanceId"] for i in desc["Instances"]) == sorted(green.instances["proxy"])
        assert desc["HealthCheck"]["Target"] == "HTTP:80/health"
        attrs = elb.describe_load_balancer_attributes(LoadBalancerName=green.elb_name)
        assert attrs["LoadBalancerAttributes"]["ConnectionDraining"] == {"Enabled": True, "Timeout": 30}
        ec2 = tf_world.emulator.client("ec2", "cn-north-1", internal=True)
        cidrs = {v["CidrBlock"] for v in ec2.describe_vpcs(
            Filters=[{"Name": "tag:group", "Values": ["prd-cn"]}])["Vpcs"]}
        assert cidrs == {"10.20.0.0/16", "10.21.0.0/16"}
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(infra.destroy, ["blue", "green"]))
    assert infra.slots_with_resources() == []


@pytest.mark.parametrize("edge", ["cn", "sg"])
def test_edge_roots_apply_replan_clean_and_destroy(tf_world, edge):
    root = tf_world.edge(edge)
    out = root.apply()
    try:
        plan = root.plan_root()
        assert (plan.add, plan.change, plan.destroy) == (0, 0, 0), plan.resources
        region = {"cn": "cn-north-1", "sg": "ap-southeast-1"}[edge]
        zone = f"rotator-demo.{edge}."
        assert out["zone_name"].rstrip(".") + "." == zone
        r53 = tf_world.emulator.client("route53", region, internal=True)
        assert r53.get_hosted_zone(Id=out["zone_id"])["HostedZone"]["Name"] == zone
        groups = [g for g, r in REGION_OF_GROUP.items() if r == region]
        assert sorted(out["edge_elbs"]) == sorted(groups)
        elb = tf_world.emulator.client("elb", region, internal=True)
        names = [v["name"] for v in out["edge_elbs"].values()]
        found = elb.describe_load_balancers(LoadBalancerNames=names)["LoadBalancerDescriptions"]
        assert sorted(d["LoadBalancerName"] for d in found) == sorted(f"{g}-edge" for g in groups)
        assert all(d["ListenerDescriptions"][0]["Listener"]["LoadBalancerPort"] == 80 for d in found)
    finally:
        root.destroy_root()
    assert root.resources("default") == []
