"""Edge ELB: register before deregister, wait InService, draining returned."""

from __future__ import annotations

import pytest

from rotator.errors import StepFailed
from rotator.traffic import registered_share


def record_operations(*clients) -> list[str]:
    seen: list[str] = []

    def note(model, **_):
        seen.append(model.name)

    for client in clients:
        client.meta.events.register("before-call.*.*", note)
    return seen


def test_register_in_service_then_dns_then_deregister(prd_cn):
    w, router, slots, _, _ = prd_cn
    ops = record_operations(w.route53, w.elb)
    router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    writes = [o for o in ops if o in (
        "RegisterInstancesWithLoadBalancer", "ChangeResourceRecordSets",
        "DeregisterInstancesFromLoadBalancer")]
    assert writes == [
        "RegisterInstancesWithLoadBalancer",
        "ChangeResourceRecordSets", "ChangeResourceRecordSets",  # one per zone
        "DeregisterInstancesFromLoadBalancer",
    ]
    # InService was checked between registering and moving anything
    first_change = ops.index("ChangeResourceRecordSets")
    assert "DescribeInstanceHealth" in ops[ops.index("RegisterInstancesWithLoadBalancer"):first_change]


def test_new_instances_never_in_service_nothing_deregistered(prd_cn):
    w, router, slots, _, _ = prd_cn
    edge = w.n("prd-cn-edge")
    for instance_id in slots["green"].instances["proxy"]:
        w.emulator.set_instance_health(edge, instance_id, "OutOfService")
    router.elbs.in_service_timeout = 60
    start = w.clock()
    with pytest.raises(StepFailed, match="not InService after 60 s"):
        router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    assert w.clock() - start >= 60  # waited on the injected clock, bounded
    calls = w.emulator.calls()
    assert "route53:ChangeResourceRecordSets" not in calls
    assert "elb:DeregisterInstancesFromLoadBalancer" not in calls
    assert set(slots["blue"].instances["proxy"]) <= set(w.members(edge))
    # and the weights never moved
    assert all(v == {"blue": 100} for v in router.read().weights.values())


def test_settled_false_until_instances_in_service(prd_cn):
    w, router, slots, _, _ = prd_cn
    edge = w.n("prd-cn-edge")
    router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 100})
    assert router.settled({"blue": 50, "green": 50}, slots, wait=0)
    green_proxy = slots["green"].instances["proxy"][0]
    w.emulator.set_instance_health(edge, green_proxy, "OutOfService")
    assert not router.settled({"blue": 50, "green": 50}, slots, wait=0)
    assert router.read().health[edge][green_proxy] == "OutOfService"


def test_remove_slot_returns_draining_timeout(prd_cn):
    w, router, slots, _, _ = prd_cn
    router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    # blue's proxies are already out; the draining still applies before destroy
    assert router.elbs.remove_slot("blue", slots["blue"]) == 45
    assert not set(slots["blue"].instances["proxy"]) & set(w.members(w.n("prd-cn-edge")))


def test_read_after_restart_knows_slots_only_from_outputs(prd_cn):
    """A fresh router (a resumed rotation) learns slots from the stored outputs."""
    from rotator.traffic import build_group_router

    w, router, slots, _, records = prd_cn
    router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 100})
    fresh = build_group_router(
        "prd-cn", records, router.elbs.elbs, route53=w.route53, elb=w.elb,
        services_passing=w.passing, clock=w.clock, sleep=w.clock.sleep,
    )
    edge = w.n("prd-cn-edge")
    assert set(fresh.read().registrations[edge]) == {"unknown"}
    fresh.remember(slots)
    state = fresh.read()
    assert state.registrations[edge] == {
        "blue": sorted(slots["blue"].instances["proxy"])[:1],
        "green": sorted(slots["green"].instances["proxy"])[:1],
    }
    assert all(v == {"blue": 50, "green": 50} for v in state.weights.values())


@pytest.mark.parametrize(
    "count,weight,share",
    [(4, 0, 0), (4, 1, 1), (4, 5, 1), (4, 25, 1), (4, 50, 2), (4, 60, 3), (4, 99, 4),
     (4, 100, 4), (1, 5, 1), (0, 50, 0), (10, 25, 3)],
)
def test_registered_share_rounding(count, weight, share):
    assert registered_share(count, weight) == share
