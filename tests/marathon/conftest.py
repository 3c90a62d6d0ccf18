"""Fixtures: an emulated Marathon served over real HTTP on a free loopback port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from rotator.apps.marathon_compat import MarathonClient
from rotator.sandbox.marathon import MarathonEmulator, ServerThread, create_app

STEP = 0.05


class ManualClock:
    """The emulator's time, moved only by the test (``advance``): what a step takes is then
    what the test says, however loaded the machine."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Served:
    def __init__(self, emulator: MarathonEmulator, url: str):
        self.emulator = emulator
        self.url = url
        self.client = MarathonClient(url, timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """serve(step_seconds=..., **emulator kwargs) -> Served; stopped after the test."""
    servers: list[ServerThread] = []

    def start(step_seconds: float = STEP, **kwargs: object) -> Served:
        em = MarathonEmulator(step_seconds=step_seconds, **kwargs)  # type: ignore[arg-type]
        server = ServerThread(create_app(em))
        servers.append(server)
        return Served(em, server.start())

    yield start
    for server in servers:
        server.stop()


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll the emulator over HTTP until ``condition()`` holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def marathon(serve: Callable[..., Served]) -> Served:
    return serve()
