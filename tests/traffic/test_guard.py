"""The traffic guard refuses every unsafe move, whoever asks, and nothing changes."""

from __future__ import annotations

import pytest

from rotator.errors import Refused
from rotator.ports import TrafficState

WRITES = (
    "route53:ChangeResourceRecordSets",
    "elbv2:RegisterTargets",
    "elbv2:ModifyListener",
    "elbv2:DeregisterTargets",
)


def writes(w) -> dict[str, int]:
    return {k: v for k, v in w.emulator.calls().items() if k in WRITES}


@pytest.mark.parametrize("verdict", [False, None])
def test_no_weight_on_a_slot_whose_services_fail_or_are_unknown(prd_cn, verdict):
    w, router, slots, _, _ = prd_cn
    w.services["green"] = verdict
    with pytest.raises(Refused, match="green") as refusal:
        router.set_weights({"blue": 95, "green": 5}, slots, {"blue": 100})
    assert ("unknown" if verdict is None else "not passing") in str(refusal.value)
    assert refusal.value.exit_code == 3
    assert writes(w) == {}


def test_one_move_asks_about_each_growing_slot_once(prd_cn):
    """The group router guards the whole move up front; its DNS and ELB halves do not ask again."""
    w, router, slots, _, _ = prd_cn
    w.asked.clear()
    router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100})
    assert w.asked == ["green"]
    w.asked.clear()
    router.set_weights({"blue": 100, "green": 0}, slots, {"blue": 75, "green": 25})
    assert w.asked == ["blue"]


def test_services_failing_while_targets_become_healthy_stop_the_weight(prd_cn):
    """After a wait for healthy targets the guard asks again before any weight moves."""
    w, router, slots, _, _ = prd_cn
    green = router.edge.target_group_arns()["green"]
    for ip in slots["green"].private_ips["proxy"]:
        w.emulator.set_target_health(green, ip, "initial")

    def healthy_but_failing():
        w.emulator.clear_instance_health()
        w.services["green"] = False
    w.clock.on_sleep.append(healthy_but_failing)
    w.asked.clear()
    with pytest.raises(Refused, match="green"):
        router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100})
    assert w.asked == ["green", "green"]
    assert all(v == {"blue": 100} for v in router.read().weights.values())
    assert "elbv2:ModifyListener" not in w.emulator.calls()


def test_the_edge_alone_still_guards_what_it_registers(prd_cn):
    w, router, slots, _, _ = prd_cn
    w.services["green"] = False
    with pytest.raises(Refused, match="green"):
        router.edge.register_phase({"blue": 50, "green": 50}, slots)
    assert writes(w) == {}


def test_no_weight_on_a_slot_without_in_service_instances(prd_cn):
    w, router, slots, _, _ = prd_cn
    green = slots["green"]
    for ids in green.instances.values():
        for instance_id in ids:
            w.emulator.set_instance_health(green.elb_name, instance_id, "OutOfService")
    with pytest.raises(Refused, match="no InService instance"):
        router.set_weights({"blue": 95, "green": 5}, slots, {"blue": 100})
    assert writes(w) == {}


def test_weight_may_leave_an_unhealthy_slot(prd_cn):
    """Moving weight away from a failing slot is never refused (that is the rollback)."""
    w, router, slots, _, records = prd_cn
    router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100})
    w.services["green"] = False
    router.set_weights({"blue": 100, "green": 0}, slots, {"blue": 75, "green": 25})
    assert all(v == {"blue": 100, "green": 0} for v in router.read().weights.values())


def test_records_carrying_weight_are_never_removed(prd_cn):
    w, router, slots, _, _ = prd_cn
    router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 100})
    w.emulator.reset_calls()
    with pytest.raises(Refused, match="carry weight"):
        router.remove_slot("blue", slots["blue"])
    assert writes(w) == {}


def test_destroy_refused_while_weight_or_targets_remain(prd_cn):
    w, router, slots, _, _ = prd_cn
    router.set_weights({"blue": 50, "green": 50}, slots, {"blue": 100})
    with pytest.raises(Refused, match="weight"):
        router.check_destroy("green")
    router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 50, "green": 50})
    # weight 0 on both layers, but blue's targets are still registered in the edge
    with pytest.raises(Refused, match="targets still registered or draining"):
        router.check_destroy("blue")
    router.remove_slot("blue", slots["blue"])
    router.check_destroy("blue")
    with pytest.raises(Refused):
        router.check_destroy("green")
    # edge weight alone is enough to refuse
    state = TrafficState(weights={"r": {"blue": 0}}, edge_weights={"edge": {"blue": 5}})
    with pytest.raises(Refused, match="carries weight on the edge"):
        router.guard.check_destroy("blue", state)


def test_retire_deletes_only_the_old_slot_and_returns_draining(prd_cn):
    w, router, slots, zones, records = prd_cn
    router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    drain = router.remove_slot("blue", slots["blue"])
    assert drain == 45
    for zone, spec in zip([zones["demo"], zones["demo"], zones["internal"]], records, strict=True):
        assert w.weights(zone, spec.fqdn, spec.type) == {"prd-cn-green": 100}
    state = router.read()
    assert state.slot_weight("green") == 400  # 3 records and the edge listener
    assert "blue" not in str(state.weights)
    router.check_destroy("blue")
