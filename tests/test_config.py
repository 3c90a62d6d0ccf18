"""Configuration: the shipped files validate; every broken copy is refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rotator.cli import main
from rotator.config import Project, validate_ami
from rotator.durations import parse_duration
from rotator.errors import InputError
from rotator.plan import Roles, plan_rotation

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path) -> Project:
    shutil.copytree(ROOT / "groups", tmp_path / "groups",
                    ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    return Project(tmp_path)


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def validate(project: Project):
    result = CliRunner().invoke(main, ["validate"], env={"ROTATOR_ROOT": str(project.root)})
    return result.exit_code, result.output


def test_every_shipped_group_and_policy_validates():
    groups, policies, errors = Project(ROOT).validate_all()
    assert errors == []
    assert {g.name for g in groups} == {"ops-cn", "prd-cn", "ops-sg", "prd-sg-master",
                                        "prd-sg-slave"}
    assert {p.name for p in policies} == {"blue-green", "canary", "demo", "failover"}
    by_name = {g.name: g for g in groups}
    assert by_name["prd-cn"].aws.partition == "aws-cn"
    assert by_name["prd-sg-master"].peer == "prd-sg-slave"
    assert by_name["prd-sg-slave"].peer == "prd-sg-master"


def test_validate_command_passes_on_the_shipped_files():
    result = CliRunner().invoke(main, ["validate"], env={"ROTATOR_ROOT": str(ROOT)})
    assert result.exit_code == 0, result.output
    assert "5 group(s) and 4 policies are valid" in result.output


def _del(key):
    def change(d):
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        del node[parts[-1]]
    return change


def _set(key, value):
    def change(d):
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


GROUP_CASES = [
    ("missing field", _del("aws.region"), "aws.region", "required field is missing"),
    ("wrong type", _set("traffic.records.0.ttl", "soon"), "traffic.records.0.ttl", "integer"),
    ("unknown policy", _set("default_policy", "yolo"), "default_policy", "unknown policy 'yolo'"),
    ("unknown peer", _set("peer", "prd-mars"), "peer", "unknown peer group 'prd-mars'"),
    ("partition mismatch", _set("aws.partition", "aws"), "aws", "belongs to partition aws-cn"),
    ("unknown field", _set("colour", "blue"), "colour", "unknown field"),
    ("record outside zone", _set("traffic.records.0.name", "www.example.com."),
     "traffic.records.0", "not inside zone"),
    ("global keys in a China group", _set("aws.credentials", {"profile": "global-prd"}),
     "aws.credentials", "each partition needs its own credentials"),
    ("secret in place of a variable name", _set("aws.credentials.access_key_id_env",
                                                "AKIA 1234 secret"),
     "aws.credentials.access_key_id_env", "not an environment variable name"),
]


@pytest.mark.parametrize("label,change,field,message", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_broken_group_yaml_is_refused_naming_file_and_field(project, label, change, field, message):
    path = project.groups_dir / "prd-cn" / "group.yaml"
    edit_yaml(path, change)
    code, output = validate(project)
    assert code == 2, output
    assert "groups/prd-cn/group.yaml" in output
    assert field in output
    assert message in output


POLICY_CASES = [
    ("weight above 100", _set("steps.0.weight", 120), "steps", "less than or equal to 100"),
    ("steps not ending at 100", _set("steps.0.weight", 60), "steps", "must be 100"),
    ("unknown step", _set("steps.0", {"wait": 5}), "steps", "unknown step 'wait'"),
    ("bad duration", _set("retain_stable", "five minutes"), "retain_stable", "duration"),
    ("bad on_failure", _set("on_failure", "panic"), "on_failure", "'rollback' or 'pause'"),
]


@pytest.mark.parametrize("label,change,field,message", POLICY_CASES, ids=[c[0] for c in POLICY_CASES])
def test_broken_policy_is_refused_naming_file_and_field(project, label, change, field, message):
    edit_yaml(project.policies_dir / "blue-green.yaml", change)
    code, output = validate(project)
    assert code == 2, output
    assert "policies/blue-green.yaml" in output
    assert field in output and message in output


def test_decreasing_canary_weights_are_refused(project):
    edit_yaml(project.policies_dir / "canary.yaml", _set("steps.3.weight", 3))
    code, output = validate(project)
    assert code == 2 and "weights must increase" in output


def test_invalid_yaml_names_the_line(project):
    path = project.groups_dir / "prd-cn" / "group.yaml"
    path.write_text(path.read_text().replace("consul:\n", "consul: [\n", 1))
    code, output = validate(project)
    assert code == 2
    assert "groups/prd-cn/group.yaml:" in output and "invalid YAML" in output


def test_line_numbers_point_at_the_bad_value(project):
    path = project.groups_dir / "prd-cn" / "group.yaml"
    text = path.read_text().replace("ttl: 60}", "ttl: later}", 1)
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "ttl: later" in t)
    with pytest.raises(InputError) as exc:
        project.group("prd-cn")
    assert exc.value.line == line


def test_duplicate_group_name_is_refused(project):
    shutil.copytree(project.groups_dir / "prd-cn", project.groups_dir / "prd-cn2")
    code, output = validate(project)
    assert code == 2
    assert "groups/prd-cn2/group.yaml" in output and "name" in output


def test_all_errors_are_listed_at_once(project):
    edit_yaml(project.groups_dir / "prd-cn" / "group.yaml", _del("consul"))
    edit_yaml(project.groups_dir / "ops-cn" / "group.yaml", _set("peer", "nobody"))
    code, output = validate(project)
    assert code == 2
    assert "prd-cn/group.yaml" in output and "ops-cn/group.yaml" in output
    assert "2 error(s)" in output


def test_invalid_app_json_is_refused_naming_the_file(project):
    (project.groups_dir / "prd-cn" / "apps" / "web.json").write_text('{"id": "web", "instances": }')
    code, output = validate(project)
    assert code == 2 and "apps/web.json" in output


def test_unknown_group_lists_the_known_ones(project):
    with pytest.raises(InputError) as exc:
        project.group("prd-mars")
    assert "unknown group 'prd-mars'" in str(exc.value) and "prd-cn" in str(exc.value)


@pytest.mark.parametrize("ami", ["ami-0123abcd", "ami-0123456789abcdef0"])
def test_valid_ami_ids(ami):
    assert validate_ami(ami) == ami


@pytest.mark.parametrize("ami", ["foo", "ami-123", "ami-0123ABCD", "ami-0123abcd0", ""])
def test_invalid_ami_ids(ami):
    with pytest.raises(InputError, match="8 or 17 hex digits"):
        validate_ami(ami)


@pytest.mark.parametrize("text,seconds", [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400),
                                          (12, 12), ("250ms", 0.25)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_planner_expands_blue_green_and_canary_with_compensations():
    project = Project(ROOT)
    group = project.group("prd-cn")
    steps = plan_rotation(group, project.policy("canary"), Roles("blue", "green"))
    assert [s.name for s in steps] == [
        "provision green", "deploy apps to green", "verify green health",
        "shift 5% to green", "pause 10s", "gate 1",
        "shift 25% to green", "pause 10s", "gate 2", "approval",
        "shift 50% to green", "pause 10s", "gate 3",
        "shift 100% to green", "bake 30s", "retire blue: out of traffic", "retire blue: wait until quiet", "retire blue: destroy",
    ]
    shifts = [s for s in steps if s.kind == "shift"]
    assert all(s.compensation == "weights back to blue" for s in shifts)
    assert steps[0].compensation == "destroy green"
    bg = plan_rotation(group, project.policy("blue-green"), Roles("green", "blue"))
    assert [s.kind for s in bg] == ["provision", "deploy", "verify", "shift", "bake",
                                    "retire-traffic", "retire-quiet", "retire-destroy"]


def _app(project: Project, name: str) -> Path:
    return project.groups_dir / "prd-cn" / "apps" / name


def test_an_app_id_defined_in_two_files_is_refused_naming_both(project):
    """Marathon keeps one app per id: the second file would silently lose."""
    import json

    api = json.loads(_app(project, "api.json").read_text())
    _app(project, "api-copy.json").write_text(json.dumps({**api, "id": "/prd/api"}))
    code, output = validate(project)
    assert code == 2 and "api-copy.json" in output and "/id" in output
    assert "app /prd/api is also defined in" in output and "api.json" in output


def test_a_health_check_timeout_not_below_its_interval_is_valid():
    """Marathon 1.6's app health check validator has no timeout < interval rule (it is a
    readiness check rule; mesosphere/marathon, HealthCheck validation): rotator accepts it."""
    from rotator.apps.app_definition import app_problems

    app = {"id": "/prd/api", "healthChecks": [
        {"protocol": "HTTP", "path": "/health", "intervalSeconds": 5, "timeoutSeconds": 20}]}
    assert app_problems(app) == []


def test_credentials_shared_across_partitions_are_refused_at_every_rotation(project, monkeypatch):
    """Not only `rotate validate`: opening a session for a rotation checks it too, by the
    variable names and by the key they hold."""
    from rotator.environment import Environment
    from rotator.session import Session

    cn = project.group("prd-cn")
    edit_yaml(project.groups_dir / "prd-sg-master" / "group.yaml",
              _set("aws.credentials", {"access_key_id_env": "SG_KEY",
                                       "secret_access_key_env": "SG_SECRET"}))
    monkeypatch.setenv("SG_KEY", "AKIAEXAMPLEKEY000001")
    monkeypatch.setenv(cn.aws.credentials.access_key_id_env, "AKIAEXAMPLEKEY000001")
    with pytest.raises(InputError, match="holds the same access key as SG_KEY of prd-sg-master"):
        Session(project, cn, project.policy("blue-green"), Environment())
    monkeypatch.setenv(cn.aws.credentials.access_key_id_env, "AKIAEXAMPLEKEYCHINA1")
    Session(project, cn, project.policy("blue-green"), Environment())  # distinct keys: fine
    edit_yaml(project.groups_dir / "prd-cn" / "group.yaml",
              _set("aws.credentials", {"profile": "shared"}))
    edit_yaml(project.groups_dir / "prd-sg-master" / "group.yaml",
              _set("aws.credentials", {"profile": "shared"}))
    with pytest.raises(InputError, match="profile shared is also used in partition aws"):
        Session(project, project.group("prd-cn"), project.policy("blue-green"), Environment())


def test_a_slot_cidr_overlapping_the_edge_vpc_is_refused(project):
    """The region's edge VPC peers with every slot and routes to each slot's CIDR: AWS refuses
    a peering between overlapping CIDRs (EC2 CreateVpcPeeringConnection: "You cannot create a
    VPC peering connection between VPCs that have matching or overlapping IPv4 CIDR blocks")."""
    shutil.copytree(ROOT / "edge", project.root / "edge")
    edit_yaml(project.groups_dir / "prd-cn" / "group.yaml",
              _set("terraform.vars.slot_cidrs.green", "10.250.128.0/17"))
    edit_yaml(project.groups_dir / "ops-cn" / "group.yaml",
              _set("terraform.vars.slot_cidrs.blue", "10.20.0.0/16"))
    code, output = validate(project)
    assert code == 2, output
    assert "groups/prd-cn/group.yaml: terraform.vars.slot_cidrs.green" in output
    assert "overlaps 10.250.0.0/16 of the edge VPC" in output
    # groups are read in name order: prd-cn blue meets ops-cn blue, which came first
    assert "groups/prd-cn/group.yaml: terraform.vars.slot_cidrs.blue" in output
    assert "overlaps 10.20.0.0/16 of ops-cn blue" in output
