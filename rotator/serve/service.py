"""One `rotate serve` process: the board, the controller, the notifier, the live views and
the charts, put together and started or stopped as one."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rotator.config import Project
from rotator.environment import Environment
from rotator.serve.board import Board, GroupState
from rotator.serve.controller import (
    Controller,
    Runner,
    TakeoverRules,
    engine_runner,
    store_holder_alive,
)
from rotator.serve.feed import ChangeFeed, change_feed
from rotator.serve.hub import EventHub
from rotator.serve.live import LiveView, LiveViews
from rotator.serve.metrics import RotatorCollector, build_registry
from rotator.serve.notifier import Notifier, Target, apprise_send, targets_from
from rotator.serve.secrets import Redactor, credential_values
from rotator.serve.traffic_chart import TrafficCharts
from rotator.serve.views import group_detail, group_summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8686
    token: str | None = None
    public_url: str | None = None  # the dashboard's address in notices
    resume_paused: bool | None = None  # None: the environment's serve.resume_paused
    live_every: float = 15.0
    sweep_every: float = 5.0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.public_url or f"http://{host}:{self.port}/"


def read_live(project: Project) -> Callable[[str], dict[str, Any]]:
    from rotator.status import group_status

    return lambda group: group_status(project, group)


class Service:
    def __init__(self, project: Project, env: Environment, store, settings: ServeSettings, *,
                 feed: ChangeFeed | None = None, runner: Runner | None = None,
                 send: Callable[[Target, Any], bool] = apprise_send,
                 live_reader: Callable[[str], dict[str, Any]] | None = None,
                 charts: TrafficCharts | None = None, groups: list[str] | None = None):
        self.project = project
        self.env = env
        self.store = store
        self.settings = settings
        self.groups = groups if groups is not None else project.group_names()
        self.owner = f"serve@{socket.gethostname()}:{os.getpid()}"
        self.redactor = Redactor([settings.token] if settings.token else [])
        self.redactor.add(*credential_values(project, env))
        for group in self.groups:
            for target in targets_from(env.notify, group):
                self.redactor.add_url(target.url)
        self.hub = EventHub()
        self.board = Board(store, self.groups, feed or change_feed(store, self.groups))
        self.live = LiveViews(self.groups, live_reader or read_live(project),
                              every=settings.live_every, on_update=self._live_updated)
        rules = TakeoverRules(
            resume_orphaned=env.serve.resume_orphaned,
            resume_paused=(env.serve.resume_paused if settings.resume_paused is None
                           else settings.resume_paused))
        self.controller = Controller(self.board, runner or engine_runner(project), rules,
                                     holder_alive=store_holder_alive(store),
                                     sweep_every=settings.sweep_every)
        self.charts = charts or TrafficCharts(
            project, lambda g: list(self.board.state(g).history), period=env.serve.chart_period)
        collector = RotatorCollector(self.board.states, self.live.view,
                                     self.controller.holding,
                                     lambda: self.controller.last_sweep)
        self.registry, self.notices_sent = build_registry(collector)
        self.notifier = Notifier(
            store, lambda g: targets_from(env.notify, g), owner=self.owner,
            dashboard_url=env.notify.dashboard_url or settings.url,
            max_age=env.notify.max_age, send=send,
            on_outcome=lambda n, outcome: self.notices_sent.labels(n.kind, outcome).inc())
        self.board.subscribe(self._board_changed)

    # ------------------------------------------------------------------ views

    def controller_note(self, group: str) -> dict[str, Any] | None:
        take = self.controller.active.get(group)
        if take is None:
            return None
        return {"by": self.owner, "reason": take.reason, "acting": take.acting,
                "rotation_id": take.rotation_id, "since": take.started_at}

    def summary(self, group: str) -> dict[str, Any]:
        return self.redactor.scrub(group_summary(self.board.state(group), self.live.view(group),
                                                 self.controller_note(group)))

    def detail(self, group: str) -> dict[str, Any]:
        return self.redactor.scrub(group_detail(self.board.state(group), self.live.view(group),
                                                self.controller_note(group)))

    # ------------------------------------------------------------------ changes

    def _board_changed(self, state: GroupState) -> None:
        self.notifier.on_change(state)
        self.live.refresh_soon(state.name)  # a step may have moved weights or slots
        self.hub.publish("group", self.detail(state.name))

    def _live_updated(self, view: LiveView) -> None:
        self.hub.publish("group", self.detail(view.group))

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self.notifier.start()
        self.board.start()
        self.live.start()
        self.controller.start()
        log.info("serving %d group(s) at %s (store %s)", len(self.groups), self.settings.url,
                 type(self.store).__name__)

    def stop(self) -> None:
        self.controller.stop()
        self.live.stop()
        self.board.stop()
        self.notifier.stop()
        self.hub.close()
