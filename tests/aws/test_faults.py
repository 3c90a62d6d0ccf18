"""Injected faults and delays, as boto3 (botocore's retry logic) sees them."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from rotator.sandbox.aws import AwsEmulator


def _ami(emulator, unique):
    return emulator.register_ami(unique("base"), region="cn-north-1")


def test_ec2_throttling_is_retried_by_botocore(emulator, client, unique):
    ec2 = client("ec2")
    ami = _ami(emulator, unique)
    emulator.add_fault("ec2:RunInstances", "RequestLimitExceeded", count=2)
    reply = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)
    assert reply["ResponseMetadata"]["RetryAttempts"] == 2
    assert emulator.calls()["ec2:RunInstances"] == 3


def test_route53_throttling_and_prior_request_are_retried(emulator, client, unique):
    r53 = client("route53")
    emulator.add_fault("route53:CreateHostedZone", "Throttling", count=1)
    emulator.add_fault("route53:CreateHostedZone", "PriorRequestNotComplete", after=1, count=1)
    zone = r53.create_hosted_zone(Name=f"{unique('z')}.example.com", CallerReference=unique("r"))
    assert zone["ResponseMetadata"]["RetryAttempts"] == 2
    assert emulator.calls()["route53:CreateHostedZone"] == 3


def test_retries_exhausted_surface_the_throttling_code(emulator, client):
    ec2 = client("ec2")
    emulator.add_fault("ec2:DescribeVpcs", "RequestLimitExceeded", count=None)
    with pytest.raises(ClientError) as err:
        ec2.describe_vpcs()
    assert err.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert emulator.calls()["ec2:DescribeVpcs"] == 3  # 1 call + max_attempts retries


def test_fault_on_the_third_run_instances_only(emulator, client, unique):
    ec2 = client("ec2", retries={"total_max_attempts": 1})
    ami = _ami(emulator, unique)
    emulator.add_fault("ec2:RunInstances", "InsufficientInstanceCapacity", after=2, count=1)
    outcomes = []
    for _ in range(4):
        try:
            ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m5.large")
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert outcomes == ["ok", "ok", "InsufficientInstanceCapacity", "ok"]


def test_non_retryable_code_surfaces_at_once(emulator, client):
    elb = client("elb")
    emulator.add_fault(
        "elb:RegisterInstancesWithLoadBalancer", "InvalidInstance", message="bad instance i-1"
    )
    with pytest.raises(ClientError) as err:
        elb.register_instances_with_load_balancer(
            LoadBalancerName="none", Instances=[{"InstanceId": "i-1"}]
        )
    error = err.value.response
    assert error["Error"] == {"Type": "Sender", "Code": "InvalidInstance", "Message": "bad instance i-1"}
    assert error["ResponseMetadata"]["RetryAttempts"] == 0
    assert emulator.calls()["elb:RegisterInstancesWithLoadBalancer"] == 1


def test_service_unavailable_is_a_503_and_retried(emulator, client):
    iam = client("iam", region="cn-north-1")
    emulator.add_fault("iam:ListRoles", "ServiceUnavailable")
    reply = iam.list_roles()
    assert reply["ResponseMetadata"]["RetryAttempts"] == 1


def test_route53_error_body_is_parsed_with_its_code(emulator, client):
    r53 = client("route53", retries={"total_max_attempts": 1})
    emulator.add_fault("route53:ListHostedZones", "AccessDenied", message="no")
    with pytest.raises(ClientError) as err:
        r53.list_hosted_zones()
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_s3_error_body_is_parsed_with_its_code(emulator, client, unique):
    s3 = client("s3", retries={"total_max_attempts": 1})
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "cn-north-1"})
    emulator.add_fault("s3:PutObject", "PreconditionFailed", message="At least one failed")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="state.tflock", Body=b"{}")
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    s3.put_object(Bucket=bucket, Key="state.tflock", Body=b"{}")
    assert emulator.calls()["s3:PutObject"] == 2


def test_dynamodb_json_error(emulator, client):
    ddb = client("dynamodb", retries={"total_max_attempts": 1})
    emulator.add_fault("dynamodb:ListTables", "ProvisionedThroughputExceededException")
    with pytest.raises(ClientError) as err:
        ddb.list_tables()
    assert err.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"


def test_delay_without_failure(emulator, client, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(emulator, "_sleep", slept.append)  # what injected delays wait with
    ec2 = client("ec2")
    ec2.describe_regions()
    emulator.add_fault("ec2:DescribeRegions", None, delay=0.4, count=1)
    assert ec2.describe_regions()["Regions"]  # answered, after the delay
    assert slept == [0.4]
    ec2.describe_regions()
    assert slept == [0.4]  # once only


def test_delays_use_the_injected_sleep():
    slept = []
    with AwsEmulator(sleep=slept.append, ami_validation=False) as emu:
        emu.add_fault("sts:GetCallerIdentity", None, delay=7.5)
        emu.client("sts", "cn-north-1").get_caller_identity()
    assert slept == [7.5]


def test_wildcards_and_clear(emulator, client):
    r53 = client("route53", retries={"total_max_attempts": 1})
    emulator.add_fault("route53:*", "InvalidInput", count=None)
    with pytest.raises(ClientError):
        r53.list_hosted_zones()
    assert [f.operation for f in emulator.faults()] == ["route53:*"]
    emulator.clear_faults()
    r53.list_hosted_zones()
