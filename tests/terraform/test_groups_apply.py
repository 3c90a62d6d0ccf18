"""Every group: apply, no-op re-plan and destroy with the real provider (the edge roots
are cycled under throttling in test_faults)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from rotator.config import Project
from rotator.sandbox.terraform_runtime import REGION_OF_GROUP

from .conftest import EDGE_REGION, REPO

pytestmark = pytest.mark.slow

GROUP_NAMES = sorted(REGION_OF_GROUP)


def _cycle_group(world, name, slots=("blue",)):
    infra = world.group(name)
    ami = world.ami(name)
    assert infra.slots_with_resources() == []
    assert infra.read_outputs("blue") is None
    outs = {slot: infra.provision(slot, ami) for slot in slots}
    plan = infra.plan(slots[0], ami)
    listed = infra.slots_with_resources()
    again = infra.read_outputs(slots[0])
    for slot in slots:
        infra.destroy(slot)
    return infra, outs, plan, listed, again


def test_every_group_applies_replans_clean_and_destroys(tf_world):
    # prd-cn gets both slots at once (two applies in one folder), the others one each.
    jobs = {name: ("blue",) for name in GROUP_NAMES}
    jobs["prd-cn-green"] = ("green",)
    shared = {}

    def run(job):
        if job == "prd-cn-green":
            return _coexisting_green(tf_world, shared)
        return _cycle_group(tf_world, job, jobs[job])

    shared["prd-cn"] = tf_world.group("prd-cn")
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = dict(zip(jobs, pool.map(run, jobs), strict=True))

    for name in GROUP_NAMES:
        infra, outs, plan, listed, again = results[name]
        out = outs["blue"]
        assert (plan.add, plan.change, plan.destroy) == (0, 0, 0), (name, plan.resources)
        assert "blue" in listed
        assert again == out
        assert out.ami == tf_world.ami(name)
        assert out.elb_name == f"{name}-blue"
        assert re.fullmatch(r"http://10\.\d+\.\d+\.\d+:8080", out.marathon_url)
        counts = Project(REPO).group(name).terraform.vars
        assert {r: len(ids) for r, ids in out.instances.items()} == {
            "mesos-agent": counts.get("agent_count", 2),
            "proxy": counts.get("proxy_count", 2),
            "marathon": 1,
        }
        assert len(out.private_ips["proxy"]) == counts.get("proxy_count", 2)
        assert infra.slots_with_resources() == []
        assert infra.read_outputs("blue") is None

    # What the outputs named is what the emulator held, tagged by role / group / slot,
    # and every instance of every group is terminated now.
    ec2 = tf_world.emulator.client("ec2", "cn-north-1", internal=True)
    gone = {i["InstanceId"]: i for r in ec2.describe_instances(
        InstanceIds=results["prd-cn"][1]["blue"].instances["proxy"])["Reservations"] for i in r["Instances"]}
    tags = {t["Key"]: t["Value"] for t in next(iter(gone.values()))["Tags"]}
    assert tags["role"] == "proxy" and tags["group"] == "prd-cn" and tags["slot"] == "blue"
    assert tags["Name"].startswith("prd-cn-blue-proxy-")
    for name in GROUP_NAMES:
        ids = [i for ids in results[name][1]["blue"].instances.values() for i in ids]
        assert tf_world.instance_states(REGION_OF_GROUP[name], ids) == {"terminated"}, name
    green_ids = [i for ids in results["prd-cn-green"].instances.values() for i in ids]
    assert tf_world.instance_states("cn-north-1", green_ids) == {"terminated"}


def _coexisting_green(world, shared):
    """prd-cn green next to prd-cn blue: distinct VPCs, its own ELB fronting its proxies."""
    infra = shared["prd-cn"]
    green = infra.provision("green", world.ami("prd-cn"))
    try:
        elb = world.emulator.client("elb", "cn-north-1", internal=True)
        desc = elb.describe_load_balancers(LoadBalancerNames=[green.elb_name])["LoadBalancerDescriptions"][0]
        assert sorted(i["InstanceId"] for i in desc["Instances"]) == sorted(green.instances["proxy"])
        assert desc["HealthCheck"]["Target"] == "HTTP:80/health"
        attrs = elb.describe_load_balancer_attributes(LoadBalancerName=green.elb_name)
        assert attrs["LoadBalancerAttributes"]["ConnectionDraining"] == {"Enabled": True, "Timeout": 30}
        ec2 = world.emulator.client("ec2", "cn-north-1", internal=True)
        vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:group", "Values": ["prd-cn"]},
                                         {"Name": "tag:slot", "Values": ["green"]}])["Vpcs"]
        assert [v["CidrBlock"] for v in vpc] == ["10.21.0.0/16"]
        private = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc[0]["VpcId"]]},
                                                {"Name": "tag:tier", "Values": ["private"]}])["Subnets"]
        reservations = ec2.describe_instances(InstanceIds=green.instances["mesos-agent"])["Reservations"]
        assert {i["SubnetId"] for r in reservations for i in r["Instances"]} <= {s["SubnetId"] for s in private}
        assert infra.plan("green", world.ami("prd-cn")).change == 0
    finally:
        infra.destroy("green")
    return green


def test_edges_converge_also_after_rotator_moved_the_weights(tf_world):
    """Each region's edge: an ALB per group (one per pair), a target group per slot (ip,
    the group's deregistration delay), a listener forwarding to them by weight. rotator owns
    the weights (Terraform ignores them): after a ModifyListener the plan is still empty."""
    for edge, region in EDGE_REGION.items():
        out = tf_world.edges[edge]
        zone = f"rotator-demo.{edge}."
        assert out["zone_name"].rstrip(".") + "." == zone
        groups = [g for g, r in REGION_OF_GROUP.items() if r == region]
        owners = {Project(REPO).group(g).traffic.edge.load_balancer for g in groups}
        assert sorted(out["load_balancers"]) == sorted(owners)
        assert sorted(out["target_groups"]) == sorted(f"{g}/{s}" for g in groups
                                                      for s in ("blue", "green"))
        elbv2 = tf_world.emulator.client("elbv2", region, internal=True)
        for lb in out["load_balancers"].values():
            listener = elbv2.describe_listeners(LoadBalancerArn=lb["arn"])["Listeners"][0]
            forward = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
            tgs = [t["TargetGroupArn"] for t in forward]
            elbv2.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=[
                {"Type": "forward", "ForwardConfig": {"TargetGroups": [
                    {"TargetGroupArn": arn, "Weight": 5 if i == 0 else 95 if i == 1 else 0}
                    for i, arn in enumerate(tgs)]}}])
            attrs = elbv2.describe_target_group_attributes(TargetGroupArn=tgs[0])["Attributes"]
            assert {a["Key"]: a["Value"] for a in attrs}[
                "deregistration_delay.timeout_seconds"] == "10"
        plan = tf_world.edge(edge).plan_root()
        assert (plan.add, plan.change, plan.destroy) == (0, 0, 0), plan.resources
