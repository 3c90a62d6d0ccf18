"""Apply a long-lived edge root (hosted zone, edge ELBs) in the sandbox.

Edge roots live outside the slots: one Terraform state each, the default
workspace, applied once when the sandbox comes up.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from rotator.errors import RotatorError
from rotator.sandbox.terraform_runtime import emulator_env, state_bucket


class EdgeApplyError(RotatorError):
    exit_code = 2


def _backend_args(region: str, aws_url: str, key: str) -> list[str]:
    config = {
        "bucket": state_bucket(region),
        "key": key,
        "region": region,
        "use_path_style": "true",
        "skip_credentials_validation": "true",
        "skip_requesting_account_id": "true",
        "skip_metadata_api_check": "true",
        "skip_region_validation": "true",
        "skip_s3_checksum": "true",
    }
    args = [f"-backend-config={k}={v}" for k, v in config.items()]
    args.append(f'-backend-config=endpoints={{s3="{aws_url}"}}')
    return args


def apply_edge(folder: Path, region: str, info: dict[str, Any], state_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_CA_BUNDLE", "TF_WORKSPACE", "AWS_PROFILE")}
    env.update(emulator_env(info["aws"], region))
    env["TF_CLI_CONFIG_FILE"] = info["cli_config"]
    env["TF_DATA_DIR"] = str(state_dir / "edge" / folder.name / ".terraform")
    env["TF_IN_AUTOMATION"] = "1"
    if info["reattach"].get(region):
        env["TF_REATTACH_PROVIDERS"] = info["reattach"][region]
    key = f"edge/{folder.name}/terraform.tfstate"
    steps = [
        ["init", "-input=false", "-no-color", "-reconfigure", *_backend_args(region, info["aws"],
                                                                             key)],
        ["apply", "-input=false", "-no-color", "-auto-approve"],
    ]
    for args in steps:
        proc = subprocess.run([info["terraform"], *args], cwd=folder, env=env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise EdgeApplyError(f"terraform {args[0]} of {folder} failed:\n{tail}")


def edge_outputs(folder: Path, region: str, info: dict[str, Any], state_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "TF_WORKSPACE")}
    env.update(emulator_env(info["aws"], region))
    env["TF_CLI_CONFIG_FILE"] = info["cli_config"]
    env["TF_DATA_DIR"] = str(state_dir / "edge" / folder.name / ".terraform")
    proc = subprocess.run([info["terraform"], "output", "-json", "-no-color"], cwd=folder,
                          env=env, capture_output=True, text=True, check=True)
    return {k: v["value"] for k, v in json.loads(proc.stdout).items()}
