"""Figures for the sandbox's AWS emulator: start-up, warm-up, call latency,
retry cost of injected throttling, and concurrent Route53 UPSERTs.

    .venv/bin/python bench/aws_emulator.py
"""

from __future__ import annotations

import statistics
import threading
import time

from botocore.config import Config

from rotator.sandbox.aws import AwsEmulator

REGION = "cn-north-1"


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def latency(label, fn, n=50):
    samples = [timed(fn)[0] * 1000 for _ in range(n)]
    print(
        f"{label:<42} median {statistics.median(samples):6.1f} ms   "
        f"p95 {sorted(samples)[int(n * 0.95) - 1]:6.1f} ms"
    )


def main() -> None:
    elapsed, emulator = timed(lambda: AwsEmulator().start())
    print(f"{'start() returns':<42} {elapsed * 1000:6.0f} ms")
    elapsed, _ = timed(emulator.wait_ready)
    print(f"{'moto loaded in background':<42} {elapsed * 1000:6.0f} ms after start()")
    config = Config(retries={"mode": "standard", "max_attempts": 3})
    ec2 = emulator.client("ec2", REGION, config=config)
    elapsed, _ = timed(ec2.describe_vpcs)
    print(f"{'first EC2 call (region warm-up)':<42} {elapsed * 1000:6.0f} ms")

    r53 = emulator.client("route53", REGION)
    zone = r53.create_hosted_zone(Name="bench.example.com", CallerReference="bench")
    zone_id = zone["HostedZone"]["Id"]
    ami = emulator.register_ami("bench", region=REGION)

    latency("ec2:DescribeVpcs", ec2.describe_vpcs)
    latency("ec2:DescribeInstances", ec2.describe_instances)
    latency("route53:GetHostedZone", lambda: r53.get_hosted_zone(Id=zone_id))
    latency(
        "route53:ChangeResourceRecordSets (2 UPSERT)",
        lambda: r53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": "api.bench.example.com",
                            "Type": "CNAME",
                            "SetIdentifier": slot,
                            "Weight": 50,
                            "TTL": 60,
                            "ResourceRecords": [{"Value": f"{slot}.elb"}],
                        },
                    }
                    for slot in ("blue", "green")
                ]
            },
        ),
    )
    latency(
        "ec2:RunInstances (1)",
        lambda: ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1),
        n=20,
    )

    emulator.add_fault("ec2:DescribeVpcs", "RequestLimitExceeded", count=2)
    elapsed, reply = timed(ec2.describe_vpcs)
    print(
        f"{'2 injected throttles, botocore retries':<42} {elapsed * 1000:6.0f} ms "
        f"({reply['ResponseMetadata']['RetryAttempts']} retries)"
    )

    emulator.reset_calls()
    errors = []

    def upserts(worker: int) -> None:
        client = emulator.client("route53", REGION)
        for i in range(25):
            try:
                client.change_resource_record_sets(
                    HostedZoneId=zone_id,
                    ChangeBatch={
                        "Changes": [
                            {
                                "Action": "UPSERT",
                                "ResourceRecordSet": {
                                    "Name": f"w{worker}.bench.example.com",
                                    "Type": "TXT",
                                    "TTL": 60,
                                    "ResourceRecords": [{"Value": f'"{i}"'}],
                                },
                            }
                        ]
                    },
                )
            except Exception as exc:  # counted, not raised: this is a load figure
                errors.append(exc)

    threads = [threading.Thread(target=upserts, args=(w,)) for w in range(8)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    count = emulator.calls().get("route53:ChangeResourceRecordSets", 0)
    print(f"{'8 threads x 25 UPSERTs':<42} {elapsed:6.2f} s, {count} calls, {len(errors)} errors")
    emulator.stop()


if __name__ == "__main__":
    main()
