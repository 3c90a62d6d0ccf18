"""Output parsing and error mapping on captured Terraform output (no Terraform run)."""

from __future__ import annotations

import json

import pytest

from rotator.errors import InputError
from rotator.infra.terraform import TerraformError, _hcl_value, parse_outputs, parse_plan
from rotator.infra.tf_errors import (
    classify,
    is_resource_address,
    parse_json_diagnostics,
    parse_lock_info,
    parse_text_diagnostics,
    redact,
)

OUTPUT_JSON = json.dumps(
    {
        "ami": {"sensitive": False, "type": "string", "value": "ami-7e2ac046"},
        "elb_dns_name": {"sensitive": False, "type": "string", "value": "prd-cn-blue.elb.example"},
        "elb_name": {"sensitive": False, "type": "string", "value": "prd-cn-blue"},
        "instance_ids": {
            "sensitive": False,
            "type": ["object", {"marathon": ["tuple", ["string"]]}],
            "value": {"marathon": ["i-1"], "mesos-agent": ["i-2", "i-3"], "proxy": []},
        },
        "marathon_url": {"sensitive": False, "type": "string", "value": "http://10.20.10.5:8080"},
    }
)


def test_outputs_are_typed():
    out = parse_outputs(OUTPUT_JSON)
    assert out.marathon_url == "http://10.20.10.5:8080"
    assert out.elb_name == "prd-cn-blue" and out.elb_dns == "prd-cn-blue.elb.example"
    assert out.instances == {"marathon": ["i-1"], "mesos-agent": ["i-2", "i-3"], "proxy": []}
    assert out.ami == "ami-7e2ac046"


def test_missing_output_is_named():
    data = json.loads(OUTPUT_JSON)
    del data["elb_name"]
    with pytest.raises(TerraformError, match="elb_name"):
        parse_outputs(json.dumps(data))


PLAN_LINES = "\n".join(
    json.dumps(m)
    for m in [
        {"@level": "info", "type": "version", "terraform": "1.11.4"},
        {"type": "planned_change", "change": {"resource": {"addr": "module.slot.aws_instance.node[\"proxy-0\"]"}, "action": "replace"}},
        {"type": "planned_change", "change": {"resource": {"addr": "module.slot.aws_elb.slot"}, "action": "update"}},
        {"type": "planned_change", "change": {"resource": {"addr": "module.slot.aws_eip.nat"}, "action": "create"}},
        {"type": "change_summary", "changes": {"add": 2, "change": 1, "import": 0, "remove": 1, "operation": "plan"}},
    ]
)


def test_plan_counts_and_resource_lines():
    plan = parse_plan(PLAN_LINES + "\nnot json\n")
    assert (plan.add, plan.change, plan.destroy) == (2, 1, 1)
    assert plan.resources == [
        '-/+ module.slot.aws_instance.node["proxy-0"]',
        "~ module.slot.aws_elb.slot",
        "+ module.slot.aws_eip.nat",
    ]


SYNTAX_ERROR = """
╷
│ Error: Invalid expression
│
│   on main.tf line 47, in resource "aws_vpc" "broken":
│   47:   cidr_block =
│   48: }
│
│ Expected the start of an expression, but found an invalid expression token.
╵
"""


def test_text_diagnostics_give_file_and_line_and_classify_as_config():
    diags = parse_text_diagnostics(SYNTAX_ERROR)
    assert len(diags) == 1
    d = diags[0]
    assert (d.file, d.line, d.summary) == ("main.tf", 47, "Invalid expression")
    assert "Expected the start of an expression" in d.detail and "47:" not in d.detail
    assert classify(diags).kind == "config"


RUNTIME_ERROR = json.dumps(
    {
        "type": "diagnostic",
        "diagnostic": {
            "severity": "error",
            "summary": "creating EC2 Instance: operation error EC2: RunInstances, https response error StatusCode: 500, InsufficientInstanceCapacity",
            "detail": "",
            "address": 'module.slot.aws_instance.node["proxy-0"]',
            "range": {"filename": "../_modules/slot/instances.tf", "start": {"line": 16}},
        },
    }
)


def test_resource_errors_are_runtime_not_config():
    diags = parse_json_diagnostics(RUNTIME_ERROR)
    assert diags[0].address == 'module.slot.aws_instance.node["proxy-0"]'
    assert diags[0].where() == "../_modules/slot/instances.tf:16"
    assert classify(diags).kind == "runtime"


LOCK_ERROR = """Error: Error acquiring the state lock

Error message: operation error S3: PutObject, https response error StatusCode: 412,
RequestID: , HostID: , api error PreconditionFailed: At least one of the pre-conditions you
specified did not hold
Lock Info:
  ID:        0f7c5a2e-3c8e-7a8c-77e1-2c8d7e5f0b11
  Path:      rotator-tfstate-ap-southeast-1/env:/blue/groups/prd-sg-master/terraform.tfstate
  Operation: OperationTypeApply
  Who:       ops@build-7
  Version:   1.11.4
  Created:   2026-11-26 05:12:44.123 +0000 UTC
  Info:

Terraform acquires a state lock to protect the state from being written
by multiple users at the same time.
"""


def test_lock_error_names_the_holder():
    cls = classify(parse_text_diagnostics(LOCK_ERROR), LOCK_ERROR)
    assert cls.kind == "locked"
    assert cls.lock.id == "0f7c5a2e-3c8e-7a8c-77e1-2c8d7e5f0b11"
    assert cls.lock.who == "ops@build-7"
    assert cls.lock.operation == "OperationTypeApply"
    assert cls.lock.created.startswith("2026-11-26 05:12:44")
    assert parse_lock_info("nothing here").who == ""


def test_redaction_of_known_and_credential_shaped_values():
    text = (
        "error: AccessKeyId AKIAABCDEFGHIJKLMNOP rejected; secret_key = wJalrXUtnFEMI/K7MDENG; "
        "token: abc.def.ghi and the password=hunter22; consul says s3cr3t-token-value"
    )
    out = redact(text, ["s3cr3t-token-value"])
    for secret in ("AKIAABCDEFGHIJKLMNOP", "wJalrXUtnFEMI/K7MDENG", "abc.def.ghi", "hunter22", "s3cr3t-token-value"):
        assert secret not in out
    assert "rejected" in out


def test_resource_addresses():
    assert is_resource_address('module.slot.aws_instance.node["a-0"]')
    assert is_resource_address("module.a_b.data.aws_ami.y[0]")
    assert not is_resource_address("var.ami")
    assert not is_resource_address("module.slot")


def test_backend_config_values_render_as_hcl():
    assert _hcl_value(True) == "true"
    assert _hcl_value({"s3": "http://127.0.0.1:5000"}) == '{s3="http://127.0.0.1:5000"}'
    assert _hcl_value("bucket") == "bucket"


def test_config_error_is_an_input_error_with_file_and_line():
    from rotator.infra.tf_errors import TerraformConfigError

    err = TerraformConfigError("bad", parse_text_diagnostics(SYNTAX_ERROR))
    assert isinstance(err, InputError) and err.exit_code == 2
    assert str(err).startswith("main.tf:47: bad")


def test_variables_marked_secret_are_redacted_from_terraform_output():
    """Terraform prints a variable's value in its diagnostics (e.g. `var.db_password is
    "..."` under a failed validation): a value marked secret in group.yaml never shows."""
    from rotator.infra.terraform import TerraformRun
    from rotator.infra.tf_errors import redact

    settings = TerraformRun(variables={"db_password": "Tr0ub4dor-3", "agent_count": 2},
                                 secret_variables=("db_password",))
    text = 'Error: Invalid value for variable\n  var.db_password is "Tr0ub4dor-3"\n'
    assert "Tr0ub4dor-3" not in redact(text, settings.secrets())
    assert "2" not in settings.secrets()


def test_secret_vars_must_name_variables_of_the_group(tmp_path):
    import pytest
    from pydantic import ValidationError

    from rotator.config import TerraformSettings

    with pytest.raises(ValidationError, match="secret_vars names variables not in vars"):
        TerraformSettings(vars={"agent_count": 2}, secret_vars=["db_password"])
