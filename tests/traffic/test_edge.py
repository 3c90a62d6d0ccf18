"""The edge ALB: register the candidate's proxies, wait until healthy, one ModifyListener per
step, exact weights read back; retire: deregister and drain. Against the AWS emulator."""

from __future__ import annotations

import pytest

from rotator.errors import Refused, StepFailed


def record_operations(*clients) -> list[str]:
    seen: list[str] = []

    def note(model, **_):
        seen.append(model.name)

    for client in clients:
        client.meta.events.register("before-call.*.*", note)
    return seen


def _spec(router):
    return router.edge.spec


def test_register_healthy_then_listener_then_dns_nothing_deregistered(prd_cn):
    w, router, slots, _, _ = prd_cn
    ops = record_operations(w.route53, w.elbv2)
    router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    writes = [o for o in ops if o in ("RegisterTargets", "ModifyListener",
                                      "ChangeResourceRecordSets", "DeregisterTargets")]
    assert writes == ["RegisterTargets", "ModifyListener",
                      "ChangeResourceRecordSets", "ChangeResourceRecordSets"]  # one per zone
    # health was read between registering and moving any weight
    between = ops[ops.index("RegisterTargets"):ops.index("ModifyListener")]
    assert "DescribeTargetHealth" in between
    spec = _spec(router)
    assert w.listener_weights(spec) == {spec.target_groups["blue"]: 0,
                                        spec.target_groups["green"]: 100}
    # registered by private IP, and the old slot's targets stay until it is retired
    assert set(w.targets(spec, "green")) == set(slots["green"].private_ips["proxy"])
    assert set(w.targets(spec, "blue")) == set(slots["blue"].private_ips["proxy"])


def test_a_canary_step_is_5_on_a_100_scale_on_both_layers(prd_cn):
    w, router, slots, zones, records = prd_cn
    router.set_weights({"blue": 95, "green": 5}, slots, {"blue": 100})
    spec = _spec(router)
    assert w.listener_weights(spec) == {spec.target_groups["blue"]: 95,
                                        spec.target_groups["green"]: 5}
    assert w.weights(zones["demo"], records[0].fqdn, "CNAME") == {
        "prd-cn-blue": 95, "prd-cn-green": 5}
    state = router.read()
    assert state.edge_weights == {spec.load_balancer: {"blue": 95, "green": 5}}


def test_candidates_never_healthy_nothing_moves(prd_cn):
    w, router, slots, _, _ = prd_cn
    spec = _spec(router)
    arn = router.edge.target_group_arns()["green"]
    for ip in slots["green"].private_ips["proxy"]:
        w.emulator.set_target_health(arn, ip, "unhealthy")
    router.edge.healthy_timeout = 60
    start = w.clock()
    with pytest.raises(StepFailed, match="not healthy after 60 s"):
        router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    assert w.clock() - start >= 60  # waited on the injected clock, bounded
    calls = w.emulator.calls()
    assert "elbv2:ModifyListener" not in calls
    assert "route53:ChangeResourceRecordSets" not in calls
    assert w.listener_weights(spec)[spec.target_groups["blue"]] == 100


def test_no_weight_on_a_target_group_without_healthy_targets(prd_cn):
    """The guard runs on the listener change itself, whoever calls it."""
    w, router, slots, _, _ = prd_cn
    with pytest.raises(Refused, match="no healthy target"):
        router.edge.set_weights({"blue": 50, "green": 50})  # green has no targets at all
    assert "elbv2:ModifyListener" not in w.emulator.calls()


def test_retire_deregisters_and_reports_the_draining(prd_cn):
    w, router, slots, _, _ = prd_cn
    router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    with pytest.raises(Refused, match="carries weight"):
        router.edge.remove_slot("green")
    assert router.remove_slot("blue", slots["blue"]) == 45  # the target group's delay
    assert router.edge.drained("blue")
    assert w.targets(_spec(router), "blue") == {}
    router.check_destroy("blue")
    with pytest.raises(Refused):
        router.check_destroy("green")


def test_the_last_healthy_targets_of_the_edge_are_never_deregistered(prd_cn):
    w, router, slots, _, _ = prd_cn
    router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    green = router.edge.target_group_arns()["green"]
    for ip in slots["green"].private_ips["proxy"]:
        w.emulator.set_target_health(green, ip, "unhealthy")
    with pytest.raises(Refused, match="last healthy"):
        router.edge.remove_slot("blue")
    assert set(w.targets(_spec(router), "blue")) == set(slots["blue"].private_ips["proxy"])


def test_settled_false_until_targets_healthy(prd_cn):
    w, router, slots, _, _ = prd_cn
    router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 100})
    assert router.settled({"blue": 50, "green": 50}, slots, 0)
    green = router.edge.target_group_arns()["green"]
    w.emulator.set_target_health(green, slots["green"].private_ips["proxy"][0], "unhealthy")
    w.emulator.set_target_health(green, slots["green"].private_ips["proxy"][1], "unhealthy")
    assert not router.settled({"blue": 50, "green": 50}, slots, 0)
