"""An emulator in another process (``python -m rotator.sandbox.aws``), driven
through its control endpoints with AwsEmulatorControl."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from rotator.sandbox.aws import AwsEmulatorControl, AwsEmulatorControlError


@pytest.fixture(scope="module")
def remote():
    process = subprocess.Popen(
        [sys.executable, "-m", "rotator.sandbox.aws", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        control = AwsEmulatorControl(url)
        assert control.ping()
        yield url, control
    finally:
        process.terminate()
        process.wait(timeout=60)  # a loaded machine may still be importing moto
    assert process.returncode == 0


def _client(url, service, region="ap-southeast-1"):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def test_faults_and_calls_over_http(remote):
    url, control = remote
    control.reset()
    r53 = _client(url, "route53")
    control.add_fault("route53:ListHostedZones", "Throttling", after=1, count=1)
    assert [f["operation"] for f in control.faults()] == ["route53:ListHostedZones"]
    r53.list_hosted_zones()
    with pytest.raises(ClientError) as err:
        r53.list_hosted_zones()
    assert err.value.response["Error"]["Code"] == "Throttling"
    r53.list_hosted_zones()
    assert control.calls() == {"route53:ListHostedZones": 3}
    assert control.faults() == []
    control.reset_calls()
    assert control.calls() == {}


def test_amis_and_health_over_http(remote):
    url, control = remote
    control.reset()
    ami = control.register_ami("web-1", region="ap-southeast-1")
    ec2, elb = _client(url, "ec2"), _client(url, "elb")
    instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    elb.create_load_balancer(
        LoadBalancerName="web",
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
        AvailabilityZones=["ap-southeast-1a"],
    )
    elb.register_instances_with_load_balancer(
        LoadBalancerName="web", Instances=[{"InstanceId": instance}]
    )
    control.set_instance_health("web", instance, "OutOfService")
    state = elb.describe_instance_health(LoadBalancerName="web")["InstanceStates"][0]
    assert state["State"] == "OutOfService"
    control.set_instance_health("web", instance, None)
    state = elb.describe_instance_health(LoadBalancerName="web")["InstanceStates"][0]
    assert state["State"] == "InService"


def test_control_errors_are_clear(remote):
    _, control = remote
    with pytest.raises(AwsEmulatorControlError, match="state must be one of"):
        control.set_instance_health("web", "i-1", "Sick")
    with pytest.raises(AwsEmulatorControlError, match="InvalidAMIID.NotFound"):
        control.register_ami("x", region="ap-southeast-1", from_ami="ami-00000000000000000")
    with pytest.raises(AwsEmulatorControlError, match="missing field"):
        control._request("POST", "faults", {"code": "Throttling"})


def test_reset_wipes_resources(remote):
    url, control = remote
    ec2 = _client(url, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    control.reset()
    assert vpc not in [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]


def test_unreachable_emulator_pings_false():
    assert AwsEmulatorControl("http://127.0.0.1:9", timeout=1).ping() is False
