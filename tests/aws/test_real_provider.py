"""The real hashicorp/aws provider against the emulator: apply a slot-like
config, then a plan must find no drift, then destroy. This is the test that
finds the next gap between moto and AWS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

MIRROR = Path("/opt/tf-plugins")
PROVIDER = MIRROR / "registry.terraform.io/hashicorp/aws"
SCRATCH = Path(__file__).parent / "scratch_tf"
REGION = "cn-north-1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        shutil.which("terraform") is None or not PROVIDER.is_dir(),
        reason="needs terraform on PATH and the hashicorp/aws provider mirror in /opt/tf-plugins",
    ),
]


def _terraform(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    interactive = args[0] in ("init", "plan", "apply", "destroy")
    return subprocess.run(
        ["terraform", *args, "-no-color", *(["-input=false"] if interactive else [])],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_apply_then_no_op_plan_then_destroy(emulator, client, tmp_path):
    workdir = tmp_path / "slot"
    shutil.copytree(SCRATCH, workdir)
    cli_config = tmp_path / "cli.tfrc"
    cli_config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{MIRROR}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        AWS_ENDPOINT_URL=emulator.url,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_EC2_METADATA_DISABLED="true",
    )
    ami = emulator.register_ami("scratch-base", region=REGION)
    suffix = f"t{uuid.uuid4().hex[:8]}"
    variables = ["-var", f"ami={ami}", "-var", f"suffix={suffix}"]

    init = _terraform(workdir, env, "init")
    assert init.returncode == 0, init.stdout + init.stderr
    # Injected throttling must be retried by the Go SDK as real AWS throttling is.
    emulator.add_fault("ec2:CreateVpc", "RequestLimitExceeded", count=2)
    emulator.add_fault("route53:CreateHostedZone", "Throttling", count=1)
    emulator.add_fault("elb:CreateLoadBalancer", "Throttling", count=1)
    apply = _terraform(workdir, env, "apply", "-auto-approve", *variables)
    try:
        assert apply.returncode == 0, apply.stdout + apply.stderr
        calls = emulator.calls()
        assert calls["ec2:CreateVpc"] == 3
        assert calls["route53:CreateHostedZone"] == 2
        assert calls["elb:CreateLoadBalancer"] == 3  # two balancers, one throttled once

        plan = _terraform(workdir, env, "plan", "-detailed-exitcode", *variables)
        assert plan.returncode == 0, "drift after apply:\n" + plan.stdout + plan.stderr

        # A non-retryable code fails the command and names itself.
        emulator.add_fault("ec2:DescribeVpcs", "UnauthorizedOperation", count=None)
        refused = _terraform(workdir, env, "plan", *variables)
        emulator.clear_faults()
        assert refused.returncode == 1
        assert "UnauthorizedOperation" in refused.stderr

        outputs = json.loads(_terraform(workdir, env, "output", "-json").stdout)
        assert outputs["elb_zone_id"]["value"] == "Z1GDH35T77C1KE"
        assert outputs["elb_dns"]["value"] == f"web-{suffix}.cn-north-1.elb.amazonaws.com.cn"
        assert outputs["bare_health_target"]["value"] == "TCP:9000"
        attributes = client("elb").describe_load_balancer_attributes(
            LoadBalancerName=f"web-{suffix}"
        )["LoadBalancerAttributes"]
        assert attributes["ConnectionDraining"] == {"Enabled": True, "Timeout": 30}
    finally:
        destroy = _terraform(workdir, env, "destroy", "-auto-approve", *variables)
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    running = client("ec2").describe_instances(
        Filters=[
            {"Name": "tag:group", "Values": [suffix]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    assert running == []
