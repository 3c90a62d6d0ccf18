"""Pure pieces: notices, metric readings and views from records, secrets kept out, the chart."""

from __future__ import annotations

from rotator.serve.metrics import detection, metric_verdicts
from rotator.serve.notices import pair_notices, rotation_notices
from rotator.serve.secrets import Redactor
from rotator.serve.traffic_chart import combine, metric_queries, render_svg
from rotator.serve.views import rotation_view


def rec(**kw):
    base = {"id": "r1", "group": "prd-cn", "status": "running", "stable": "blue",
            "candidate": "green", "ami": "ami-0123abcd", "policy": "canary", "created_at": 100.0,
            "updated_at": 200.0, "steps": [], "cursor": 0, "weights": {}}
    return {**base, **kw}


def test_time_to_detect_and_to_roll_back_come_from_the_record():
    r = rec(status="rolled-back", finished_at=190.0, steps=[
        {"name": "verify green health", "kind": "verify", "status": "done",
         "started_at": 110.0, "finished_at": 120.0},
        {"name": "shift 5% to green", "kind": "shift", "status": "done", "started_at": 130.0,
         "finished_at": 131.0},
        {"name": "approval", "kind": "approve", "status": "failed", "started_at": 140.0,
         "finished_at": 170.0, "reason": "health gate failed: web 0/2"}])
    assert detection(r) == (40.0, 20.0)
    aborted = {**r, "operator_actions": [{"action": "abort", "outcome": "rolling back"}]}
    assert detection(aborted) is None  # an operator decided, not rotator


def test_metric_verdicts_are_read_whatever_the_shape():
    engine_shape = {"failures": 1, "evaluated_until": 300.0,
                    "last": {"verdict": "failed", "failures": ["error ratio 12% > 5%"]},
                    "history": [{"verdict": "successful"}, {"verdict": "failed"}],
                    "unwatched": {"verdict": "successful"}}
    assert metric_verdicts(rec(analysis=engine_shape)) == [
        ("canary", "successful"), ("canary", "failed"), ("unwatched-wait", "successful")]
    assert metric_verdicts(rec(analysis=[{"metric": "error_ratio", "verdict": "failed"}])) == [
        ("error_ratio", "failed")]
    assert metric_verdicts(rec(analysis={"results": [{"name": "p99", "verdict": "passed"}]})) \
        == [("p99", "passed")]
    assert metric_verdicts(rec(analysis={"p50": {"verdict": "passed"}, "p99": "failed"})) == [
        ("p50", "passed"), ("p99", "failed")]
    assert metric_verdicts(rec(analysis="nonsense")) == []


def test_fields_a_newer_engine_adds_are_shown_as_they_are():
    view = rotation_view(rec(analysis={"error_ratio": {"verdict": "passed"}},
                             quiet_window={"waited": 30}))
    assert view["analysis"] == {"error_ratio": {"verdict": "passed"}}
    assert view["extra"] == {"quiet_window": {"waited": 30}}


def test_notice_keys_name_their_event_for_good():
    waiting = rec(status="waiting", cursor=1, steps=[
        {"name": "shift 5% to green", "kind": "shift", "status": "done"},
        {"name": "approval", "kind": "approve", "status": "running", "started_at": 150.0}])
    keys = [n.key for n in rotation_notices(waiting, "http://d/")]
    assert keys == ["r1.started", "r1.waiting.1"]
    assert rotation_notices(waiting)[1].current
    failover = {"kind": "failover", "status": "done", "event_id": "e1", "from": "a", "to": "b",
                "group": "b", "created_at": 1.0}
    (notice,) = pair_notices(failover)
    assert (notice.claim_group, notice.key) == ("a", "e1.failover")  # one claim for both groups


def test_secrets_and_url_credentials_are_masked():
    r = Redactor(["tok-123456"])
    r.add_url("slack://T0001/B0002/SeCrEtXyZ/#releases")
    out = r.scrub({"a": "x tok-123456 y", "b": ["https://user:pw@host/x", "SeCrEtXyZ"],
                   "c": float("inf")})
    assert out == {"a": "x *** y", "b": ["https://***@host/x", "***"], "c": None}


def test_the_chart_sums_both_layers_per_slot():
    queries, meaning = metric_queries({"blue": {"prd-cn-blue"}},
                                      {"load_balancer": "app/prd-cn-edge/1",
                                       "target_groups": {"blue": "targetgroup/prd-cn-blue/2"}},
                                      10)
    assert len(queries) == 4
    ids = {m: q for q, m in meaning.items()}
    results = [{"Id": ids[("blue", "requests")], "Timestamps": [0.0, 10.0], "Values": [3, 4]}]
    series = combine(results, meaning, 0.0, 10, 3)
    assert series["blue"]["requests"] == [3.0, 4.0, 0.0]
    svg = render_svg({"group": "<prd>", "period": 10, "start": 0, "end": 30, "slots": series})
    assert svg.startswith("<svg") and "&lt;prd&gt;" in svg and "<prd>" not in svg


def test_log_lines_are_masked_whatever_logger_writes_them():
    import io
    import logging

    from rotator.serve.secrets import ScrubbingFilter

    redactor = Redactor()
    redactor.add_url("json://127.0.0.1:9/hooks/hook-secret-77")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubbingFilter(redactor))
    logger = logging.getLogger("apprise.test")
    logger.addHandler(handler)
    try:
        logger.warning("POST URL: %s", "http://127.0.0.1:9/hooks/hook-secret-77")
    finally:
        logger.removeHandler(handler)
    assert "hook-secret-77" not in stream.getvalue() and "***" in stream.getvalue()


def test_rotate_serve_beyond_loopback_without_a_token_is_refused(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from rotator.cli import main
    from rotator.serve import read_token

    monkeypatch.delenv("ROTATOR_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["serve", "--listen", "0.0.0.0:8686"])
    assert result.exit_code == 2
    assert "give a token (ROTATOR_SERVE_TOKEN or --token-file)" in result.output
    result = CliRunner().invoke(main, ["serve", "--listen", "nonsense"])
    assert result.exit_code == 2 and "expected HOST:PORT" in result.output
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    assert read_token(str(token)) == "s3cret-token"
    token.write_text("")
    result = CliRunner().invoke(main, ["serve", "--listen", "0.0.0.0:8686",
                                       "--token-file", str(token)])
    assert result.exit_code == 2 and "the token file is empty" in result.output
