"""Master/slave failover of a prd-sg pair (ap-southeast-1) and failback."""

from __future__ import annotations

import pytest

from rotator.errors import Refused
from rotator.failover import PairSide, failover
from rotator.traffic import RecordSpec, build_group_router

MASTER, SLAVE = "prd-sg-master", "prd-sg-slave"


@pytest.fixture
def pair(sg_world):
    w = sg_world
    zone = w.n("sg") + ".com."
    zone_id = w.zone(zone)
    records = [RecordSpec(zone=zone, name="api"), RecordSpec(zone=zone, name=f"www.{zone}", type="A")]
    # the pair's edge belongs to the master; the slave has its target groups there too
    specs = w.edge(MASTER, [MASTER, SLAVE])
    sides, routers = {}, {}
    w.services.update({MASTER: True, SLAVE: True, "blue": True, "green": True})
    for group, slot in ((MASTER, "blue"), (SLAVE, "green")):
        outputs = w.slot(group, slot, {"proxy": 2})
        routers[group] = build_group_router(
            group, records, specs[group], route53=w.route53, elb=w.elb, elbv2=w.elbv2,
            services_passing=w.passing, clock=w.clock, sleep=w.clock.sleep)
        sides[group] = PairSide(group=group, slot=slot, outputs=outputs,
                                edge=routers[group].edge, elb=w.elb)
    # both build (the slave's first build splits the pair), then the master takes it all
    routers[SLAVE].set_weights({"green": 100}, {"green": sides[SLAVE].outputs})
    routers[MASTER].set_weights({"blue": 100}, {"blue": sides[MASTER].outputs})
    w.emulator.reset_calls()
    kwargs = dict(records=records, route53=w.route53,
                  services_passing=lambda group, slot: w.services.get(group),
                  clock=w.clock, sleep=w.clock.sleep, wall_clock=lambda: 1_700_000_000.0)
    failover(source=sides[SLAVE], target=sides[MASTER], action="failback", **kwargs)
    w.emulator.reset_calls()
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
    assert event["weights_before"][records[0].key] == {"prd-sg-master-blue": 100,
                                                       "prd-sg-slave-green": 0}
    assert event["weights_after"][records[0].key] == {
        "prd-sg-master-blue": 0, "prd-sg-slave-green": 100}
    assert event["time"] == 1_700_000_000.0

    # the pair's edge moved with the records: all of it on the slave's live target group
    spec = sides[SLAVE].edge.spec
    assert w.listener_weights(spec) == {
        sides[MASTER].edge.spec.target_groups["blue"]: 0,
        sides[MASTER].edge.spec.target_groups["green"]: 0,
        spec.target_groups["blue"]: 0, spec.target_groups["green"]: 100}
    assert w.emulator.calls()["elbv2:ModifyListener"] == 1

    w.services[MASTER] = True
    back = failover(source=sides[SLAVE], target=sides[MASTER], action="failback", **kwargs)
    assert back["action"] == "failback" and back["to"] == MASTER
    assert pair_weights(w, zone_id, records) == {
        spec.key: {"prd-sg-master-blue": 100, "prd-sg-slave-green": 0} for spec in records
    }
    assert w.listener_weights(spec)[sides[MASTER].edge.spec.target_groups["blue"]] == 100
    assert w.listener_weights(spec)[spec.target_groups["green"]] == 0


@pytest.mark.parametrize("force", [False, True])
def test_unhealthy_target_refused_even_forced(pair, force):
    w, sides, records, zone_id, kwargs = pair
    w.services[SLAVE] = False
    with pytest.raises(Refused, match="target prd-sg-slave/green: .*services are not passing"):
        failover(source=sides[MASTER], target=sides[SLAVE], force=force, **kwargs)
    w.services[SLAVE] = True
    arn = sides[SLAVE].edge.target_group_arns()["green"]
    for ip in sides[SLAVE].outputs.private_ips["proxy"]:
        w.emulator.set_target_health(arn, ip, "unhealthy")
    with pytest.raises(Refused, match="in edge prd-sg-master-edge.*no healthy target"):
        failover(source=sides[MASTER], target=sides[SLAVE], force=force, **kwargs)
    assert "route53:ChangeResourceRecordSets" not in w.emulator.calls()
    assert "elbv2:ModifyListener" not in w.emulator.calls()


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
