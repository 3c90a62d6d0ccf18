"""Route53 records are identified by name + type + SetIdentifier, as in AWS."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def _weighted(name, ident, weight, value, rtype="CNAME"):
    return {
        "Name": name,
        "Type": rtype,
        "SetIdentifier": ident,
        "Weight": weight,
        "TTL": 60,
        "ResourceRecords": [{"Value": value}],
    }


def _change(r53, zone_id, *changes):
    return r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": a, "ResourceRecordSet": r} for a, r in changes]},
    )


def _records(r53, zone_id):
    found = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return sorted(
        (r["Name"], r["Type"], r.get("SetIdentifier"), r.get("Weight"))
        for r in found
        if r["Type"] in ("CNAME", "A", "TXT")
    )


@pytest.fixture
def zone(client, unique):
    r53 = client("route53", retries={"total_max_attempts": 1})
    name = f"{unique('zone')}.example.com"
    zone_id = r53.create_hosted_zone(Name=name, CallerReference=unique("ref"))["HostedZone"]["Id"]
    return r53, zone_id, name


def test_delete_with_identifier_removes_only_that_record(zone):
    r53, zone_id, name = zone
    _change(
        r53,
        zone_id,
        ("CREATE", _weighted(f"api.{name}", "blue", 100, "blue.elb")),
        ("CREATE", _weighted(f"api.{name}", "green", 0, "green.elb")),
        ("CREATE", _weighted(f"agents.{name}", "blue", 100, "blue.agents")),
        ("CREATE", _weighted(f"agents.{name}", "blue", 100, "1.2.3.4", rtype="TXT")),
    )
    _change(r53, zone_id, ("DELETE", _weighted(f"api.{name}", "blue", 100, "blue.elb")))
    assert _records(r53, zone_id) == [
        (f"agents.{name}.", "CNAME", "blue", 100),
        (f"agents.{name}.", "TXT", "blue", 100),
        (f"api.{name}.", "CNAME", "green", 0),
    ]


def test_recreate_after_delete(zone):
    r53, zone_id, name = zone
    record = _weighted(f"api.{name}", "blue", 100, "blue.elb")
    _change(r53, zone_id, ("CREATE", _weighted(f"zz.{name}", "x", 1, "later.sorting")))
    _change(r53, zone_id, ("CREATE", record))
    _change(r53, zone_id, ("DELETE", record))
    _change(r53, zone_id, ("CREATE", record))
    assert (f"api.{name}.", "CNAME", "blue", 100) in _records(r53, zone_id)


def test_duplicate_create_is_refused(zone):
    r53, zone_id, name = zone
    _change(r53, zone_id, ("CREATE", _weighted(f"api.{name}", "blue", 100, "blue.elb")))
    with pytest.raises(ClientError) as err:
        _change(r53, zone_id, ("CREATE", _weighted(f"api.{name}", "blue", 50, "other.elb")))
    assert err.value.response["Error"]["Code"] == "InvalidChangeBatch"
    assert "set-identifier='blue'] but it already exists" in err.value.response["Error"]["Message"]
    assert _records(r53, zone_id) == [(f"api.{name}.", "CNAME", "blue", 100)]


def test_delete_and_create_in_one_batch(zone):
    r53, zone_id, name = zone
    old = _weighted(f"api.{name}", "blue", 100, "blue.elb")
    _change(r53, zone_id, ("CREATE", old))
    _change(r53, zone_id, ("DELETE", old), ("CREATE", _weighted(f"api.{name}", "blue", 30, "new.elb")))
    found = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    api = [r for r in found if r["Name"] == f"api.{name}."]
    assert [(r["Weight"], r["ResourceRecords"]) for r in api] == [(30, [{"Value": "new.elb"}])]


def test_rejected_batch_changes_nothing(zone):
    r53, zone_id, name = zone
    _change(r53, zone_id, ("CREATE", _weighted(f"api.{name}", "blue", 100, "blue.elb")))
    with pytest.raises(ClientError):
        _change(
            r53,
            zone_id,
            ("UPSERT", _weighted(f"api.{name}", "blue", 0, "blue.elb")),
            ("CREATE", _weighted(f"api.{name}", "green", 100, "green.elb")),
            ("DELETE", _weighted(f"api.{name}", "red", 1, "missing.elb")),
        )
    assert _records(r53, zone_id) == [(f"api.{name}.", "CNAME", "blue", 100)]


def test_delete_needs_matching_values(zone):
    r53, zone_id, name = zone
    _change(r53, zone_id, ("CREATE", _weighted(f"api.{name}", "blue", 100, "blue.elb")))
    with pytest.raises(ClientError) as err:
        _change(r53, zone_id, ("DELETE", _weighted(f"api.{name}", "blue", 100, "other.elb")))
    assert "do not match the current values" in err.value.response["Error"]["Message"]


def test_upsert_of_both_weights_in_one_batch(zone):
    r53, zone_id, name = zone
    _change(
        r53,
        zone_id,
        ("UPSERT", _weighted(f"api.{name}", "blue", 100, "blue.elb")),
        ("UPSERT", _weighted(f"api.{name}", "green", 0, "green.elb")),
    )
    _change(
        r53,
        zone_id,
        ("UPSERT", _weighted(f"api.{name}", "blue", 75, "blue.elb")),
        ("UPSERT", _weighted(f"api.{name}", "green", 25, "green.elb")),
    )
    assert _records(r53, zone_id) == [
        (f"api.{name}.", "CNAME", "blue", 75),
        (f"api.{name}.", "CNAME", "green", 25),
    ]


@pytest.mark.parametrize("weight", [256, -1])
def test_weights_outside_0_to_255_are_refused(zone, client, weight):
    _, zone_id, name = zone
    # botocore checks the lower bound itself; let the emulator see it.
    r53 = client("route53", retries={"total_max_attempts": 1}, parameter_validation=False)
    with pytest.raises(ClientError) as err:
        _change(r53, zone_id, ("UPSERT", _weighted(f"api.{name}", "blue", weight, "blue.elb")))
    assert err.value.response["Error"]["Code"] == "InvalidInput"
    assert _records(r53, zone_id) == []


def test_weight_needs_a_set_identifier(zone):
    r53, zone_id, name = zone
    record = _weighted(f"api.{name}", "blue", 10, "blue.elb")
    del record["SetIdentifier"]
    with pytest.raises(ClientError) as err:
        _change(r53, zone_id, ("CREATE", record))
    assert "Missing field 'SetIdentifier'" in err.value.response["Error"]["Message"]
