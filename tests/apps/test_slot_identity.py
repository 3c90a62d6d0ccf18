"""The slot's identity travels in the app definitions rotator deploys, and the sandbox's
registrator reads it from there, as registrator and marathon-consul do on a real cluster.

Facts (../shared/reference/traffic-facts.md, last section):
- gliderlabs/registrator: "SERVICE_NAME", "SERVICE_TAGS" (comma separated) from the
  container's environment or labels (registrator docs, user/services);
- allegro/marathon-consul: apps with the label ``consul`` are registered (its value,
  when set, names the service); labels whose value is ``tag`` become tags (README).
"""

from __future__ import annotations

import pytest

from rotator.apps.slot_identity import slot_tag, with_slot_identity
from rotator.sandbox.consul import ConsulCore
from rotator.sandbox.marathon.model import TaskInfo
from rotator.sandbox.world import Registrator
from rotator.steps import requirements
from tests.engine_harness import APPS, GROUP, engine, policy
from tests.fakes import FakeWorld, MemoryStore

API = {"id": "/prd/api", "instances": 2, "env": {"SERVICE_TAGS": "http,v2"},
       "labels": {"team": "shop"}}


def test_registrator_tagging_appends_the_slot_tag_and_names_the_service():
    out = with_slot_identity(API, service="api", tag="prd-cn-green", tagging="registrator")
    assert out["env"] == {"SERVICE_TAGS": "http,v2,prd-cn-green", "SERVICE_NAME": "api"}
    assert API["env"] == {"SERVICE_TAGS": "http,v2"}  # the loaded definition is untouched
    again = with_slot_identity(out, service="api", tag="prd-cn-green", tagging="registrator")
    assert again["env"]["SERVICE_TAGS"] == "http,v2,prd-cn-green"


def test_marathon_consul_tagging_uses_labels():
    out = with_slot_identity(API, service="api", tag="prd-cn-blue", tagging="marathon-consul")
    assert out["labels"] == {"team": "shop", "consul": "api", "prd-cn-blue": "tag"}
    assert "SERVICE_NAME" not in out["env"]


def _task(app: dict) -> TaskInfo:
    return TaskInfo(app["id"], "api.instance-1._app.1", "10.20.10.5", "i-agent1", (31000,),
                    dict(app.get("labels", {})), [], dict(app.get("env", {})))


@pytest.mark.parametrize("tagging", ["registrator", "marathon-consul"])
def test_the_sandbox_registrator_reads_what_rotator_deployed(tagging):
    core = ConsulCore(["cn-north-1"], run_timers=False)
    try:
        reg = Registrator(core, "cn-north-1", "prd-cn", "green")
        app = with_slot_identity(API, service="orders-api", tag="prd-cn-green", tagging=tagging)
        reg.task_started(_task(app))
        _, found = core.dc("cn-north-1").health_service("orders-api", ["prd-cn-green"], False)
        assert len(found) == 1
    finally:
        core.close()


def test_a_task_deployed_without_the_slot_identity_is_not_found_by_the_gate():
    """The registrator does not know the slot by itself: nothing deployed, nothing tagged."""
    core = ConsulCore(["cn-north-1"], run_timers=False)
    try:
        Registrator(core, "cn-north-1", "prd-cn", "green").task_started(_task(API))
        dc = core.dc("cn-north-1")
        assert dc.health_service("api", ["prd-cn-green"], False)[1] == []
        assert len(dc.health_service("api", [], False)[1]) == 1
    finally:
        core.close()


def test_deploy_sends_definitions_carrying_what_the_gate_waits_for():
    world = FakeWorld()
    world.seed_live("blue")
    store = MemoryStore(world)
    eng = engine(world, store, policy("blue-green"))
    record = eng.start("ami-0123abcd")
    sent = eng.apps.sent[-1]
    reqs = {r.service: r.tag for r in requirements(GROUP, APPS, "green", policy("blue-green").gate)}
    assert record.candidate == "green"
    for app in sent:
        env = app["env"]
        assert slot_tag("prd-cn", "green") in env["SERVICE_TAGS"].split(",")
        assert reqs[env["SERVICE_NAME"]] == "prd-cn-green"
    assert sorted(a["env"]["SERVICE_NAME"] for a in sent) == sorted(reqs)
