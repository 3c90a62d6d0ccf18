"""The sandbox's Terraform leaves the world its CPU: providers run niced, on one core, and
the environment gives the CLI one core too."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.sandbox.terraform_runtime import TOOL_ENV, TOOL_NICENESS, TerraformRuntime
from rotator.sandbox.tf_install import find_provider_mirror
from rotator.sandbox.world import environment_document


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[16])


def test_the_long_lived_provider_runs_niced_on_one_core(tmp_path):
    if find_provider_mirror() is None:
        pytest.skip("no hashicorp/aws mirror")
    runtime = TerraformRuntime(endpoint_url="http://127.0.0.1:9", state_dir=tmp_path).start()
    try:
        runtime.settings("prd-cn")
        pid = runtime.daemons["cn-north-1"].pid
        assert _niceness(pid) == TOOL_NICENESS
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"GOMAXPROCS=1" in environ
    finally:
        runtime.stop()


def test_the_environment_gives_terraform_one_core():
    info = {"pid": 1, "aws": "http://127.0.0.1:9", "terraform": "terraform", "cli_config": "rc",
            "reattach": {}, "marathon_proxy": "http://127.0.0.1:8", "consul": "127.0.0.1:7",
            "metric_period": 10}
    extra = environment_document(info, ".rotator/state-sandbox")["terraform"]["extra_env"]
    assert TOOL_ENV.items() <= extra.items()
