"""Apply the long-lived edge roots (hosted zone, edge ELBs) in the sandbox.

Edge roots live outside the slots: one Terraform state each, the default
workspace, applied once when the sandbox comes up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rotator.infra.terraform import TerraformRoot, TerraformRun
from rotator.sandbox.terraform_runtime import emulator_backend, emulator_env, state_bucket


def apply_edge(folder: Path, region: str, info: dict[str, Any], state_dir: Path) -> dict:
    env = emulator_env(info["aws"], region)
    env["TF_CLI_CONFIG_FILE"] = info["cli_config"]
    if info["reattach"].get(region):
        env["TF_REATTACH_PROVIDERS"] = info["reattach"][region]
    settings = TerraformRun(
        terraform=info["terraform"],
        env=env,
        backend_config={"bucket": state_bucket(region),
                        "key": f"edge/{folder.name}/terraform.tfstate", "region": region,
                        **emulator_backend(info["aws"])},
        data_dir=state_dir / "edge" / folder.name / ".terraform",
    )
    return TerraformRoot(folder, name=f"edge-{folder.name}", settings=settings).apply()
