"""Two controllers on one Consul record store (the emulator): the group's lock decides which
one acts; the other never acts on the same rotation, and takes over when the first stops."""

from __future__ import annotations

import threading

import pytest

from rotator.sandbox.consul import ConsulCore, ConsulServer
from rotator.serve.actions import submit
from rotator.serve.board import Board
from rotator.serve.controller import Controller
from rotator.serve.feed import ConsulChangeFeed
from rotator.state.consul_store import ConsulRecordStore
from tests.engine_harness import GROUP, policy
from tests.fakes import FakeWorld
from tests.promises import violations
from tests.serve.harness import fake_engine, fake_runner, wait_for

DC = "cn-north-1"


@pytest.fixture
def consul():
    core = ConsulCore([DC])
    with ConsulServer(core) as server:
        yield server
    core.close()


def consul_store(server) -> ConsulRecordStore:
    """One per controller, as on machines of their own."""
    return ConsulRecordStore(server.address, DC, lock_delay=0.2)


class ActingLog:
    """Who acts on which rotation, and how many act at once (must never exceed one)."""

    def __init__(self):
        self.mutex = threading.Lock()
        self.now: dict[str, int] = {}
        self.most = 0
        self.acts: list[tuple[str, str]] = []

    def runner(self, name, world, store, pol):
        inner = fake_runner(world, store, pol)

        def run(group, sleep, on_event):
            acting = []

            def seen(event):
                if not acting:
                    acting.append(event.record.id)
                    with self.mutex:
                        rid = event.record.id
                        self.now[rid] = self.now.get(rid, 0) + 1
                        self.most = max(self.most, self.now[rid])
                        self.acts.append((name, rid))
                on_event(event)
            try:
                return inner(group, sleep, seen)
            finally:
                if acting:
                    with self.mutex:
                        self.now[acting[0]] -= 1
        return run


def controller(name, server, log, world, pol):
    store = consul_store(server)
    board = Board(store, [GROUP.name], ConsulChangeFeed(store), sweep_every=0.3)
    ctl = Controller(board, log.runner(name, world, store, pol), sweep_every=0.3, name=name)
    board.start()
    ctl.start()
    return board, ctl


def test_one_controller_acts_and_the_other_takes_over_when_it_stops(consul):
    world = FakeWorld()
    world.seed_live("blue")
    pol = policy("canary")
    setup = consul_store(consul)
    record = fake_engine(world, setup, pol).start("ami-0123abcd")
    assert record.status.value == "waiting"

    log = ActingLog()
    a = controller("a", consul, log, world, pol)
    b = controller("b", consul, log, world, pol)
    running = {"a": a, "b": b}
    try:
        wait_for(lambda: log.acts, timeout=30)
        first = log.acts[0][0]
        other = "b" if first == "a" else "a"
        # the other one sees the same waiting rotation, sweeps again and again, and is refused
        swept = running[other][1].last_sweep
        wait_for(lambda: running[other][1].last_sweep > swept + 1.0, timeout=30)
        assert log.acts == [(first, record.id)]
        assert running[other][1].acted == []
        assert setup.lock_info(GROUP.name).rotation_id == record.id

        board, ctl = running.pop(first)
        ctl.stop(timeout=15)  # hands over at its next wait
        board.stop()
        wait_for(lambda: len(log.acts) == 2, timeout=30)
        assert log.acts[1] == (other, record.id)

        submit(setup, GROUP.name, "promote", by="ops@laptop")
        wait_for(lambda: setup.load(GROUP.name)["status"] == "done", timeout=30)
        assert log.most == 1  # never two at once
        assert world.weights == {"green": 100} and violations(world) == []
    finally:
        for board, ctl in running.values():
            ctl.stop(timeout=15)
            board.stop()
