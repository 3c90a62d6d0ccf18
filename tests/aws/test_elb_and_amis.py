"""Classic ELB as AWS answers it, the health override, and AMIs."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def balancer(emulator, client, unique):
    elb, ec2 = client("elb"), client("ec2")
    name = unique("lb")
    elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}],
        AvailabilityZones=["cn-north-1a"],
    )
    ami = emulator.register_ami(unique("base"), region="cn-north-1")
    reply = ec2.run_instances(ImageId=ami, MinCount=2, MaxCount=2)
    ids = [i["InstanceId"] for i in reply["Instances"]]
    elb.register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": i} for i in ids]
    )
    return elb, name, ids


def _states(elb, name):
    found = elb.describe_instance_health(LoadBalancerName=name)["InstanceStates"]
    return {s["InstanceId"]: s["State"] for s in found}


def test_health_override_forces_and_clears(emulator, balancer):
    elb, name, (first, second) = balancer
    assert _states(elb, name) == {first: "InService", second: "InService"}
    emulator.set_instance_health(name, first, "OutOfService")
    states = elb.describe_instance_health(LoadBalancerName=name)["InstanceStates"]
    failing = next(s for s in states if s["InstanceId"] == first)
    assert failing["State"] == "OutOfService"
    assert failing["ReasonCode"] == "Instance"
    assert _states(elb, name)[second] == "InService"
    emulator.set_instance_health(name, first, None)
    assert _states(elb, name) == {first: "InService", second: "InService"}


def test_health_override_can_force_in_service(emulator, client, balancer):
    elb, name, (first, _) = balancer
    client("ec2").stop_instances(InstanceIds=[first])
    assert _states(elb, name)[first] == "OutOfService"
    emulator.set_instance_health(name, first, "InService")
    assert _states(elb, name)[first] == "InService"


def test_health_override_does_not_register(emulator, balancer):
    elb, name, (first, _) = balancer
    elb.deregister_instances_from_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": first}]
    )
    emulator.set_instance_health(name, first, "InService")
    reply = elb.describe_instance_health(LoadBalancerName=name, Instances=[{"InstanceId": first}])
    assert reply["InstanceStates"][0]["State"] == "Unknown"


def test_health_state_is_validated(emulator):
    with pytest.raises(ValueError):
        emulator.set_instance_health("lb", "i-1", "Healthy")


def test_classic_elb_has_aws_defaults(client, unique):
    name = unique("lb")
    for region, zone_id, dns in (
        ("cn-north-1", "Z1GDH35T77C1KE", f"{name}.cn-north-1.elb.amazonaws.com.cn"),
        ("ap-southeast-1", "Z1LMS91P8CMLE5", f"{name}.ap-southeast-1.elb.amazonaws.com"),
    ):
        elb = client("elb", region=region)
        created = elb.create_load_balancer(
            LoadBalancerName=name,
            Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 443, "InstancePort": 8443}],
            AvailabilityZones=[f"{region}a"],
        )
        assert created["DNSName"] == dns
        described = elb.describe_load_balancers(LoadBalancerNames=[name])
        lb = described["LoadBalancerDescriptions"][0]
        assert lb["CanonicalHostedZoneNameID"] == zone_id
        assert lb["DNSName"] == dns
        assert lb["HealthCheck"] == {
            "Target": "TCP:8443",
            "Interval": 30,
            "Timeout": 5,
            "UnhealthyThreshold": 2,
            "HealthyThreshold": 10,
        }


def test_draining_timeout_survives_a_toggle(client, unique):
    elb = client("elb")
    name = unique("lb")
    elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
        AvailabilityZones=["cn-north-1a"],
    )

    def draining():
        attrs = elb.describe_load_balancer_attributes(LoadBalancerName=name)
        return attrs["LoadBalancerAttributes"]["ConnectionDraining"]

    assert draining() == {"Enabled": False, "Timeout": 300}
    elb.modify_load_balancer_attributes(
        LoadBalancerName=name,
        LoadBalancerAttributes={"ConnectionDraining": {"Enabled": True, "Timeout": 30}},
    )
    assert draining() == {"Enabled": True, "Timeout": 30}
    elb.modify_load_balancer_attributes(
        LoadBalancerName=name, LoadBalancerAttributes={"ConnectionDraining": {"Enabled": False}}
    )
    assert draining() == {"Enabled": False, "Timeout": 30}


def test_register_ami_then_launch(emulator, client, unique):
    ec2 = client("ec2")
    base = emulator.register_ami(unique("base"), region="cn-north-1")
    baked = emulator.register_ami("app-2024", region="cn-north-1", from_ami=base)
    image = ec2.describe_images(ImageIds=[baked])["Images"][0]
    assert image["Name"] == "app-2024"
    reply = ec2.run_instances(ImageId=baked, MinCount=1, MaxCount=1)
    assert reply["Instances"][0]["ImageId"] == baked
    # the builder instance is gone, and registering made no counted calls
    assert emulator.calls() == {"ec2:DescribeImages": 1, "ec2:RunInstances": 1}


def test_unknown_ami_is_refused(client):
    ec2 = client("ec2")
    with pytest.raises(ClientError) as err:
        ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1)
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def test_amis_are_per_region(emulator, client, unique):
    ami = emulator.register_ami(unique("base"), region="ap-southeast-1")
    with pytest.raises(ClientError) as err:
        client("ec2").run_instances(ImageId=ami, MinCount=1, MaxCount=1)
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
    reply = client("ec2", region="ap-southeast-1").run_instances(ImageId=ami, MinCount=1, MaxCount=1)
    assert reply["Instances"][0]["ImageId"] == ami


def test_calls_are_counted_per_operation(emulator, client, unique):
    ec2, r53 = client("ec2"), client("route53")
    ec2.describe_vpcs()
    ec2.describe_vpcs()
    zone = r53.create_hosted_zone(Name=f"{unique('z')}.example.com", CallerReference=unique("r"))
    r53.get_hosted_zone(Id=zone["HostedZone"]["Id"])
    r53.list_resource_record_sets(HostedZoneId=zone["HostedZone"]["Id"])
    assert emulator.calls() == {
        "ec2:DescribeVpcs": 2,
        "route53:CreateHostedZone": 1,
        "route53:GetHostedZone": 1,
        "route53:ListResourceRecordSets": 1,
    }
    emulator.reset_calls()
    assert emulator.calls() == {}


def test_a_retried_create_returns_the_balancer_a_different_one_is_refused(client, unique):
    """AWS: every ELB operation is idempotent; a provider retrying a create that did succeed
    must get the balancer back, not DuplicateLoadBalancerName (an orphan outside its state)."""
    elb, ec2 = client("elb"), client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.99.1.0/24",
                               AvailabilityZone="cn-north-1a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=unique("sg"), Description="elb",
                                      VpcId=vpc)["GroupId"]
    name = unique("lb")
    wanted = dict(LoadBalancerName=name, Subnets=[subnet], SecurityGroups=[group],
                  Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}])
    first = elb.create_load_balancer(**wanted)["DNSName"]
    assert elb.create_load_balancer(**wanted)["DNSName"] == first
    assert len([b for b in elb.describe_load_balancers()["LoadBalancerDescriptions"]
                if b["LoadBalancerName"] == name]) == 1
    other = {**wanted, "Listeners": [{"Protocol": "TCP", "LoadBalancerPort": 81,
                                      "InstancePort": 8081}]}
    with pytest.raises(ClientError, match="DuplicateLoadBalancerName|DuplicateAccessPointName"):
        elb.create_load_balancer(**other)


def test_registering_an_instance_twice_lists_it_once(balancer):
    elb, name, ids = balancer
    elb.register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": i} for i in ids + ids])
    listed = elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
    assert sorted(i["InstanceId"] for i in listed["Instances"]) == sorted(ids)
