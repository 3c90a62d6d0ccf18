"""Route53 change ids as AWS hands them out (Route53 API reference, ChangeResourceRecordSets
and GetChange): every change has its own id; GetChange says PENDING until the change has
propagated to all authoritative servers, then INSYNC; an unknown id is NoSuchChange (404)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def _zone(client, unique):
    r53 = client("route53")
    name = unique("changes") + ".cn."
    zone = r53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]
    return r53, zone, name


def _upsert(r53, zone, name, weight):
    return r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {
            "Name": f"www.{name}", "Type": "CNAME", "TTL": 60, "SetIdentifier": "a",
            "Weight": weight, "ResourceRecords": [{"Value": "a.example.com"}]}}]})["ChangeInfo"]


def test_each_change_has_its_own_id_and_is_pending_until_propagated(emulator, client, unique):
    r53, zone, name = _zone(client, unique)
    now = [100.0]
    emulator.route53_changes.clock = lambda: now[0]
    emulator.set_route53_propagation(30)
    try:
        first = _upsert(r53, zone, name, 10)
        second = _upsert(r53, zone, name, 20)
        assert first["Id"] != second["Id"]
        assert first["Status"] == "PENDING"
        assert r53.get_change(Id=first["Id"])["ChangeInfo"]["Status"] == "PENDING"
        now[0] += 30
        assert r53.get_change(Id=first["Id"])["ChangeInfo"]["Status"] == "INSYNC"
    finally:
        emulator.set_route53_propagation(0)
        emulator.route53_changes.clock = __import__("time").monotonic


def test_an_unknown_change_id_is_no_such_change(client):
    with pytest.raises(ClientError) as err:
        client("route53").get_change(Id="/change/C0000000000000000000")
    assert err.value.response["Error"]["Code"] == "NoSuchChange"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_created_zone_has_a_change_that_get_change_knows(client, unique):
    """CreateHostedZone answers a ChangeInfo too; Terraform's provider waits on it."""
    r53 = client("route53")
    name = unique("zone") + ".cn."
    change = r53.create_hosted_zone(Name=name, CallerReference=name)["ChangeInfo"]
    assert r53.get_change(Id=change["Id"])["ChangeInfo"]["Status"] == "INSYNC"
