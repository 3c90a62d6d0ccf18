"""The adapter under faults: bad Terraform, failing and throttled AWS calls, held locks,
unknown AMIs. Real Terraform and the real provider against the emulator."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rotator.errors import InputError, Refused, StepFailed
from rotator.infra.tf_errors import TerraformApplyError, TerraformConfigError, TerraformLocked
from rotator.ports import OutputsIncomplete

pytestmark = pytest.mark.slow


def _creates(world) -> int:
    return sum(n for op, n in world.emulator.calls().items() if ":Create" in op or ":Run" in op)


def test_syntax_error_names_file_and_line_and_creates_nothing(tf_world):
    folder = tf_world.copy_group("prd-cn")
    text = (folder / "main.tf").read_text()
    lines = text.splitlines()
    bad_line = len(lines) + 2
    (folder / "main.tf").write_text(text + "\nresource \"aws_vpc\" \"broken\" {\n  cidr_block = \n}\n")
    infra = tf_world.group("prd-cn", folder=folder)
    before = _creates(tf_world)
    with pytest.raises(TerraformConfigError) as err:
        infra.provision("blue", tf_world.ami("prd-cn"))
    assert isinstance(err.value, InputError) and err.value.exit_code == 2
    assert err.value.file == "main.tf"
    assert err.value.line in (bad_line, bad_line + 1)
    assert f"main.tf:{err.value.line}" in str(err.value)
    assert _creates(tf_world) == before


def test_variable_validation_is_a_config_error(tf_world):
    infra = tf_world.group("prd-sg-slave")
    with pytest.raises(TerraformConfigError) as err:
        infra.plan("green", "not-an-ami")
    assert err.value.file and err.value.line
    assert "ami" in str(err.value).lower()
    assert infra.slots_with_resources() == []


def test_failed_run_instances_reports_what_was_created_then_destroy_cleans_up(tf_world):
    infra = tf_world.group("prd-cn")
    before = tf_world.running_instance_ids("cn-north-1", "prd-cn", "blue")
    tf_world.emulator.add_fault(
        "ec2:RunInstances", "Unsupported", count=1, after=2, status=400,
        message="The requested configuration is currently not supported.",
    )
    try:
        with pytest.raises(TerraformApplyError) as err:
            infra.provision("blue", tf_world.ami("prd-cn"))
    finally:
        tf_world.emulator.clear_faults()
    failure = err.value
    assert isinstance(failure, StepFailed)
    assert "Unsupported" in str(failure)
    assert "module.slot.aws_vpc.slot" in failure.created
    created_nodes = [a for a in failure.created if "aws_instance.node" in a]
    assert len(created_nodes) == 4  # five wanted, the third call failed
    assert not any("aws_elb" in a for a in failure.created)
    assert infra.slots_with_resources() == ["blue"]
    with pytest.raises(OutputsIncomplete, match="elb_name|marathon_url|elb_dns_name"):
        infra.read_outputs("blue")  # the rollback then removes the slot by tags instead
    made = tf_world.running_instance_ids("cn-north-1", "prd-cn", "blue") - before
    assert len(made) == 4

    infra.destroy("blue")
    assert infra.slots_with_resources() == []
    assert tf_world.instance_states("cn-north-1", sorted(made)) == {"terminated"}


def test_edge_roots_and_a_group_complete_under_ec2_elb_and_route53_throttling(tf_world):
    emu = tf_world.emulator
    for op in ("ec2:RunInstances", "ec2:CreateVpc", "ec2:DescribeSubnets",
               "ec2:CreateVpcPeeringConnection"):
        emu.add_fault(op, "RequestLimitExceeded", count=2)
    for op in ("route53:GetHostedZone",):
        emu.add_fault(op, "Throttling", count=2)
    for op in ("elb:CreateLoadBalancer", "elbv2:DescribeListeners"):
        emu.add_fault(op, "Throttling", count=2)
    infra = tf_world.group("ops-cn")
    try:
        with ThreadPoolExecutor(3) as pool:
            slot = pool.submit(infra.provision, "green", tf_world.ami("ops-cn"))
            # the edge roots, applied again under throttling, change nothing
            edges = [pool.submit(tf_world.edge(e).apply) for e in ("cn", "sg")]
            outputs = slot.result()
            for e in edges:
                e.result()
        fired = {f.operation: f.seen for f in emu.faults()}
        assert all(seen >= 2 for seen in fired.values()), fired
        assert len(outputs.instances["mesos-agent"]) == 2
    finally:
        emu.clear_faults()
        infra.destroy("green")
    assert infra.slots_with_resources() == []


def test_held_lock_names_the_holder_and_unknown_ami_is_a_clear_error(tf_world):
    """Two things, one slow apply: the holder of the lock boots an AMI the region does
    not know (its first call held until the second apply was refused, so the lock is held
    all that time); the second apply is refused."""
    infra = tf_world.group("prd-sg-master")
    unknown_ami = "ami-0123456789abcdef0"
    s3 = tf_world.emulator.client("s3", "ap-southeast-1", internal=True)
    backend = infra.settings.backend_config
    lock_key = f"env:/blue/{backend['key']}.tflock"
    tf_world.delays.hold()
    tf_world.emulator.add_fault("ec2:CreateVpc", None, count=1, delay=1.0)
    holder_error: list[BaseException] = []

    def holder():
        try:
            infra.provision("blue", unknown_ami)
        except BaseException as exc:  # noqa: BLE001 - checked below
            holder_error.append(exc)

    first = threading.Thread(target=holder)
    first.start()
    try:
        deadline = time.monotonic() + 30
        while not s3.list_objects_v2(Bucket=backend["bucket"], Prefix=lock_key).get("Contents"):
            assert time.monotonic() < deadline, "the first apply never took the lock"
            time.sleep(0.05)
        with pytest.raises(TerraformLocked) as err:
            infra.provision("blue", tf_world.ami("prd-sg-master"))
        assert isinstance(err.value, Refused) and err.value.exit_code == 3
        lock = err.value.lock
        assert lock.id and "@" in lock.who
        assert lock.operation == "OperationTypeApply"
        assert lock.who in str(err.value) and lock.id in str(err.value)
    finally:
        tf_world.delays.release()
        first.join()
        tf_world.emulator.clear_faults()

    failure = holder_error[0]
    assert isinstance(failure, TerraformApplyError)
    assert "AMI not found" in str(failure) and unknown_ami in str(failure)
    assert not any("aws_instance" in a for a in failure.created)
    assert "module.slot.aws_vpc.slot" in failure.created
    infra.destroy("blue")
    assert infra.slots_with_resources() == []


def test_a_lock_left_by_a_killed_run_of_ours_is_released_a_foreign_one_is_not(tf_world):
    """A rotate killed mid-apply leaves the S3 lock object behind: resuming releases it.
    A lock of another user or host is a real holder and stays."""
    import json
    import uuid

    from rotator.identity import holder

    # a folder of its own: runs of other tests in the shared groups/ops-sg are live holders
    infra = tf_world.group("ops-sg", tf_world.copy_group("ops-sg"))
    s3 = tf_world.emulator.client("s3", "ap-southeast-1", internal=True)
    backend = infra.settings.backend_config
    state_key = f"env:/blue/{backend['key']}"

    def leave_lock(who: str) -> None:
        s3.put_object(Bucket=backend["bucket"], Key=f"{state_key}.tflock", Body=json.dumps({
            "ID": str(uuid.uuid4()), "Operation": "OperationTypeApply", "Info": "",
            "Who": who, "Version": "1.11.4", "Created": "2026-11-26T06:00:00.000000Z",
            "Path": f"{backend['bucket']}/{state_key}"}))

    infra._ensure_workspace("blue")  # the workspace exists, as mid-rotation
    leave_lock("ops@another-host")
    with pytest.raises(TerraformLocked) as err:
        infra.provision("blue", tf_world.ami("ops-sg"))
    assert err.value.lock.who == "ops@another-host"

    leave_lock(holder())
    outputs = infra.provision("blue", tf_world.ami("ops-sg"))
    assert outputs.instances["proxy"]
    infra.destroy("blue")
    assert infra.slots_with_resources() == []


def test_plan_of_a_slot_without_a_workspace_changes_nothing(tf_world):
    """`rotate plan --terraform` for a slot never built: selecting the workspace in the S3
    backend would create it (TF_WORKSPACE names a missing workspace: Terraform creates it,
    docs cli/workspaces), so the plan runs against an empty local state instead."""
    infra = tf_world.group("prd-cn")
    before = infra._workspaces()
    plan = infra.plan("green", tf_world.ami("prd-cn"))
    assert plan.add > 10 and plan.change == 0 and plan.destroy == 0
    assert any("aws_vpc" in line for line in plan.resources)
    assert infra._workspaces() == before and "green" not in before
    assert not list(infra.group_dir.parent.glob(".plan-prd-cn-*")), "the copy is gone"
