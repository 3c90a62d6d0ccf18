"""The engine over in-memory fakes: happy paths, failures, crashes, abort, promote, lock."""

from __future__ import annotations

import pytest

from rotator.errors import InputError, StepFailed
from rotator.model import RotationStatus, StepStatus
from rotator.ports import LockHeld
from tests.engine_harness import GROUP, abort, engine, policy, promote, run_to_end
from tests.fake_aws import client_error
from tests.fakes import Crash, FakeWorld, MemoryStore, transient
from tests.promises import nothing_orphaned, violations


def throttled():
    return client_error("Throttling", "Rate exceeded")


@pytest.fixture
def world():
    w = FakeWorld()
    w.seed_live("blue")
    return w


@pytest.fixture
def store(world):
    return MemoryStore(world)


def assert_rotated(world: FakeWorld, record) -> None:
    assert record.status is RotationStatus.DONE, record.reason
    assert world.weights == {"green": 100}
    assert sorted(world.slots) == ["green"]
    assert world.registered == {"green": world.slots["green"].private_ips["proxy"]}
    assert world.slots["green"].ami == record.ami
    assert violations(world) == [] and nothing_orphaned(world) == []


def assert_rolled_back(world: FakeWorld, record) -> None:
    assert record.status is RotationStatus.ROLLED_BACK, record.reason
    assert world.weights.get("blue") == 100 and not world.weights.get("green")
    assert sorted(world.slots) == ["blue"]
    assert list(world.registered) == ["blue"]
    assert violations(world) == [] and nothing_orphaned(world) == []


def test_blue_green_happy_path(world, store):
    events = []
    record = engine(world, store, policy("blue-green"), events=events).start("ami-0123abcd")
    assert_rotated(world, record)
    names = [s.name for s in record.steps]
    assert names == [
        "provision green", "deploy apps to green", "verify green health",
        "shift 100% to green", "bake 5.0s", "retire blue: out of traffic", "retire blue: wait until quiet", "retire blue: destroy",
    ]
    assert all(s.status is StepStatus.DONE for s in record.steps)
    assert record.stable_ami == "ami-00000001"
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert store.history(GROUP.name)[-1]["status"] == "done"


def test_an_apply_that_failed_half_way_is_rolled_back_without_outputs(world, store):
    """The half-built candidate has resources but no outputs: rollback still removes it."""
    record = engine(world, store, policy("blue-green")).start("ami-halfbuilt")
    assert_rolled_back(world, record)
    assert world.half_built == set()
    rollback = {s.kind: s.status for s in record.rollback_steps}
    assert rollback["rollback-traffic"] is StepStatus.DONE
    assert rollback["rollback-destroy"] is StepStatus.DONE


def test_a_gate_that_sees_changes_is_asked_again_at_once(world, store):
    """Verify finishes when the services pass, not at the next poll interval."""
    world.settling_polls["green"] = 3
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert_rotated(world, record)
    verify = next(s for s in record.steps if s.kind == "verify")
    assert verify.finished_at - verify.started_at == pytest.approx(0.3, abs=0.01)


def test_first_build_of_an_empty_group_goes_straight_to_100():
    world = FakeWorld()
    store = MemoryStore(world)
    record = engine(world, store, policy("canary")).start("ami-0123abcd")
    assert record.status is RotationStatus.DONE
    assert record.stable is None and record.candidate == "blue"
    assert [s.kind for s in record.steps] == ["provision", "deploy", "verify", "shift"]
    assert world.weights == {"blue": 100}


@pytest.mark.parametrize("op", ["route53:ChangeResourceRecordSets", "elbv2:ModifyListener"])
def test_a_first_build_that_reached_traffic_pauses_instead_of_a_rollback_it_cannot_finish(op):
    """The edge moved (or its targets got healthy), then the next change was refused: the
    candidate holds the group's only traffic, which no rollback can take back (the guard
    keeps it). The rotation pauses at once, saying so; a resume after the fix finishes."""
    world = FakeWorld()
    store = MemoryStore(world)
    world.faults[op] = [client_error("AccessDenied", f"{op}: not allowed")]
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert record.status is RotationStatus.PAUSED
    assert record.rollback_steps == []
    assert "a first build cannot roll back: blue" in record.reason
    assert record.current_step.kind == "shift"
    assert "blue" in world.slots and world.registered == {
        "blue": world.slots["blue"].private_ips["proxy"]}
    record = engine(world, store, policy("blue-green")).resume()
    assert record.status is RotationStatus.DONE, record.reason
    assert world.weights == {"blue": 100}
    assert violations(world) == [] and nothing_orphaned(world) == []


def test_a_first_build_that_never_reached_traffic_still_rolls_back():
    world = FakeWorld()
    store = MemoryStore(world)
    world.faults["elbv2:RegisterTargets"] = [client_error("AccessDenied", "not allowed")]
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert record.status is RotationStatus.ROLLED_BACK, record.reason
    assert world.slots == {} and violations(world) == [] and nothing_orphaned(world) == []


def test_canary_walks_the_weights_and_waits_for_promotion(world, store):
    pol = policy("canary")
    record = engine(world, store, pol).start("ami-0123abcd")
    assert record.status is RotationStatus.WAITING  # exit 4 without a terminal
    assert world.weights == {"green": 25, "blue": 75}
    assert not store.locks, "the lock is released while waiting for an operator"
    promote(store, record)
    record = engine(world, store, pol).resume()
    assert_rotated(world, record)
    shifts = [s["weights"] for s in store.snapshots]
    seen = []
    for w in shifts:
        if w.get("green") and w.get("green") not in seen:
            seen.append(w["green"])
    assert seen == [5, 25, 50, 100]


def test_interactive_approval_waits_in_process_until_promoted(world, store):
    pol = policy("canary")
    eng = engine(world, store, pol, interactive=True)
    original_sleep = world.clock.sleep
    promoted = []

    def sleep(seconds):
        rec = store.load(GROUP.name)
        if rec["status"] == "waiting" and not promoted:
            promoted.append(True)
            promote(store, rec)
        original_sleep(seconds)

    eng.sleep = sleep
    record = eng.start("ami-0123abcd")
    assert promoted and [a["outcome"] for a in record.operator_actions] == ["approved approval"]
    assert_rotated(world, record)


def test_taken_over_interactively_a_waiting_approval_still_shows_waiting(world, store):
    """A controller (or a terminal) that resumes a canary waiting for approval keeps it
    waiting until the promotion: the record never says running meanwhile, so the
    dashboard's Promote button stays usable throughout the takeover."""
    pol = policy("canary")
    record = engine(world, store, pol).start("ami-0123abcd")
    assert record.status is RotationStatus.WAITING
    statuses: list[str] = []
    save = store.save

    def watched(rec):
        statuses.append(rec["status"])
        save(rec)
    store.save = watched
    eng = engine(world, store, pol, interactive=True)
    wait = world.clock.sleep

    def sleep(seconds):
        if not store.load(GROUP.name)["operator_actions"]:
            promote(store, store.load(GROUP.name))
        wait(seconds)
    eng.sleep = sleep
    record = eng.resume()
    assert_rotated(world, record)
    approved = next(i for i, s in enumerate(statuses) if s == "running")
    assert set(statuses[:approved]) == {"waiting"} and approved >= 1, statuses
    assert record.operator_actions[0]["outcome"] == "approved approval"


@pytest.mark.parametrize("op", ["provision", "deploy", "route53:ChangeResourceRecordSets",
                                "elbv2:ModifyListener"])
def test_a_failure_at_each_step_rolls_back(world, store, op):
    broke = (client_error("AccessDenied", f"{op} broke") if ":" in op
             else StepFailed(f"{op} broke"))
    world.faults[op] = [broke]
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert_rolled_back(world, record)
    assert f"{op} broke" in record.reason
    assert [s.kind for s in record.rollback_steps] == [
        "rollback-weights", "rollback-traffic", "rollback-quiet", "rollback-destroy"]


def test_unhealthy_candidate_at_verify_rolls_back(world, store):
    world.fail_health_after["green"] = 0
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert_rolled_back(world, record)
    assert "health gate failed" in record.reason


@pytest.mark.parametrize("polls", [3, 8, 14])
def test_candidate_turning_unhealthy_during_shift_or_bake_rolls_back(world, store, polls):
    world.fail_health_after["green"] = polls
    record = engine(world, store, policy("canary")).start("ami-0123abcd")
    if record.status is RotationStatus.WAITING:
        promote(store, record)
        record = engine(world, store, policy("canary")).resume()
    assert_rolled_back(world, record)
    assert "web: 0/2 passing" in record.reason


def test_deploy_deadline_cancels_and_rolls_back(world, store):
    world.deploy_ticks = 10_000
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert_rolled_back(world, record)
    assert "deploy deadline passed" in record.reason


def test_a_steps_deadline_survives_a_restart(world, store):
    """The deadline is in the record: a deploy that outlived it while no process ran fails
    at the resume's first look, not a whole deadline later."""
    world.deploy_ticks = 10_000
    eng = engine(world, store, policy("blue-green"))

    def die_while_deploying(seconds):
        step = (rec := store.load(GROUP.name))["steps"][rec["cursor"]]
        if step["kind"] == "deploy" and step["acted"]:
            raise Crash()
        world.clock.sleep(seconds)

    eng.sleep = die_while_deploying
    with pytest.raises(Crash):
        eng.start("ami-0123abcd")
    store.died()
    deploy = next(s for s in store.load(GROUP.name)["steps"] if s["kind"] == "deploy")
    world.clock.now = deploy["deadline"] + 1  # nobody ran it until past its deadline
    resumed_at, length = world.clock(), deploy["deadline"] - deploy["started_at"]
    again = engine(world, store, policy("blue-green"))

    def bounded(seconds):
        assert world.clock() < resumed_at + length, "the deploy got a new deadline"
        world.clock.sleep(seconds)

    again.sleep = bounded
    record = again.resume()
    assert_rolled_back(world, record)
    failed = next(s for s in record.steps if s.kind == "deploy")
    assert failed.status is StepStatus.FAILED and "deadline" in failed.reason
    assert failed.finished_at - resumed_at < 5


def test_transient_faults_are_retried_within_the_step(world, store):
    world.faults["provision"] = [transient("provision"), transient("provision")]
    world.faults["route53:ChangeResourceRecordSets"] = [throttled()] * 8  # past AwsCalls' retries
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert_rotated(world, record)
    assert record.steps[0].attempts == 3


def test_retire_failure_pauses_without_rolling_back_then_resume_finishes(world, store):
    world.faults["destroy"] = [StepFailed("DependencyViolation")]
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert record.status is RotationStatus.PAUSED
    assert world.weights == {"green": 100}
    record = engine(world, store, policy("blue-green")).resume()
    assert_rotated(world, record)


def test_on_failure_pause_stops_for_an_operator(world, store):
    pol = policy("blue-green", on_failure="pause")
    world.faults["deploy"] = [StepFailed("marathon said no")]
    record = engine(world, store, pol).start("ami-0123abcd")
    assert record.status is RotationStatus.PAUSED
    assert "marathon said no" in record.reason
    record = engine(world, store, pol).resume()  # retries the failed step
    assert_rotated(world, record)


def test_abort_during_shift_rolls_back(world, store):
    pol = policy("canary")
    record = engine(world, store, pol).start("ami-0123abcd")
    assert record.status is RotationStatus.WAITING
    abort(store, record, "bad canary metrics")
    record = engine(world, store, pol).resume()
    assert_rolled_back(world, record)
    assert "aborted by" in record.reason and "bad canary metrics" in record.reason


def test_abort_while_running_is_acted_on_between_steps(world, store):
    pol = policy("canary")
    eng = engine(world, store, pol)
    original = world.clock.sleep

    def sleep(seconds):
        rec = store.load(GROUP.name)
        if rec and rec["weights"].get("green") == 5:
            abort(store, rec, "operator")
        original(seconds)

    eng.sleep = sleep
    record = eng.start("ami-0123abcd")
    assert_rolled_back(world, record)


def test_lock_held_by_another_is_refused_with_the_holder(world, store):
    store.acquire(GROUP.name, "prd-cn-other")
    with pytest.raises(LockHeld) as exc:
        engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert exc.value.exit_code == 3
    assert "ops@bastion" in str(exc.value) and "4242" in str(exc.value)
    assert world.calls == []


def test_a_new_rotation_is_refused_while_one_is_unfinished(world, store):
    record = engine(world, store, policy("canary")).start("ami-0123abcd")
    assert record.status is RotationStatus.WAITING
    with pytest.raises(Exception, match="rotate resume"):
        engine(world, store, policy("canary")).start("ami-0fedcba9")


def test_resume_refuses_a_changed_policy(world, store):
    record = engine(world, store, policy("canary")).start("ami-0123abcd")
    assert record.status is RotationStatus.WAITING
    with pytest.raises(InputError, match="changed since"):
        engine(world, store, policy("canary", retain_stable=99.0)).resume()


def test_lost_lock_stops_before_the_next_change(world, store):
    pol = policy("blue-green")
    eng = engine(world, store, pol)
    original = world.clock.sleep

    def sleep(seconds):
        store.lose_lock = True
        original(seconds)

    eng.sleep = sleep
    with pytest.raises(Exception, match="lost the lock"):
        eng.start("ami-0123abcd")
    assert world.weights == {"blue": 100}


def count_saves(pol) -> int:
    w = FakeWorld()
    w.seed_live("blue")
    s = MemoryStore(w)
    run_to_end(w, s, pol)
    return s.saves


@pytest.mark.parametrize("before", [False, True])
def test_crash_at_every_record_write_then_resume_ends_cleanly(before):
    pol = policy("blue-green")
    total = count_saves(pol)
    assert total > 15
    for n in range(1, total + 1):
        world = FakeWorld()
        world.seed_live("blue")
        store = MemoryStore(world)
        store.crash_at, store.crash_before_write = n, before
        record = run_to_end(world, store, pol)
        assert_rotated(world, record)


def test_crash_during_rollback_then_resume_finishes_the_rollback():
    pol = policy("blue-green")
    for n in range(1, 40):
        world = FakeWorld()
        world.seed_live("blue")
        world.fail_health_after["green"] = 4
        store = MemoryStore(world)
        store.crash_at = n
        try:
            record = run_to_end(world, store, pol)
        except Crash:  # pragma: no cover
            raise
        assert_rolled_back(world, record)


def test_ctrl_c_leaves_the_record_paused_not_running(world, store):
    """An interrupted rotation says so in its record; `rotate resume` carries on."""
    world.faults["provision"] = [KeyboardInterrupt()]
    with pytest.raises(KeyboardInterrupt):
        engine(world, store, policy("blue-green")).start("ami-0123abcd")
    data = store.load(GROUP.name)
    assert data["status"] == "paused" and "interrupted" in data["reason"]
    store.died()
    record = engine(world, store, policy("blue-green")).resume()
    assert_rotated(world, record)


def test_a_promotion_only_approves_the_approval_waiting_now(world, store):
    """A promote sent while the canary is at 5 % must not pass the approval before 50 %."""
    from rotator.state.control import operator_request

    pol = policy("canary")
    eng = engine(world, store, pol)
    original = world.clock.sleep
    sent = []

    def sleep(seconds):
        rec = store.load(GROUP.name)
        if rec and rec["weights"].get("green") == 5 and not sent:
            sent.append(True)  # e.g. a stale dashboard: names the approval that comes later
            store.write_control(GROUP.name, rec["id"], operator_request(
                "promote", step="approval", by="early@bird", via="test"))
        original(seconds)

    eng.sleep = sleep
    record = eng.start("ami-0123abcd")
    assert sent and record.status is RotationStatus.WAITING
    assert world.weights == {"blue": 75, "green": 25}
    [early] = record.operator_actions
    assert early["by"] == "early@bird" and early["outcome"].startswith("ignored")
    promote(store, record)
    record = engine(world, store, pol).resume()
    assert_rotated(world, record)
    late = record.operator_actions[-1]
    assert late["outcome"] == "approved approval" and late["by"] and late["at"]
    approval = next(s for s in record.steps if s.kind == "approve")
    assert approval.reason.startswith("promoted by")


def test_rotate_promote_is_refused_unless_an_approval_waits_now(world, store):
    from rotator.errors import InputError
    from rotator.model import RotationRecord
    from rotator.session import waiting_approval

    record = engine(world, store, policy("canary")).start("ami-0123abcd")
    assert waiting_approval(record) == "approval"
    at_shift = RotationRecord.from_dict(store.history(GROUP.name)[-1])
    at_shift.cursor = next(i for i, s in enumerate(at_shift.steps) if s.kind == "shift")
    at_shift.status = RotationStatus.RUNNING
    with pytest.raises(InputError, match="nothing is waiting for approval") as err:
        waiting_approval(at_shift)
    assert err.value.exit_code == 2 and "shift 5% to green" in str(err.value)


def test_a_rollback_that_cannot_finish_exits_5_saying_what_is_left_where(world, store):
    from rotator.cli import exit_code_of
    from rotator.render import left_behind

    world.fail_health_after["green"] = 2  # the candidate fails: roll back
    world.faults["destroy"] = [StepFailed("terraform destroy: DependencyViolation")] * 200
    record = engine(world, store, policy("blue-green")).start("ami-0123abcd")
    assert record.status is RotationStatus.ROLLBACK_FAILED
    assert exit_code_of(record) == 5
    text = left_behind(record)
    assert "weights last set: blue 100% / green 0%" in text
    assert "slots with resources: blue (ami-00000001), green (ami-0123abcd)" in text
    assert "stopped at: destroy green (failed: terraform destroy: DependencyViolation)" in text


def test_verify_waits_for_the_candidates_own_load_balancer(world, store):
    """Its records will point at its own ELB: the ELB's health checks must pass (after the
    apps are healthy) before any weight moves; the gate waits, it does not fail."""
    world.out_of_service.add("green")
    original = world.clock.sleep
    waited = []

    def sleep(seconds):
        rec = store.load(GROUP.name)
        if rec and rec["steps"][rec["cursor"]]["kind"] == "verify":
            waited.append(seconds)
            if len(waited) == 3:
                world.out_of_service.discard("green")
        original(seconds)

    eng = engine(world, store, policy("blue-green"))
    eng.sleep = sleep
    record = eng.start("ami-0123abcd")
    assert_rotated(world, record)
    assert len(waited) >= 3
    verify = next(s for s in record.steps if s.kind == "verify")
    notes = [e["msg"] for e in record.events if e["step"] == verify.name]
    assert notes == ["healthy"]
