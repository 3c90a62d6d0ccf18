"""The controller: carries on every unfinished rotation that no `rotate` process holds.

A rotation waiting for approval after a non-interactive run (CI exits 4 there), one whose
process died (its lock gone: expired in Consul, or its holder dead on this host), and, when
the environment allows it, one paused for an operator, are taken over the way
`rotate resume` takes them over: by acquiring the group's lock and running the engine,
interactively, so that an approval waits here, its gates keep judging the candidate, and
`rotate promote/abort` (or the dashboard's buttons) reach it through the control channel.

The group's lock decides which controller acts when several watch the same Consul record
store: the others are refused it and leave the rotation alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rotator.errors import RotatorError
from rotator.identity import holder_dead
from rotator.model import RotationStatus
from rotator.ports import LockHeld, LockInfo
from rotator.serve.board import Board, GroupState

log = logging.getLogger(__name__)


class Handover(BaseException):
    """Raised inside a controller's engine when the controller stops: the engine ends where
    it waits, its record says where it was, its lock is released for another controller.
    Not an Exception: the engine must not take it for a failure of the rotation."""


@dataclass(frozen=True)
class TakeoverRules:
    resume_orphaned: bool = True  # running or rolling back, nobody holds it
    resume_paused: bool = False  # stopped for an operator


def lock_holder_alive(lock: LockInfo) -> bool:
    """Whether a lock's holder may still be acting (only a holder of this host is known dead)."""
    return not holder_dead(lock.host, lock.pid)


def store_holder_alive(store) -> Callable[[LockInfo], bool]:
    """The store's own verdict where it has one: a file lock not renewed within its TTL is
    as dead as its holder (a Consul lock simply disappears when its session expires)."""
    stale = getattr(store, "lock_stale", None)
    if stale is None:
        return lock_holder_alive
    return lambda lock: not stale(lock.group)


def why_take_over(state: GroupState, rules: TakeoverRules,
                  holder_alive: Callable[[LockInfo], bool] = lock_holder_alive) -> str | None:
    """Why this controller should carry the group's rotation on now; None to leave it."""
    rec = state.record
    if state.error or rec is None or rec.get("kind", "rotation") != "rotation":
        return None
    status = RotationStatus(rec["status"])
    if status.terminal or (state.lock is not None and holder_alive(state.lock)):
        return None
    abort_asked = any(r.get("action") == "abort" for r in state.pending_requests())
    if status is RotationStatus.WAITING:
        return "waiting for approval"
    if status in (RotationStatus.RUNNING, RotationStatus.ROLLING_BACK):
        if rules.resume_orphaned or abort_asked:
            return f"{status.value} without a process (its lock is gone)"
        return None
    if status is RotationStatus.PAUSED:
        if abort_asked:
            return "paused, and an abort was asked"
        return "paused" if rules.resume_paused else None
    return None  # failed: the rollback itself failed, a human decides (`rotate resume`)


Runner = Callable[[str, Callable[[float], None], Callable[[Any], None]], Any]


@dataclass
class Takeover:
    group: str
    rotation_id: str
    reason: str
    started_at: float
    thread: threading.Thread | None = None
    acting: bool = False  # the engine holds the lock and runs


class Controller:
    """Decides on every board change and every ``sweep_every`` seconds; runs each takeover
    in a thread of its own (``run(group, sleep, on_event)`` runs the engine to its end)."""

    def __init__(self, board: Board, run: Runner, rules: TakeoverRules = TakeoverRules(), *,
                 holder_alive: Callable[[LockInfo], bool] = lock_holder_alive,
                 sweep_every: float = 5.0, clock: Callable[[], float] = time.time,
                 name: str = "controller"):
        self.board = board
        self.run = run
        self.rules = rules
        self.holder_alive = holder_alive
        self.sweep_every = sweep_every
        self.clock = clock
        self.name = name
        self.active: dict[str, Takeover] = {}
        # rotation ids it will not try again, with why (a policy edited since the start...)
        self.declined: dict[str, str] = {}
        self.acted: list[tuple[str, str]] = []  # (group, rotation id) it ran, for the record
        self.last_sweep = 0.0
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        board.subscribe(lambda state: self._wake.set())

    # ------------------------------------------------------------------ loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sweep()
            self._wake.wait(self.sweep_every)
            self._wake.clear()

    def sweep(self) -> None:
        self.last_sweep = self.clock()
        for state in self.board.states():
            if self._stop.is_set():
                return
            self.consider(state)

    def consider(self, state: GroupState) -> None:
        reason = why_take_over(state, self.rules, self.holder_alive)
        rid = (state.record or {}).get("id", "")
        with self._mutex:
            if reason is None or state.name in self.active or rid in self.declined:
                return
            take = Takeover(state.name, rid, reason, self.clock())
            take.thread = threading.Thread(target=self._carry_on, args=(take,),
                                           name=f"{self.name}-{state.name}", daemon=True)
            self.active[state.name] = take
        log.info("%s: taking over rotation %s (%s)", state.name, rid, reason)
        take.thread.start()

    # ------------------------------------------------------------------ one takeover

    def _carry_on(self, take: Takeover) -> None:
        def on_event(event: Any) -> None:
            if not take.acting:
                take.acting = True
                with self._mutex:
                    self.acted.append((take.group, take.rotation_id))
        try:
            record = self.run(take.group, self._sleep, on_event)
            status = getattr(getattr(record, "status", None), "value", record)
            log.info("%s: rotation %s is %s", take.group, take.rotation_id, status)
        except Handover:
            log.info("%s: handed rotation %s over (the controller stops)", take.group,
                     take.rotation_id)
        except LockHeld as exc:
            log.info("%s: left to its holder: %s", take.group, exc)
        except RotatorError as exc:
            if take.acting:  # lost its lock mid-way: whoever holds it now carries on
                log.warning("%s: stopped: %s", take.group, exc)
            else:
                log.warning("%s: will not carry rotation %s on: %s", take.group,
                            take.rotation_id, exc)
                with self._mutex:
                    self.declined[take.rotation_id] = str(exc)
        except Exception:
            log.exception("%s: carrying rotation %s on failed", take.group, take.rotation_id)
            with self._mutex:
                self.declined[take.rotation_id] = "unexpected error (see the log)"
        finally:
            with self._mutex:
                self.active.pop(take.group, None)
            self._wake.set()

    def _sleep(self, seconds: float) -> None:
        """The engine's sleep in this controller: ends with a handover when it stops."""
        if self._stop.wait(max(0.0, seconds)):
            raise Handover()

    def holding(self) -> dict[str, Takeover]:
        with self._mutex:
            return {g: t for g, t in self.active.items() if t.acting}

    # ------------------------------------------------------------------ stop

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking over; hand over what runs here (each at its next wait)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._mutex:
            threads = [t.thread for t in self.active.values() if t.thread is not None]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))


def engine_runner(project) -> Runner:
    """Runs a group's unfinished rotation as `rotate resume` does, interactive, in this
    process, with the controller's sleep (so it can hand over) and an event callback."""
    def run(group: str, sleep: Callable[[float], None], on_event: Callable[[Any], None]):
        from rotator.session import Session

        session = Session.open_current(project, group)
        engine = session.engine(on_event=on_event, interactive=True, sleep=sleep)
        return engine.resume(break_lock=False)
    return run
