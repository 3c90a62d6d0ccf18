"""A canary shift of a prd-cn-like group through boto3 against the AWS emulator."""

from __future__ import annotations

import pytest

from rotator.errors import StepFailed

STEPS = [5, 25, 50, 100]


def test_canary_shift_verified_after_every_step_one_batch_per_zone_one_listener_change(prd_cn):
    w, router, slots, zones, records = prd_cn
    expected = {"blue": 100, "green": 0}
    for green in STEPS:
        weights = {"blue": 100 - green, "green": green}
        w.emulator.reset_calls()
        router.set_weights(weights, slots, expected)
        calls = w.emulator.calls()
        # one batch per hosted zone per step (2 zones), one ModifyListener per step
        assert calls["route53:ChangeResourceRecordSets"] == 2
        assert calls["elbv2:ModifyListener"] == 1
        assert router.settled(weights, slots, wait=0)
        # the world, read straight from Route53
        for zone, spec in zip([zones["demo"], zones["demo"], zones["internal"]], records, strict=True):
            name, rtype = spec.fqdn, spec.type
            assert w.weights(zone, name, rtype) == {
                "prd-cn-blue": 100 - green, "prd-cn-green": green
            }
        state = router.read()
        assert all(v == weights for v in state.weights.values())
        # the edge listener: exactly the step's weights, on a 100 scale
        spec = router.edge.spec
        assert w.listener_weights(spec) == {spec.target_groups[s]: v for s, v in weights.items()}
        expected = weights
    assert set(w.targets(router.edge.spec, "green")) == set(slots["green"].private_ips["proxy"])


def test_alias_record_points_at_slot_elb_with_canonical_zone(prd_cn):
    w, router, slots, zones, records = prd_cn
    router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 100})
    answer = w.route53.list_resource_record_sets(
        HostedZoneId=zones["demo"], StartRecordName=records[1].fqdn, StartRecordType="A"
    )
    aliases = {
        r["SetIdentifier"]: r["AliasTarget"] for r in answer["ResourceRecordSets"]
        if r["Name"] == records[1].fqdn and r["Type"] == "A"
    }
    assert aliases["prd-cn-green"]["DNSName"].rstrip(".") == slots["green"].elb_dns.rstrip(".")
    assert aliases["prd-cn-green"]["HostedZoneId"] == "Z1GDH35T77C1KE"  # cn-north-1 classic ELB


def test_record_changed_by_hand_is_detected_not_overwritten(prd_cn):
    w, router, slots, zones, records = prd_cn
    router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100})
    # an operator pushes api back to blue by hand between steps
    w.route53.change_resource_record_sets(
        HostedZoneId=zones["demo"],
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": records[0].fqdn, "Type": "CNAME", "SetIdentifier": "prd-cn-green",
            "Weight": 0, "TTL": 60, "ResourceRecords": [{"Value": slots["green"].elb_dns}],
        }}]},
    )
    w.emulator.reset_calls()
    with pytest.raises(StepFailed) as failure:
        router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 75, "green": 25})
    message = str(failure.value)
    assert records[0].fqdn in message and "changed outside the rotation" in message
    assert "'green': 25" in message and "'green': 0" in message
    # nothing was written, not even to the other records or the ELB
    calls = w.emulator.calls()
    assert "route53:ChangeResourceRecordSets" not in calls
    assert "elb:RegisterInstancesWithLoadBalancer" not in calls
    assert w.weights(zones["demo"], records[0].fqdn, "CNAME")["prd-cn-green"] == 0
    assert w.weights(zones["internal"], records[2].fqdn, "CNAME")[
        "prd-cn-green"] == 25


def test_step_already_applied_passes_on_resume(prd_cn):
    """A crash after the change, before the record was updated: the step finishes quietly."""
    w, router, slots, _, _ = prd_cn
    router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100})
    w.emulator.reset_calls()
    router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100})
    assert "route53:ChangeResourceRecordSets" not in w.emulator.calls()


def test_weights_must_be_integer_percentages_summing_to_100(prd_cn):
    from rotator.errors import Refused

    _, router, slots, _, _ = prd_cn
    for bad in ({"blue": 60, "green": 60}, {"blue": 99.5, "green": 0.5}, {"blue": 101, "green": -1}):
        with pytest.raises(Refused):
            router.set_weights(bad, slots)


def test_throttling_on_route53_and_the_load_balancers_is_survived(prd_cn):
    w, router, slots, zones, records = prd_cn
    w.emulator.add_fault("route53:ChangeResourceRecordSets", "Throttling", count=2)
    w.emulator.add_fault("route53:ChangeResourceRecordSets", "PriorRequestNotComplete", count=1,
                         after=3)
    w.emulator.add_fault("route53:ListResourceRecordSets", "Throttling", count=1)
    w.emulator.add_fault("elbv2:RegisterTargets", "Throttling", count=2)
    w.emulator.add_fault("elbv2:ModifyListener", "Throttling", count=1)
    w.emulator.add_fault("elb:DescribeInstanceHealth", "Throttling", count=1)
    before = dict(router.calls.retries)
    router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 100})
    assert w.weights(zones["internal"], records[2].fqdn, "CNAME") == {
        "prd-cn-blue": 50, "prd-cn-green": 50}
    retries = {k: v - before.get(k, 0) for k, v in router.calls.retries.items()}
    assert retries["route53:ChangeResourceRecordSets"] == 3
    assert retries["elbv2:RegisterTargets"] == 2
    assert retries["elbv2:ModifyListener"] == 1
    assert retries["route53:ListResourceRecordSets"] == 1
    assert w.emulator.calls()["route53:ChangeResourceRecordSets"] == 2 + 3
    # the backoff slept (on the injected clock), jittered and bounded
    assert w.clock.sleeps and max(w.clock.sleeps) <= 10


def test_persistent_throttling_gives_up_as_transient(prd_cn):
    from rotator.errors import TransientError

    w, router, slots, _, _ = prd_cn
    w.emulator.add_fault("route53:ChangeResourceRecordSets", "Throttling", count=None)
    with pytest.raises(TransientError, match="Throttling"):
        router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 100})
    assert w.emulator.calls()["route53:ChangeResourceRecordSets"] == router.calls.max_attempts
