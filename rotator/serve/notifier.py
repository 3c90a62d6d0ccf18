"""Sends notices through apprise, once per event, retrying failures, never in the way.

For every notice the board's records yield, the notifier claims the notice's key in the
record store (a create-only key: O_EXCL in the file store, cas=0 in Consul) and sends only
when it won the claim, so several controllers send each notice once. A target that fails
is retried with a growing delay, in a thread of its own: a rotation never waits on it, and
its failure is logged with the target's number and kind, never its URL (which carries a
token).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rotator.serve.board import GroupState
from rotator.serve.notices import Notice, pair_notices, rotation_notices

log = logging.getLogger(__name__)

# apprise logs the URLs it loads and posts to at debug level: keep it at warnings
logging.getLogger("apprise").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Target:
    url: str = field(repr=False)
    label: str  # what a log line may say: "webhook target 2 (json)"


def _kind(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


def targets_from(notify_env, group: str) -> list[Target]:
    """The group's own URLs, then everyone's, each once (values of variables included)."""
    def from_vars(names: list[str]) -> list[str]:
        return [u for n in names for u in os.environ.get(n, "").split()]

    urls = [*notify_env.groups.get(group, []), *from_vars(notify_env.groups_env.get(group, [])),
            *notify_env.urls, *from_vars(notify_env.urls_env)]
    unique = list(dict.fromkeys(u.strip() for u in urls if u.strip()))
    return [Target(u, f"target {i} ({_kind(u)})") for i, u in enumerate(unique, 1)]


def apprise_send(target: Target, notice: Notice) -> bool:
    import apprise

    kinds = {"info": apprise.NotifyType.INFO, "success": apprise.NotifyType.SUCCESS,
             "warning": apprise.NotifyType.WARNING, "failure": apprise.NotifyType.FAILURE}
    sender = apprise.Apprise()
    if not sender.add(target.url):
        raise ValueError("not a URL apprise knows")
    return bool(sender.notify(title=notice.title, body=notice.body,
                              notify_type=kinds.get(notice.level, apprise.NotifyType.INFO)))


@dataclass
class Delivery:
    notice: Notice
    target: Target
    attempts: int = 0


class Notifier:
    def __init__(self, store, targets: Callable[[str], list[Target]], *, owner: str,
                 dashboard_url: str | None = None, max_age: float = 900.0,
                 send: Callable[[Target, Notice], bool] = apprise_send,
                 clock: Callable[[], float] = time.time,
                 retry_first: float = 5.0, retry_max: float = 300.0, max_attempts: int = 10,
                 on_outcome: Callable[[Notice, str], None] = lambda n, outcome: None):
        self.store = store
        self.targets = targets
        self.owner = owner
        self.dashboard_url = dashboard_url
        self.max_age = max_age
        self.send = send
        self.clock = clock
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.max_attempts = max_attempts
        self.on_outcome = on_outcome
        self._seen: set[str] = set()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ deciding

    def on_change(self, state: GroupState) -> None:
        """Board subscriber: claim and queue what the group's records newly say."""
        if not self.targets(state.name):
            return
        notices: list[Notice] = []
        if state.record and state.record.get("kind", "rotation") == "rotation":
            notices += rotation_notices(state.record, self.dashboard_url)
        now = self.clock()
        for event in state.history[-10:]:  # failovers live in history only
            if now - float(event.get("updated_at") or event.get("created_at") or 0) \
                    <= self.max_age:
                notices += pair_notices(event, self.dashboard_url)
        for notice in notices:
            self.consider(notice)

    def consider(self, notice: Notice) -> bool:
        """Queue the notice if it is new, recent (or holds now) and this process claims it."""
        if notice.key in self._seen:
            return False
        self._seen.add(notice.key)
        if not notice.current and self.clock() - notice.at > self.max_age:
            return False  # an old event seen for the first time (a controller just started)
        targets = self.targets(notice.group)
        if not targets:
            return False
        claimed = self.store.claim(notice.claim_group, notice.key,
                                   {"by": self.owner, "at": self.clock(), "kind": notice.kind})
        if not claimed:
            return False
        log.info("%s: notice %s (%s) to %d target(s)", notice.group, notice.kind, notice.key,
                 len(targets))
        for target in targets:
            self._push(0.0, Delivery(notice, target))
        return True

    # ------------------------------------------------------------------ sending

    def _push(self, delay: float, delivery: Delivery) -> None:
        with self._cond:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._seq), delivery))
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._send_loop, name="notifier", daemon=True)
        self._thread.start()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._queue
                                          or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._stop:
                    return
                _, _, delivery = heapq.heappop(self._queue)
            self._deliver(delivery)

    def _deliver(self, d: Delivery) -> None:
        d.attempts += 1
        try:
            ok, why = self.send(d.target, d.notice), "refused or unreachable"
        except Exception as exc:  # a broken target must not stop the others
            ok, why = False, type(exc).__name__ + (": " + str(exc) if isinstance(exc, ValueError)
                                                   else "")
        if ok:
            log.info("%s: notice %s sent to %s", d.notice.group, d.notice.kind, d.target.label)
            self.on_outcome(d.notice, "sent")
            return
        if d.attempts >= self.max_attempts:
            log.error("%s: notice %s to %s failed %d times (%s): given up", d.notice.group,
                      d.notice.kind, d.target.label, d.attempts, why)
            self.on_outcome(d.notice, "given-up")
            return
        delay = min(self.retry_max, self.retry_first * 2 ** (d.attempts - 1))
        log.warning("%s: notice %s to %s failed (%s, attempt %d): retrying in %.0fs",
                    d.notice.group, d.notice.kind, d.target.label, why, d.attempts, delay)
        self.on_outcome(d.notice, "failed")
        self._push(delay, d)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
