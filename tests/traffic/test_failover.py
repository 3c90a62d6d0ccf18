"""Master/slave failover of a prd-sg pair (ap-southeast-1) and failback."""

from __future__ import annotations

import pytest

from rotator.errors import Refused
from rotator.failover import PairSide, failback, failover, status_data
from rotator.traffic import ElbSpec, RecordSpec, build_group_router

MASTER, SLAVE = "prd-sg-master", "prd-sg-slave"


@pytest.fixture
def pair(sg_world):
    w = sg_world
    zone = w.n("sg") + ".com."
    zone_id = w.zone(zone)
    records = [RecordSpec(zone=zone, name="api"), RecordSpec(zone=zone, name=f"www.{zone}", type="A")]
    sides = {}
    for group, slot in ((MASTER, "blue"), (SLAVE, "green")):
        outputs = w.slot(group, slot, {"proxy": 2})
        edge = ElbSpec(name=w.n(f"{group}-edge"))
        w.create_elb(edge.name)
        w.elb.register_instances_with_load_balancer(
            LoadBalancerName=edge.name,
            Instances=[{"InstanceId": i} for i in outputs.instances["proxy"]],
        )
        sides[group] = PairSide(group=group, slot=slot, outputs=outputs, elbs=[edge], elb=w.elb)
    w.services.update({MASTER: True, SLAVE: True, "blue": True})
    master_router = build_group_router(
        MASTER, records, sides[MASTER].elbs, route53=w.route53, elb=w.elb,
        services_passing=w.passing, clock=w.clock, sleep=w.clock.sleep,
    )
    master_router.set_weights({"blue": 100}, {"blue": sides[MASTER].outputs})
    w.emulator.reset_calls()
    kwargs = dict(records=records, route53=w.route53,
                  services_passing=lambda group, slot: w.services.get(group),
                  clock=w.clock, sleep=w.clock.sleep, wall_clock=lambda: 1_700_000_000.0)
    return w, sides, records, zone_id, kwargs


def pair_weights(w, zone_id, records):
    return {spec.key: w.weights(zone_id, spec.fqdn, spec.type) for spec in records}


def test_failover_while_master_fails_then_failback(pair):
    w, sides, records, zone_id, kwargs = pair
    w.services[MASTER] = False  # the master's services are failing
    event = failover(source=sides[MASTER], target=sides[SLAVE], **kwargs)
    assert pair_weights(w, zone_id, records) == {
        spec.key: {"prd-sg-master-blue": 0, "prd-sg-slave-green": 100} for spec in records
    }
    # one batch for the one zone
    assert w.emulator.calls()["route53:ChangeResourceRecordSets"] == 1
    assert event["action"] == "failover" and event["from"] == MASTER and event["to"] == SLAVE
    assert event["forced"] is False and event["source_health"]["services"] == "failing"
    assert event["records"] == [spec.key for spec in records]
    assert event["weights_before"][records[0].key] == {"prd-sg-master-blue": 100}
    assert event["weights_after"][records[0].key] == {
        "prd-sg-master-blue": 0, "prd-sg-slave-green": 100}
    assert event["time"] == 1_700_000_000.0

    # status shows both groups of the pair
    routers = {
        g: build_group_router(g, records, sides[g].elbs, route53=w.route53, elb=w.elb,
                              services_passing=w.passing)
        for g in (MASTER, SLAVE)
    }
    for g, router in routers.items():
        router.remember({sides[g].slot: sides[g].outputs})
    status = status_data({g: r.read() for g, r in routers.items()})
    api = next(r for r in status["records"] if r["record"] == records[0].key)
    assert api["weights"] == {MASTER: {"blue": 0}, SLAVE: {"green": 100}}
    assert api["share"] == {f"{MASTER}/blue": 0.0, f"{SLAVE}/green": 100.0}
    slave_edge = next(e for e in status["elbs"] if e["group"] == SLAVE)
    assert slave_edge["in_service"] == 2 and list(slave_edge["slots"]) == ["green"]

    w.services[MASTER] = True
    back = failback(master=sides[MASTER], slave=sides[SLAVE], **kwargs)
    assert back["action"] == "failback" and back["to"] == MASTER
    assert pair_weights(w, zone_id, records) == {
        spec.key: {"prd-sg-master-blue": 100, "prd-sg-slave-green": 0} for spec in records
    }


@pytest.mark.parametrize("force", [False, True])
def test_unhealthy_target_refused_even_forced(pair, force):
    w, sides, records, zone_id, kwargs = pair
    w.services[SLAVE] = False
    with pytest.raises(Refused, match="target prd-sg-slave/green services are not passing"):
        failover(source=sides[MASTER], target=sides[SLAVE], force=force, **kwargs)
    w.services[SLAVE] = True
    for instance_id in sides[SLAVE].outputs.instances["proxy"]:
        w.emulator.set_instance_health(sides[SLAVE].elbs[0].name, instance_id, "OutOfService")
    with pytest.raises(Refused, match="edge ELB"):
        failover(source=sides[MASTER], target=sides[SLAVE], force=force, **kwargs)
    assert "route53:ChangeResourceRecordSets" not in w.emulator.calls()


def test_source_that_cannot_be_observed_needs_force(pair):
    w, sides, records, zone_id, kwargs = pair
    w.services[MASTER] = None  # the master's Consul does not answer
    with pytest.raises(Refused, match="use force"):
        failover(source=sides[MASTER], target=sides[SLAVE], **kwargs)
    assert "route53:ChangeResourceRecordSets" not in w.emulator.calls()
    event = failover(source=sides[MASTER], target=sides[SLAVE], force=True, **kwargs)
    assert event["forced"] is True and event["source_health"] == {"skipped": "forced"}
    assert pair_weights(w, zone_id, records)[records[1].key] == {
        "prd-sg-master-blue": 0, "prd-sg-slave-green": 100}
