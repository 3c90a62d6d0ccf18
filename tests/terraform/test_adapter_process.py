"""The adapter's process handling, with a stand-in `terraform` script that records what
it is given: per-command environment, workspace selection, init caching, redaction."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from rotator.errors import InputError
from rotator.infra.terraform import TerraformInfrastructure, TerraformRun
from rotator.infra.tf_errors import TerraformApplyError

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"

# Answers like Terraform 1.x; logs argv + a few env vars per call to $LOG.
STUB = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "env": {k: os.environ.get(k) for k in (
        "TF_WORKSPACE", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "TF_DATA_DIR", "TF_IN_AUTOMATION", "CHECKPOINT_DISABLE")}}) + "\n")
state = os.environ["STUB_STATE"]
def resources():
    return json.load(open(state)) if os.path.exists(state) else {}
cmd = args[0]
OUTPUTS = {
    "marathon_url": {"value": "http://10.0.0.1:8080"}, "elb_name": {"value": "g-blue"},
    "elb_dns_name": {"value": "g-blue.elb"}, "instance_ids": {"value": {"proxy": ["i-1"]}},
    "ami": {"value": "ami-12345678"}}
if cmd == "init":
    print("Terraform has been successfully initialized!")
elif cmd == "workspace" and args[1] == "list":
    print("* default\n" + "".join(f"  {w}\n" for w in resources()))
elif cmd == "workspace" and args[1] == "new":
    r = resources(); r.setdefault(args[-1], []); json.dump(r, open(state, "w"))
elif cmd == "state":
    print("\n".join(resources().get(os.environ.get("TF_WORKSPACE", "default"), [])))
elif cmd == "output":
    print(json.dumps(OUTPUTS))
elif cmd == "apply":
    if os.environ.get("STUB_FAIL"):
        r = resources(); r[os.environ["TF_WORKSPACE"]] = ["module.slot.aws_vpc.slot"]; json.dump(r, open(state, "w"))
        print(json.dumps({"type": "diagnostic", "diagnostic": {"severity": "error",
              "summary": "creating EC2 Instance: AuthFailure for key " + os.environ["AWS_SECRET_ACCESS_KEY"],
              "address": "module.slot.aws_instance.node[\"proxy-0\"]"}}))
        sys.exit(1)
    r = resources(); r[os.environ["TF_WORKSPACE"]] = ["module.slot.aws_vpc.slot"]; json.dump(r, open(state, "w"))
    print(json.dumps({"type": "outputs", "outputs": OUTPUTS}))
else:
    sys.exit(3)
"""


@pytest.fixture
def stub(tmp_path, monkeypatch):
    binary = tmp_path / "terraform"
    binary.write_text(STUB)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    group = tmp_path / "group"
    group.mkdir()
    (group / "main.tf").write_text("# stand-in\n")

    def make(backend=None, **env):
        settings = TerraformRun(
            terraform=str(binary),
            env={"STUB_LOG": str(log), "STUB_STATE": str(tmp_path / "state.json"),
                 "AWS_SECRET_ACCESS_KEY": SECRET, **env},
            backend_config=backend or {"bucket": "b", "key": "k"},
            data_dir=tmp_path / "data",
        )
        return TerraformInfrastructure(group, group="g", settings=settings)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    monkeypatch.setenv("TF_WORKSPACE", "typo")  # an inherited selection must not leak in
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-of-another-partition")
    monkeypatch.setenv("AWS_PROFILE", "global")
    return make, calls


def test_env_goes_to_the_process_only_and_workspace_is_per_slot(stub):
    make, calls = stub
    infra = make()
    out = infra.provision("blue", "ami-12345678")
    assert out.elb_name == "g-blue" and out.instances == {"proxy": ["i-1"]}
    assert "AWS_SECRET_ACCESS_KEY" not in os.environ or os.environ["AWS_SECRET_ACCESS_KEY"] != SECRET
    applies = [c for c in calls() if c["args"][0] == "apply"]
    assert applies[0]["env"]["TF_WORKSPACE"] == "blue"
    assert applies[0]["env"]["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert applies[0]["env"]["CHECKPOINT_DISABLE"] == "1"
    # The shell's AWS identity never reaches a group's Terraform.
    assert all(c["env"]["AWS_SESSION_TOKEN"] is None and c["env"]["AWS_PROFILE"] is None for c in calls())
    assert "-auto-approve" in applies[0]["args"] and "-input=false" in applies[0]["args"]
    assert not any(a.startswith("-var=") for a in applies[0]["args"])  # variables go in a file
    # Workspace commands run without TF_WORKSPACE (it would override the selection).
    assert all(c["env"]["TF_WORKSPACE"] is None for c in calls() if c["args"][0] in ("workspace", "init"))
    assert [c["args"][:2] for c in calls() if c["args"][0] == "workspace"] == [
        ["workspace", "list"], ["workspace", "new"]]
    assert infra.slots_with_resources() == ["blue"]


def test_only_blue_and_green_are_slots(stub):
    make, calls = stub
    with pytest.raises(InputError, match="blue, green"):
        make().provision("bleu", "ami-12345678")
    assert not any(c["args"][0] == "apply" for c in calls())


def test_init_runs_once_and_again_when_the_backend_changes(stub):
    make, calls = stub
    make().provision("blue", "ami-12345678")
    make().read_outputs("blue")  # a new adapter, same folder and backend: no init
    inits = [c for c in calls() if c["args"][0] == "init"]
    assert len(inits) == 1
    assert "-backend-config=bucket=b" in inits[0]["args"] and "-reconfigure" in inits[0]["args"]
    make(backend={"bucket": "other", "key": "k"}).read_outputs("blue")
    inits = [c for c in calls() if c["args"][0] == "init"]
    assert len(inits) == 2 and "-backend-config=bucket=other" in inits[1]["args"]


def test_secrets_never_reach_the_error(stub):
    make, _ = stub
    infra = make(STUB_FAIL="1")
    with pytest.raises(TerraformApplyError) as err:
        infra.provision("green", "ami-12345678")
    assert SECRET not in str(err.value)
    assert all(SECRET not in d.summary + d.detail for d in err.value.diagnostics)
    assert "AuthFailure" in str(err.value)
    assert err.value.created == ["module.slot.aws_vpc.slot"]


def test_missing_group_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="group folder not found"):
        TerraformInfrastructure(Path(tmp_path / "nope"), group="x", settings=TerraformRun())
