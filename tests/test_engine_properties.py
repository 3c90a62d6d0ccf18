"""Property: whatever faults and crashes happen, DESIGN §4's promises hold.

The engine runs the real routers and the real traffic guard over fakes that only record
(``tests/fake_aws.py``): nothing in the fakes refuses a bad change, so every promise is
judged by ``tests/promises.py`` from what actually happened to the world. At every change
the weights add up, no weight goes where it cannot be served, nothing reachable is
deregistered or destroyed, the record said which step acts before it acted, and a slot is
destroyed only after cached answers leading to it expired; every rotation ends rotated or
rolled back, with nothing orphaned.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotator.errors import StepFailed
from rotator.model import RotationStatus
from tests.engine_harness import policy, run_to_end
from tests.fake_aws import Lost, client_error
from tests.fakes import FakeWorld, MemoryStore, transient
from tests.promises import nothing_orphaned, violations

ENGINE_OPS = ["provision", "deploy", "destroy", "health"]
AWS_OPS = ["route53:ChangeResourceRecordSets", "route53:GetChange", "elbv2:ModifyListener",
           "elbv2:RegisterTargets", "elbv2:DeregisterTargets", "elbv2:DescribeTargetHealth",
           "elb:DescribeInstanceHealth"]
KINDS = ["transient", "permanent", "lost"]

fault = st.tuples(st.sampled_from(ENGINE_OPS + AWS_OPS), st.sampled_from(KINDS))
POLICIES = {"blue-green": policy("blue-green"), "canary": policy("canary")}


def inject(world: FakeWorld, op: str, kind: str) -> None:
    if op == "health":
        world.fail_health_after.setdefault("green", 2)
    elif op in AWS_OPS:
        errors = {"transient": [client_error("Throttling", "Rate exceeded")] * 8,  # past retries
                  "permanent": [client_error("AccessDenied", f"{op}: not allowed")],
                  "lost": [Lost()]}[kind]
        world.faults.setdefault(op, []).extend(errors)
    else:
        err = transient(op) if kind != "permanent" else StepFailed(f"{op}: injected")
        world.faults.setdefault(op, []).append(err)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy_name=st.sampled_from(sorted(POLICIES)),
    faults=st.lists(fault, max_size=4),
    unhealthy_after=st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
    crash_at=st.one_of(st.none(), st.integers(min_value=1, max_value=120)),
    crash_before_write=st.booleans(),
    first_build=st.booleans(),
)
def test_rotation_promises_hold_under_faults_and_crashes(
    policy_name, faults, unhealthy_after, crash_at, crash_before_write, first_build
):
    world = FakeWorld()
    if not first_build:
        world.seed_live("blue")
    for op, kind in faults:
        inject(world, op, kind)
    if unhealthy_after is not None:
        world.fail_health_after["green"] = unhealthy_after
    store = MemoryStore(world)
    store.crash_at, store.crash_before_write = crash_at, crash_before_write

    record = run_to_end(world, store, POLICIES[policy_name])

    assert violations(world) == []
    assert record.status in (RotationStatus.DONE, RotationStatus.ROLLED_BACK), record.reason
    serving = world.serving()
    if record.status is RotationStatus.DONE:
        assert serving == record.candidate
        assert world.slots[record.candidate].ami == record.ami
    else:
        assert serving == record.stable  # None for a first build
    assert nothing_orphaned(world) == []
