"""Property: whatever faults and crashes happen, DESIGN §4's promises hold.

At every recorded moment the weights add up, no weight sits on a slot that
has no resources or no registered instances, no slot carrying traffic is
destroyed; and every rotation ends rotated or rolled back, with nothing
orphaned (the provisioned slots are exactly those that serve).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotator.errors import StepFailed
from rotator.model import RotationStatus
from tests.engine_harness import policy, run_to_end
from tests.fakes import FakeWorld, MemoryStore, transient

OPS = ["provision", "deploy", "set_weights", "remove_slot", "destroy", "health"]

fault = st.tuples(st.sampled_from(OPS), st.sampled_from(["transient", "permanent"]))
POLICIES = {"blue-green": policy("blue-green"), "canary": policy("canary")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy_name=st.sampled_from(sorted(POLICIES)),
    faults=st.lists(fault, max_size=4),
    unhealthy_after=st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
    crash_at=st.one_of(st.none(), st.integers(min_value=1, max_value=80)),
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
        err = transient(op) if kind == "transient" else StepFailed(f"{op}: injected")
        if op == "health":
            world.fail_health_after.setdefault("green", 2)
            continue
        world.faults.setdefault(op, []).append(err)
    if unhealthy_after is not None:
        world.fail_health_after["green"] = unhealthy_after
    store = MemoryStore(world)
    store.crash_at, store.crash_before_write = crash_at, crash_before_write

    record = run_to_end(world, store, POLICIES[policy_name])

    assert world.violations == []
    assert record.status in (RotationStatus.DONE, RotationStatus.ROLLED_BACK)
    serving = world.serving()
    if record.status is RotationStatus.DONE:
        assert serving == record.candidate
        assert world.slots[record.candidate].ami == record.ami
    else:
        assert serving == record.stable  # None for a first build
    # nothing orphaned: exactly the serving slot has resources
    assert sorted(world.slots) == ([serving] if serving else [])
    assert set(world.registered) == ({serving} if serving else set())
    # every recorded moment kept the weights whole
    for snap in store.snapshots:
        total = sum(snap["weights"].values())
        assert total in (0, 100)
