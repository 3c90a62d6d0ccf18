"""The environment is chosen explicitly; the sandbox is a default only while it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rotator.cli import main
from rotator.environment import SANDBOX_ENV, load_environment
from rotator.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def _sandbox_file(root: Path, pid: int) -> None:
    path = root / SANDBOX_ENV
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"name": "sandbox", "pid": pid,
                                    "aws": {"endpoint_url": "http://127.0.0.1:1"}}))


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_nothing_chosen_and_no_sandbox_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTATOR_ENV", raising=False)
    with pytest.raises(InputError, match="no environment was chosen.*--env production"):
        load_environment(tmp_path)


def test_a_running_sandbox_is_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTATOR_ENV", raising=False)
    _sandbox_file(tmp_path, os.getpid())
    assert load_environment(tmp_path).name == "sandbox"


def test_a_sandbox_file_left_by_a_dead_world_is_never_used(tmp_path, monkeypatch):
    """A checkout that once ran the demo must not silently target what is left of it."""
    monkeypatch.delenv("ROTATOR_ENV", raising=False)
    _sandbox_file(tmp_path, _dead_pid())
    with pytest.raises(InputError, match="no longer running.*choose one with --env"):
        load_environment(tmp_path)
    monkeypatch.setenv("ROTATOR_ENV", "sandbox")
    with pytest.raises(InputError, match="world process is gone"):
        load_environment(tmp_path)


def test_production_is_chosen_by_name_even_while_the_sandbox_runs(tmp_path, monkeypatch):
    _sandbox_file(tmp_path, os.getpid())
    monkeypatch.setenv("ROTATOR_ENV", "production")
    env = load_environment(tmp_path)
    assert env.name == "production" and env.aws.endpoint_url is None


def test_a_named_file_is_read(tmp_path, monkeypatch):
    path = tmp_path / "staging.yaml"
    path.write_text(yaml.safe_dump({"name": "staging", "state": {"backend": "file"}}))
    monkeypatch.setenv("ROTATOR_ENV", str(path))
    assert load_environment(tmp_path).name == "staging"


def test_the_env_flag_comes_before_the_group(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTATOR_ENV", raising=False)
    missing = str(tmp_path / "missing.yaml")
    result = CliRunner().invoke(main, ["--env", missing, "prd-cn", "--ami", "ami-0123abcd",
                                       "--dry-run"],
                           env={"ROTATOR_ROOT": str(ROOT), "ROTATOR_ENV": None})
    assert result.exit_code == 2, result.output
    assert "missing.yaml: --env: environment file not found" in result.output
