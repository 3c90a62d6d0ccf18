"""What a user sees: the live view, plain lines, JSON events, and the CLI's exit codes."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from rotator.cli import exit_code_of, main
from rotator.model import RotationStatus
from rotator.render import JsonRenderer, LiveRenderer, PlainRenderer, summary
from tests.engine_harness import ROOT, engine, policy
from tests.fakes import FakeWorld, MemoryStore


def rotate_with(renderer):
    world = FakeWorld()
    world.seed_live("blue")
    store = MemoryStore(world)
    eng = engine(world, store, policy("canary"))
    eng.on_event = renderer
    return eng.start("ami-0123abcd")


def test_plain_lines_one_per_event():
    out = io.StringIO()
    record = rotate_with(PlainRenderer(out))
    lines = out.getvalue().splitlines()
    assert record.status is RotationStatus.WAITING
    assert any("step-done [shift 5% to green]" in line and "green 5%" in line for line in lines)
    assert "waiting [approval]" in lines[-1]


def test_json_events_then_summary():
    out = io.StringIO()
    record = rotate_with(JsonRenderer(out))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[0]["event"] == "started"
    assert {"event", "rotation", "group", "status", "step", "message", "weights"} <= set(events[-1])
    final = summary(record)
    assert final["status"] == "waiting" and final["weights"] == {"green": 25, "blue": 75}


def test_live_view_shows_steps_weights_and_the_gate_waited_on():
    buf = io.StringIO()
    live = LiveRenderer(Console(file=buf, force_terminal=True, width=120))
    try:
        rotate_with(live)
    finally:
        live.close()
    text = buf.getvalue()
    assert "shift 25% to green" in text and "approval" in text
    assert "blue 75% / green 25%" in text
    assert "rotate promote prd-cn" in text


@pytest.mark.parametrize("status,code", [(RotationStatus.DONE, 0), (RotationStatus.ROLLED_BACK, 1),
                                         (RotationStatus.ROLLBACK_FAILED, 5), (RotationStatus.WAITING, 4),
                                         (RotationStatus.PAUSED, 4)])
def test_exit_codes(status, code):
    record = rotate_with(lambda e: None)
    record.status = status
    assert exit_code_of(record) == code


def test_help_lists_the_verbs():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for verb in ("plan", "status", "resume", "abort", "promote", "history", "validate",
                 "failover", "failback", "sandbox"):
        assert verb in result.output


@pytest.mark.parametrize("args,message", [
    (["prd-cn", "--ami", "foo"], "invalid AMI id 'foo'"),
    (["prd-mars", "--ami", "ami-0123abcd"], "unknown group 'prd-mars'"),
    (["prd-cn", "--ami", "ami-0123abcd", "--policy", "yolo"], "unknown policy 'yolo'"),
    (["plan", "prd-cn", "--ami", "ami-12"], "8 or 17 hex digits"),
])
def test_bad_usage_exits_2_before_touching_anything(args, message, tmp_path):
    env = {"ROTATOR_ROOT": str(ROOT), "ROTATOR_ENV": str(tmp_path / "missing.yaml")}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_history_names_who_promoted_and_aborted():
    from rotator.status import operators

    record = {"operator_actions": [
        {"action": "promote", "step": "approval", "by": "early@bird", "via": "rotate",
         "at": 0.0, "outcome": "ignored: 'approval' is not the approval waiting now"},
        {"action": "promote", "step": "approval", "by": "ana@bastion", "via": "rotate",
         "at": 3723.0, "outcome": "approved approval"},
        {"action": "abort", "by": "bo@laptop", "via": "dashboard", "at": 7200.0,
         "outcome": "too late: the new slot already serves all traffic; retiring the old one"},
    ]}
    assert operators(record) == ("promoted by ana@bastion (rotate) 01:02:03; "
                                 "abort came too late, asked by bo@laptop (dashboard) 02:00:00")
