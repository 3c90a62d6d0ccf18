"""Fixtures of the data-plane tests: an AWS emulator for the DNS server to read its zones
from, and stand-ins on 127.0.0.1 for what the serving half of the sandbox provides
(load balancers at loopback addresses, and ``lb_address``)."""

from __future__ import annotations

import uuid

import pytest

from rotator.sandbox.aws import AwsEmulator

REGION = "cn-north-1"


@pytest.fixture(scope="session")
def emulator():
    emu = AwsEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def route53(emulator):
    return emulator.client("route53", REGION)


@pytest.fixture
def zone(route53):
    """A fresh public hosted zone; moto's state is per process, so names are unique."""
    name = f"z{uuid.uuid4().hex[:8]}.rotator-test.cn"
    zone_id = route53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]
    return Zone(route53, zone_id, name)


class Zone:
    def __init__(self, route53, zone_id: str, name: str):
        self.route53, self.id, self.name = route53, zone_id, name

    def fqdn(self, label: str) -> str:
        return f"{label}.{self.name}"

    def upsert(self, *rrsets: dict) -> None:
        self.route53.change_resource_record_sets(HostedZoneId=self.id, ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in rrsets]})

    def weighted_cname(self, label: str, set_id: str, weight: int, target: str, ttl: int = 60) -> dict:
        return {"Name": self.fqdn(label), "Type": "CNAME", "SetIdentifier": set_id,
                "Weight": weight, "TTL": ttl, "ResourceRecords": [{"Value": target}]}


class LoadBalancers:
    """Stands in for the data plane's ``lb_address``: DNS name -> loopback address."""

    def __init__(self, known: dict[str, str] | None = None):
        self.known = {k.lower(): v for k, v in (known or {}).items()}

    def __call__(self, dns_name: str) -> str | None:
        return self.known.get(dns_name.lower().rstrip("."))


@pytest.fixture
def lbs():
    return LoadBalancers({
        "blue-elb-1.us-east-1.elb.amazonaws.com": "127.0.0.21",
        "green-elb-2.us-east-1.elb.amazonaws.com": "127.0.0.22",
        "edge-alb-3.cn-north-1.elb.amazonaws.com.cn": "127.0.0.23",
    })
