"""Fixtures: an emulated Marathon served over real HTTP on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from rotator.apps.marathon_compat import MarathonClient
from rotator.sandbox.marathon import MarathonEmulator, ServerThread, create_app

STEP = 0.05


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


@pytest.fixture
def marathon(serve: Callable[..., Served]) -> Served:
    return serve()
