"""Permanent AWS errors are step failures: the policy's on_failure applies, never a traceback.

The engine runs with the real group router against the AWS emulator; the emulator's fault
layer answers one call of the phase with a permanent error (protocol-correct body).
AWS's error codes (AWS API references): Route53 ``InvalidChangeBatch`` (400) and
``AccessDenied`` (403) on ChangeResourceRecordSets; ELBv2 ``ValidationError`` (400) on
RegisterTargets and ModifyListener, ``InvalidTarget`` on DeregisterTargets,
``TargetGroupNotFound`` and ``LoadBalancerNotFound``; classic ELB ``LoadBalancerNotFound`` on
DescribeInstanceHealth (the slot's own ELB, checked by the guard). None of these is
retryable: the same request gets the same answer.
"""

from __future__ import annotations

import pytest

from rotator.engine import Engine
from rotator.model import RotationStatus
from rotator.ports import SlotOutputs
from tests.engine_harness import APPS, GROUP, policy
from tests.fakes import FakeApps, FakeHealth, FakeWorld, MemoryStore


class EmulatedInfra:
    """Terraform's part, answered from slots already built in the emulator."""

    def __init__(self, built: dict[str, SlotOutputs], live: str):
        self.built = dict(built)
        self.present = {live}
        self.destroyed: list[str] = []

    def provision(self, slot, ami):
        self.present.add(slot)
        return self.built[slot]

    def read_outputs(self, slot):
        return self.built[slot] if slot in self.present else None

    def destroy(self, slot):
        self.present.discard(slot)
        self.destroyed.append(slot)

    def plan(self, slot, ami):  # pragma: no cover - not used by a rotation
        raise NotImplementedError

    def slots_with_resources(self):
        return sorted(self.present)


def _engine(w, router, slots, store, fault_at: str, fault: tuple[str, str]):
    fake = FakeWorld(clock=w.clock)
    fake.healthy.update(blue=True, green=True)
    infra = EmulatedInfra(slots, live="blue")

    def on_event(event):
        if event.kind == "step-started" and event.step.kind == fault_at:
            w.emulator.add_fault(fault[0], fault[1], count=1)

    eng = Engine(
        group=GROUP, policy=policy("blue-green", retain_stable=0.0), infra=infra,
        apps=FakeApps(fake), health=FakeHealth(fake), traffic=router, store=store,
        guard=router.guard, app_definitions=APPS, clock=w.clock, sleep=w.clock.sleep,
        on_event=on_event,
    )
    return eng, infra


def _slot_fake_urls(slots):
    # FakeApps finds the slot from the URL: marathon.<slot>:8080
    return {s: SlotOutputs(**{**o.to_dict(), "marathon_url": f"http://marathon.{s}:8080"})
            for s, o in slots.items()}


SHIFT_FAULTS = [
    ("route53:ChangeResourceRecordSets", "InvalidChangeBatch"),
    ("route53:ChangeResourceRecordSets", "AccessDenied"),
    ("elbv2:RegisterTargets", "ValidationError"),
    ("elbv2:ModifyListener", "ValidationError"),
    ("elbv2:DescribeTargetHealth", "TargetGroupNotFound"),
    ("elb:DescribeInstanceHealth", "LoadBalancerNotFound"),
]


@pytest.mark.parametrize("operation,code", SHIFT_FAULTS)
def test_a_permanent_error_during_shift_rolls_back_naming_the_call(prd_cn, operation, code):
    w, router, slots, _, _ = prd_cn
    slots = _slot_fake_urls(slots)
    store = MemoryStore()
    eng, infra = _engine(w, router, slots, store, "shift", (operation, code))
    record = eng.start("ami-0123abcd")
    assert record.status is RotationStatus.ROLLED_BACK, record.reason
    assert operation in record.reason and code in record.reason
    assert "Injected fault" in record.reason  # AWS's own message is carried
    shift = next(s for s in record.steps if s.kind == "shift")
    assert shift.status.value == "failed"
    # the world is back: blue carries everything, green is gone from traffic and destroyed
    state = router.read()
    assert all(v == {"blue": 100} for v in state.weights.values())
    edge = router.edge.spec.load_balancer
    assert state.edge_weights[edge] == {"blue": 100, "green": 0}
    assert not state.registrations[edge]["green"]
    assert infra.destroyed == ["green"]


RETIRE_FAULTS = [
    ("route53:ChangeResourceRecordSets", "InvalidChangeBatch"),
    ("elbv2:DeregisterTargets", "InvalidTarget"),
    ("elbv2:DescribeTargetGroupAttributes", "TargetGroupNotFound"),
]


@pytest.mark.parametrize("operation,code", RETIRE_FAULTS)
def test_a_permanent_error_while_retiring_pauses_then_resume_finishes(prd_cn, operation, code):
    """The new slot already serves everything: retiring the old one stops for an operator."""
    w, router, slots, _, _ = prd_cn
    slots = _slot_fake_urls(slots)
    store = MemoryStore()
    eng, infra = _engine(w, router, slots, store, "retire-traffic", (operation, code))
    record = eng.start("ami-0123abcd")
    assert record.status is RotationStatus.PAUSED, record.reason
    assert operation in record.reason and code in record.reason
    assert all(v.get("green") == 100 for v in router.read().weights.values())
    assert infra.destroyed == []
    store.died()
    again, _ = _engine(w, router, slots, store, "none", ("-", "-"))
    again.infra = infra
    record = again.resume()
    assert record.status is RotationStatus.DONE, record.reason
    assert infra.destroyed == ["blue"]


def test_a_permanent_error_in_the_rollback_is_retried_then_it_finishes(prd_cn):
    w, router, slots, _, _ = prd_cn
    slots = _slot_fake_urls(slots)
    store = MemoryStore()
    # the shift fails; taking the candidate out is refused once, then goes through
    eng, infra = _engine(w, router, slots, store, "shift",
                         ("elbv2:RegisterTargets", "ValidationError"))
    original = eng.on_event

    def also_rollback(event):
        original(event)
        if event.kind == "step-started" and event.step.kind == "rollback-traffic":
            w.emulator.add_fault("elbv2:DescribeTargetGroupAttributes", "ValidationError")

    eng.on_event = also_rollback
    record = eng.start("ami-0123abcd")
    assert record.status is RotationStatus.ROLLED_BACK, record.reason
    notes = [e["msg"] for e in record.events]
    assert any("DescribeTargetGroupAttributes" in m and "ValidationError" in m
               for m in notes), notes


class Boom(Exception):
    pass


def test_an_unexpected_exception_inside_a_step_rolls_back_and_says_what(prd_cn):
    w, router, slots, _, _ = prd_cn
    slots = _slot_fake_urls(slots)
    store = MemoryStore()
    eng, infra = _engine(w, router, slots, store, "none", ("-", "-"))
    calls = {"n": 0}
    real = router.set_weights

    def broken(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Boom("a bug in an adapter")
        return real(*args, **kwargs)

    router.set_weights = broken
    record = eng.start("ami-0123abcd")
    assert record.status is RotationStatus.ROLLED_BACK
    assert "unexpected error: Boom: a bug in an adapter" in record.reason
    assert store.load(GROUP.name)["status"] == "rolled-back"


def test_an_unexpected_exception_outside_any_step_pauses_the_record(prd_cn):
    """Never a record left 'running' with no process behind it."""
    w, router, slots, _, _ = prd_cn
    slots = _slot_fake_urls(slots)
    store = MemoryStore()
    eng, _ = _engine(w, router, slots, store, "none", ("-", "-"))
    reads = {"n": 0}
    real = store.read_control

    def flaky(group):
        reads["n"] += 1
        if reads["n"] == 3:
            raise Boom("store read failed")
        return real(group)

    store.read_control = flaky
    record = eng.start("ami-0123abcd")
    assert record.status is RotationStatus.PAUSED
    assert "unexpected error: Boom: store read failed" in record.reason
    assert store.load(GROUP.name)["status"] == "paused"
