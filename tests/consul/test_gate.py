"""The Consul health gate against the emulator, over real HTTP with py-consul."""

from __future__ import annotations

import time

import consul
import pytest

from rotator.health.consul import ConsulHealthSource
from rotator.ports import GateSpec, ServiceRequirement, Verdict
from rotator.sandbox.consul import ConsulCore, ConsulServer
from tests.consul.conftest import (
    DC,
    OTHER_DC,
    ManualClock,
    free_port,
    in_background,
    wait_until,
)

TAG = "prd-cn-green"


def register(client: consul.Consul, service: str, n: int, tag: str = TAG, passing: bool = False) -> None:
    for i in range(n):
        client.agent.service.register(service, service_id=f"{service}-{tag}-{i}", tags=[tag],
                                      address=f"10.0.1.{i + 10}", port=31000 + i,
                                      check=consul.Check.ttl("60s"))
        if passing:
            client.agent.check.ttl_pass(f"service:{service}-{tag}-{i}")


def poll_until(watch, verdict: Verdict, timeout: float = 5.0):
    end = time.monotonic() + timeout
    while True:
        result = watch.poll(0.5)
        if result.verdict == verdict or time.monotonic() > end:
            return result


@pytest.fixture
def source(server: ConsulServer) -> ConsulHealthSource:
    return ConsulHealthSource(server.address, DC, block_seconds=5)


@pytest.fixture
def timed(server: ConsulServer):
    """(clock, source): a gate whose waits run on a clock the test moves: a poll with nothing
    to report returns only once the test has moved the clock past its wait."""
    clock = ManualClock()
    return clock, ConsulHealthSource(server.address, DC, block_seconds=5, clock=clock)


def blocked(thread, seconds: float = 0.5) -> bool:
    """The poll running on ``thread`` has not returned (its wait has not run out on the
    test's clock); it would have returned at once if it did not wait."""
    thread.join(timeout=seconds)
    return thread.is_alive()


def test_inconclusive_without_data_then_successful(source, client) -> None:
    with source.watch([ServiceRequirement("api", 2, TAG)], GateSpec(no_data_seconds=30)) as watch:
        first = watch.poll(1.0)
        assert first.verdict == Verdict.INCONCLUSIVE
        assert first.reason == f"api: no instance registered in {TAG}"
        register(client, "api", 2)
        starting = watch.poll(1.0)
        assert starting.verdict == Verdict.INCONCLUSIVE and "0/2 passing" in starting.reason
        client.agent.check.ttl_pass(f"service:api-{TAG}-0")
        client.agent.check.ttl_pass(f"service:api-{TAG}-1")
        result = poll_until(watch, Verdict.SUCCESSFUL)
        assert result.verdict == Verdict.SUCCESSFUL
        assert result.reason == f"api: 2/2 passing in {TAG}" and result.passing == {"api": 2}


def test_other_slot_instances_do_not_count(source, client) -> None:
    register(client, "api", 3, tag="prd-cn-blue", passing=True)
    register(client, "api", 1, tag=TAG, passing=True)
    with source.watch([ServiceRequirement("api", 2, TAG)], GateSpec(no_data_seconds=30)) as watch:
        result = watch.poll(1.0)
        assert result.passing == {"api": 1} and result.verdict != Verdict.SUCCESSFUL


def test_failed_within_a_second_of_a_check_going_critical(source, client, core: ConsulCore) -> None:
    register(client, "api", 3, passing=True)
    register(client, "web", 1, passing=True)
    reqs = [ServiceRequirement("api", 3, TAG), ServiceRequirement("web", 1, TAG)]
    with source.watch(reqs, GateSpec()) as watch:
        assert watch.poll(1.0).verdict == Verdict.SUCCESSFUL
        wait_until(lambda: core.notifier.blocked == 2)  # each service's query is held
        poller, results = in_background(lambda: watch.poll(60.0))
        core.dc(DC).update_check(f"service:api-{TAG}-1", "critical", "connection refused")
        poller.join(timeout=10)
        assert results[0].verdict == Verdict.FAILED
        # the held query answered the change itself: not found at its next turn, 5 s later
        assert core.notifier.timeouts == 0
        assert results[0].reason.startswith(f"api: 2/3 passing in {TAG}")
        assert "connection refused" in results[0].reason


def test_poll_blocks_until_wait_when_nothing_changes(timed, client) -> None:
    clock, source = timed
    register(client, "api", 1, passing=True)
    with source.watch([ServiceRequirement("api", 1, TAG)], GateSpec()) as watch:
        watch.poll(1.0)  # the first answer: at once
        poller, results = in_background(lambda: watch.poll(0.4))
        clock.advance(0.39)
        assert blocked(poller)
        clock.advance(0.02)
        poller.join(timeout=10)
        assert results[0].verdict == Verdict.SUCCESSFUL


def test_thresholds_count_evaluations(source, client) -> None:
    register(client, "api", 1, passing=True)
    spec = GateSpec(consecutive_successes=2, failure_threshold=2)
    with source.watch([ServiceRequirement("api", 1, TAG)], spec) as watch:
        first = watch.poll(1.0)
        assert first.verdict == Verdict.INCONCLUSIVE and "success 1/2" in first.reason
        assert watch.poll(0.05).verdict == Verdict.SUCCESSFUL
        client.agent.check.ttl_fail(f"service:api-{TAG}-0")
        once = watch.poll(1.0)
        assert once.verdict == Verdict.INCONCLUSIVE and "failure 1/2" in once.reason
        assert watch.poll(0.05).verdict == Verdict.FAILED


def test_no_data_period_is_bounded(timed) -> None:
    clock, source = timed
    with source.watch([ServiceRequirement("ghost", 1, TAG)], GateSpec(no_data_seconds=0.5)) as watch:
        assert watch.poll(0.1).verdict == Verdict.INCONCLUSIVE
        poller, results = in_background(lambda: watch.poll(5.0))
        assert blocked(poller)
        clock.advance(0.5)  # the no-data period runs out, 4.5 s before the poll's wait would
        poller.join(timeout=10)
        assert results[0].verdict == Verdict.FAILED
        assert "no instance registered" in results[0].reason


def test_no_data_period_starts_at_the_first_poll_not_at_creation(timed) -> None:
    clock, source = timed
    with source.watch([ServiceRequirement("ghost", 1, TAG)], GateSpec(no_data_seconds=0.5)) as watch:
        clock.advance(0.8)  # started early (while Marathon deploys), asked later
        assert watch.poll(0.1).verdict == Verdict.INCONCLUSIVE
        clock.advance(0.5)
        assert watch.poll(5.0).verdict == Verdict.FAILED


def test_deregistered_healthy_instance_is_a_failure(source, client) -> None:
    register(client, "api", 2, passing=True)
    with source.watch([ServiceRequirement("api", 2, TAG)], GateSpec()) as watch:
        assert watch.poll(1.0).verdict == Verdict.SUCCESSFUL
        client.agent.service.deregister(f"api-{TAG}-0")
        result = watch.poll(2.0)
        assert result.verdict == Verdict.FAILED and "deregistered" in result.reason


def test_unreachable_consul_is_error_never_success() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    source = ConsulHealthSource(address, DC, request_timeout=1, error_backoff=0.05)
    with source.watch([ServiceRequirement("api", 0, TAG)], GateSpec(no_data_seconds=0.1)) as watch:
        for _ in range(3):
            result = watch.poll(0.3)
            assert result.verdict == Verdict.ERROR
            assert result.reason.startswith(f"consul at {address} unreachable")


def test_consul_going_away_mid_watch_gives_error(client) -> None:
    core = ConsulCore([DC])
    srv = ConsulServer(core).start()
    try:
        register(consul.Consul(port=srv.port, dc=DC), "api", 1, passing=True)
        source = ConsulHealthSource(srv.address, DC, block_seconds=1, request_timeout=1,
                                    error_backoff=0.05)
        with source.watch([ServiceRequirement("api", 1, TAG)], GateSpec()) as watch:
            assert watch.poll(1.0).verdict == Verdict.SUCCESSFUL
            srv.stop()
            assert poll_until(watch, Verdict.ERROR).verdict == Verdict.ERROR
    finally:
        core.close()


def test_unknown_datacenter_and_bad_token_are_errors(server) -> None:
    with ConsulHealthSource(server.address, "dc-nowhere").watch(
            [ServiceRequirement("api", 1, TAG)], GateSpec()) as watch:
        result = watch.poll(1.0)
        assert result.verdict == Verdict.ERROR and "No path to datacenter" in result.reason
    core = ConsulCore([DC], acl_token="right-token")
    try:
        with ConsulServer(core) as srv:
            source = ConsulHealthSource(srv.address, DC, token="wrong-token")
            assert "wrong-token" not in repr(source)
            with source.watch([ServiceRequirement("api", 1, TAG)], GateSpec()) as watch:
                result = watch.poll(1.0)
                assert result.verdict == Verdict.ERROR and "403" in result.reason
                assert "wrong-token" not in result.reason
    finally:
        core.close()


def test_datacenters_are_separate(server, core: ConsulCore) -> None:
    # Agent endpoints are local to the agent's datacenter: register in the other one in-process.
    core.dc(OTHER_DC).register_service({"Name": "api", "ID": "api-sg", "Tags": [TAG],
                                        "Check": {"TTL": "30s", "Status": "passing"}})
    other = ConsulHealthSource(server.address, OTHER_DC)
    with other.watch([ServiceRequirement("api", 1, TAG)], GateSpec()) as watch:
        assert watch.poll(1.0).verdict == Verdict.SUCCESSFUL
    local = ConsulHealthSource(server.address, DC)
    with local.watch([ServiceRequirement("api", 1, TAG)], GateSpec()) as watch:
        assert watch.poll(0.5).verdict == Verdict.INCONCLUSIVE


def test_in_process_registrator_style_updates_wake_the_gate(timed, core: ConsulCore) -> None:
    clock, source = timed
    dc = core.dc(DC)
    with source.watch([ServiceRequirement("api", 1, TAG)], GateSpec()) as watch:
        assert watch.poll(0.5).verdict == Verdict.INCONCLUSIVE
        wait_until(lambda: core.notifier.blocked == 1)
        poller, results = in_background(lambda: watch.poll(3.0))  # its clock never moves
        dc.register_service({"Name": "api", "ID": "api-task-1", "Tags": [TAG],
                             "Check": {"TTL": "30s", "Status": "passing"}})
        poller.join(timeout=10)
        assert results[0].verdict == Verdict.SUCCESSFUL
        assert core.notifier.timeouts == 0  # the held query woke on the registration


def test_passing_now_counts_each_requirement_in_its_slot(source, client, core: ConsulCore) -> None:
    register(client, "api", 3, passing=True)
    register(client, "api", 2, tag="prd-cn-blue", passing=True)
    register(client, "web", 2, passing=True)
    core.dc(DC).update_check(f"service:web-{TAG}-1", "critical", "connection refused")
    reqs = [ServiceRequirement("api", 3, TAG), ServiceRequirement("web", 2, TAG),
            ServiceRequirement("worker", 1, TAG), ServiceRequirement("api", 2, "prd-cn-blue")]
    assert source.passing_now(reqs) == [3, 1, 0, 2]


def test_passing_now_is_none_when_consul_cannot_answer(server) -> None:
    gone = ConsulHealthSource(f"http://127.0.0.1:{free_port()}", DC, request_timeout=1)
    assert gone.passing_now([ServiceRequirement("api", 1, TAG)]) is None
    elsewhere = ConsulHealthSource(server.address, "dc-nowhere")
    assert elsewhere.passing_now([ServiceRequirement("api", 1, TAG)]) is None
