from __future__ import annotations

import uuid

import pytest

from rotator.sandbox.aws import AwsEmulator

from .world import World, clients, prd_cn_records


@pytest.fixture(scope="session")
def aws_emulator():
    emulator = AwsEmulator(host="127.0.0.1", port=0, ami_validation=False).start()
    emulator.warm("cn-north-1", "ap-southeast-1")
    yield emulator
    emulator.stop()


def make_world(emulator, region: str) -> World:
    emulator.clear_faults()
    emulator.clear_instance_health()
    route53, elb, ec2, elbv2 = clients(emulator, region)
    tag = uuid.uuid4().hex[:8]
    ami = emulator.register_ami(f"rotator-test-{tag}", region=region)
    emulator.reset_calls()
    return World(emulator=emulator, region=region, route53=route53, elb=elb, ec2=ec2,
                 elbv2=elbv2, ami=ami, tag=tag)


@pytest.fixture
def cn_world(aws_emulator) -> World:
    return make_world(aws_emulator, "cn-north-1")


@pytest.fixture
def sg_world(aws_emulator) -> World:
    return make_world(aws_emulator, "ap-southeast-1")


@pytest.fixture
def prd_cn(cn_world):
    """prd-cn: 3 records in 2 zones, an edge ALB, blue live at 100, green built."""
    from rotator.traffic import build_group_router

    w = cn_world
    records = prd_cn_records(w)
    zones = {"demo": w.zone(records[0].zone), "internal": w.zone(records[2].zone)}
    edge = w.edge("prd-cn", ["prd-cn"])["prd-cn"]
    slots = {
        "blue": w.slot("prd-cn", "blue", {"proxy": 2, "agent": 2}),
        "green": w.slot("prd-cn", "green", {"proxy": 2, "agent": 2}),
    }
    w.services.update(blue=True, green=True)
    router = build_group_router(
        "prd-cn", records, edge, route53=w.route53, elb=w.elb, elbv2=w.elbv2,
        services_passing=w.passing, clock=w.clock, sleep=w.clock.sleep,
    )
    router.set_weights({"blue": 100}, {"blue": slots["blue"]})
    w.emulator.reset_calls()
    return w, router, slots, zones, records
