"""Operations are named as AWS names them, whatever the protocol, and counted
exactly under concurrent calls."""

from __future__ import annotations

import threading


def test_s3_operations_sharing_a_path_are_told_apart(emulator, client, unique):
    s3 = client("s3")
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "cn-north-1"})
    s3.put_object(Bucket=bucket, Key="env:/blue/state", Body=b"{}")
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "env:/blue/state"})
    s3.head_object(Bucket=bucket, Key="copy")
    s3.get_object(Bucket=bucket, Key="copy")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.list_objects_v2(Bucket=bucket, Prefix="env:/")
    s3.delete_object(Bucket=bucket, Key="copy")
    assert emulator.calls() == {
        "s3:CreateBucket": 1,
        "s3:PutObject": 1,
        "s3:CopyObject": 1,
        "s3:HeadObject": 1,
        "s3:GetObject": 1,
        "s3:PutBucketVersioning": 1,
        "s3:ListObjectsV2": 1,
        "s3:DeleteObject": 1,
    }


def test_query_and_json_protocols(emulator, client):
    client("sts").get_caller_identity()
    client("elbv2").describe_load_balancers()
    client("elb").describe_load_balancers()
    client("dynamodb").list_tables()
    assert emulator.calls() == {
        "sts:GetCallerIdentity": 1,
        "elbv2:DescribeLoadBalancers": 1,
        "elb:DescribeLoadBalancers": 1,
        "dynamodb:ListTables": 1,
    }


def test_concurrent_calls_are_counted_exactly(emulator, client):
    def work():
        ec2 = client("ec2")
        for _ in range(10):
            ec2.describe_vpcs()

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert emulator.calls() == {"ec2:DescribeVpcs": 60}


def test_concurrent_faults_fail_exactly_count_calls(emulator, client):
    emulator.add_fault("ec2:DescribeRegions", "UnauthorizedOperation", count=5)
    failures = []

    def work():
        ec2 = client("ec2", retries={"total_max_attempts": 1})
        for _ in range(5):
            try:
                ec2.describe_regions()
            except ec2.exceptions.ClientError:
                failures.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 5
    assert emulator.calls() == {"ec2:DescribeRegions": 20}
