"""Rotation records and the per-group lock on Consul KV.

Layout under ``<prefix>/<group>/``:

* ``record``          the current rotation record (JSON), written with check-and-set;
* ``history/<id>``    the latest version of every rotation, for ``history()``;
* ``lock``            held through a session (TTL, renewed by a heartbeat);
                      its value names the holder, shown to whoever is refused;
* ``control``         operator requests (abort, promotions), apart from the record;
* ``live``            what serves now (slot, AMI, weights) for confd-style templates;
* ``claims/<key>``    who first claimed a one-time duty (a notification), created with cas=0.

The lock's session uses behaviour ``delete``: when a holder dies its session
expires and the key, holder details included, disappears after lock-delay.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import consul
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    wait_fixed,
    wait_random,
)

from rotator.errors import RotatorError, TransientError
from rotator.health.consul_client import ConsulEndpoint, consul_client
from rotator.ports import LockHeld, LockInfo
from rotator.retries import stop_at
from rotator.state.control import with_request
from rotator.tls import DEFAULT_TLS, TlsSettings


class RecordConflict(RotatorError):
    """Another writer changed the group's record since this process last read or wrote it."""

    exit_code = 3


class ConsulStoreError(TransientError):
    """Consul could not be asked (unreachable, 5xx, refused token)."""


class ConsulLock:
    """A held group lock. ``lost()`` turns True as soon as the session cannot be trusted."""

    def __init__(self, store: ConsulRecordStore, group: str, key: str, session_id: str,
                 asked_at: float):
        self._store = store
        self.group = group
        self.key = key
        self.session_id = session_id
        self._clock = store.clock
        # When the session was last asked for (created or renewed), not when Consul answered:
        # its TTL runs from Consul's side, so a slow answer must not make ours look younger.
        self._last_renewed = asked_at
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                        name=f"consul-lock-{group}")
        self._thread.start()

    def _heartbeat(self) -> None:
        client = self._store.client()
        interval = self._store.renew_every
        while not self._stop.wait(interval):
            asked = self._clock()
            try:
                client.session.renew(self.session_id)
            except consul.NotFound:
                self._lost.set()  # the session expired or was destroyed: the lock is gone
                return
            except Exception:  # transient: retry until the TTL runs out
                if self._clock() - self._last_renewed >= self._store.session_ttl:
                    self._lost.set()
                    return
                continue
            self._last_renewed = asked

    def lost(self) -> bool:
        if self._lost.is_set():
            return True
        # A stalled heartbeat is as bad as a failed one.
        if self._clock() - self._last_renewed >= self._store.session_ttl:
            self._lost.set()
        return self._lost.is_set()

    def release(self) -> None:
        """Unlock, remove the holder details, end the session (no lock-delay for the next one)."""
        self._stop.set()
        self._thread.join(timeout=5)
        client = self._store.client()
        try:
            if client.kv.put(self.key, "", release=self.session_id):
                index, entry = client.kv.get(self.key)
                if entry is not None and not entry.get("Session"):
                    client.kv.delete(self.key, cas=entry["ModifyIndex"])
        except consul.ConsulException:
            pass  # the session is gone already; destroying it below is still right
        try:
            client.session.destroy(self.session_id)
        except Exception as exc:
            raise ConsulStoreError(f"could not end the lock session of {self.group!r} "
                                   f"at {self._store.address}: {type(exc).__name__}") from None
        finally:
            self._lost.set()


class ConsulRecordStore:
    """``RecordStore`` on Consul KV. The token travels as a header and is never logged."""

    def __init__(
        self,
        address: str,
        datacenter: str | None = None,
        token: str | None = None,
        *,
        tls: TlsSettings = DEFAULT_TLS,
        prefix: str = "rotator",
        session_ttl: int = 15,
        lock_delay: float = 15.0,
        renew_every: float | None = None,
        cas_attempts: int = 20,
        request_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not 10 <= session_ttl <= 86400:
            raise ValueError(f"session_ttl must be 10-86400 seconds (Consul's bounds), "
                             f"not {session_ttl}")
        self._endpoint = ConsulEndpoint(address, datacenter, token, tls)
        self.address = self._endpoint.url
        self.datacenter = datacenter
        self.prefix = prefix.strip("/")
        self.session_ttl = int(session_ttl)
        self.lock_delay = lock_delay
        self.renew_every = renew_every or self.session_ttl / 3
        self.cas_attempts = cas_attempts
        self.request_timeout = request_timeout
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self._indexes: dict[str, int] = {}  # group -> ModifyIndex of the record we last saw
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"ConsulRecordStore({self.address!r}, prefix={self.prefix!r})"

    def client(self) -> consul.Consul:
        return consul_client(self._endpoint, self.request_timeout)

    def _key(self, group: str, *rest: str) -> str:
        return "/".join([self.prefix, group, *rest])

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except consul.ACLPermissionDenied:
            raise ConsulStoreError(f"consul at {self.address} refused to {what} (403: check the token)") from None
        except consul.ConsulException as exc:
            raise ConsulStoreError(f"consul at {self.address} failed to {what}: {str(exc)[:200]}") from None
        except OSError as exc:  # requests' errors derive from OSError
            raise ConsulStoreError(f"consul at {self.address} unreachable ({what}): "
                                   f"{type(exc).__name__}") from None

    # ------------------------------------------------------------------ records

    def load(self, group: str) -> dict[str, Any] | None:
        _, entry = self._call("read a record", lambda: self.client().kv.get(self._key(group, "record")))
        with self._mutex:
            if entry is None:
                self._indexes[group] = 0
                return None
            self._indexes[group] = entry["ModifyIndex"]
        return json.loads(entry["Value"] or b"null")

    def save(self, record: dict[str, Any]) -> None:
        group, rotation_id = record.get("group"), record.get("id")
        if not group or not rotation_id:
            raise ValueError("a rotation record needs 'id' and 'group'")
        client = self.client()
        body = json.dumps(record, sort_keys=True)
        if record.get("kind", "rotation") != "rotation":  # a failover: history only
            self._call("write history", lambda: client.kv.put(
                self._key(group, "history", str(rotation_id)), body))
            return
        key = self._key(group, "record")
        with self._mutex:
            expected = self._indexes.get(group)
        if expected is None:  # first write from this process: learn the current index
            _, entry = self._call("read a record", lambda: client.kv.get(key))
            expected = entry["ModifyIndex"] if entry else 0
        ok = self._call("write a record", lambda: client.kv.put(key, body, cas=expected))
        if not ok:
            raise RecordConflict(
                f"the rotation record of group {group!r} was changed by another writer "
                f"since this process read it; not overwriting it (re-read with `rotate status`)")
        _, entry = self._call("read a record", lambda: client.kv.get(key))
        with self._mutex:
            self._indexes[group] = entry["ModifyIndex"] if entry else 0
        self._call("write history", lambda: client.kv.put(
            self._key(group, "history", str(rotation_id)), body))

    def history(self, group: str) -> list[dict[str, Any]]:
        _, entries = self._call("read history", lambda: self.client().kv.get(
            self._key(group, "history") + "/", recurse=True))
        entries = sorted(entries or [], key=lambda e: e["CreateIndex"])
        return [json.loads(e["Value"]) for e in entries if e.get("Value")]

    def read_control(self, group: str) -> dict[str, Any]:
        _, entry = self._call("read control", lambda: self.client().kv.get(self._key(group, "control")))
        return json.loads(entry["Value"]) if entry and entry.get("Value") else {}

    def write_control(self, group: str, rotation_id: str,
                      request: dict[str, Any]) -> dict[str, Any]:
        """Read-modify-write with cas, retried: two operators asking at once are both kept."""
        client = self.client()
        key = self._key(group, "control")

        def attempt() -> dict[str, Any] | None:
            _, entry = self._call("read control", lambda: client.kv.get(key))
            current = json.loads(entry["Value"]) if entry and entry.get("Value") else {}
            control = with_request(current, rotation_id, request)
            body = json.dumps(control, sort_keys=True)
            cas = entry["ModifyIndex"] if entry else 0
            written = self._call("write control", lambda: client.kv.put(key, body, cas=cas))
            return control if written else None  # another writer came first: read again

        def gave_up(state: RetryCallState) -> None:
            raise ConsulStoreError(f"consul at {self.address}: the control key of {group!r} "
                                   f"kept changing under {state.attempt_number} attempts")

        return Retrying(retry=retry_if_result(lambda control: control is None),
                        stop=stop_after_attempt(self.cas_attempts),
                        wait=wait_random(0, 0.05), sleep=self.sleep,
                        retry_error_callback=gave_up)(attempt)

    def publish_live(self, group: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, sort_keys=True)
        self._call("publish the live slot", lambda: self.client().kv.put(self._key(group, "live"), body))

    def claim(self, group: str, key: str, value: dict[str, Any]) -> bool:
        """Create ``key`` for ``group`` unless it exists (cas=0): True for the one caller
        that did, whichever process or machine it runs on."""
        body = json.dumps(value, sort_keys=True)
        return bool(self._call("claim a duty", lambda: self.client().kv.put(
            self._key(group, "claims", key), body, cas=0)))

    # ------------------------------------------------------------------ lock

    def lock_info(self, group: str) -> LockInfo | None:
        _, entry = self._call("read the lock", lambda: self.client().kv.get(self._key(group, "lock")))
        if entry is None or not entry.get("Session"):
            return None
        return _lock_info(group, entry)

    def acquire(self, group: str, rotation_id: str, break_stale: bool = False) -> ConsulLock:
        """Take the group's lock or raise LockHeld naming the holder.

        A Consul lock cannot go stale (the holder's session expires), so
        ``break_stale`` has nothing to break; a key left in lock-delay by a
        dead holder is waited out (at most ``lock_delay`` seconds).
        """
        client = self.client()
        key = self._key(group, "lock")
        host = socket.gethostname()
        info = {"group": group, "holder": f"{_user()}@{host}", "pid": os.getpid(), "host": host,
                "started_at": self.wall_clock(), "rotation_id": rotation_id}
        asked_at = self.clock()
        session_id = self._call("create a lock session", lambda: client.session.create(
            name=f"rotator-lock-{group}", ttl=self.session_ttl, lock_delay=self.lock_delay,
            behavior="delete"))

        def attempt() -> ConsulLock | None:
            if self._call("take the lock", lambda: client.kv.put(
                    key, json.dumps(info), acquire=session_id)):
                return ConsulLock(self, group, key, session_id, asked_at)
            _, entry = self._call("read the lock", lambda: client.kv.get(key))
            if entry is not None and entry.get("Session"):
                raise LockHeld(_lock_info(group, entry))
            return None  # unheld but refused: the previous holder's lock-delay still runs

        def gave_up(state: RetryCallState) -> None:
            raise LockHeld(LockInfo(group=group, holder="(a holder that just ended)", pid=0,
                                    host="", started_at=self.wall_clock()))

        try:
            return Retrying(retry=retry_if_result(lambda lock: lock is None),
                            stop=stop_at(self.clock() + self.lock_delay + 1.0, self.clock),
                            wait=wait_fixed(min(0.25, self.lock_delay)), sleep=self.sleep,
                            retry_error_callback=gave_up)(attempt)
        except BaseException:
            try:
                client.session.destroy(session_id)
            except Exception:
                pass
            raise


def _lock_info(group: str, entry: dict[str, Any]) -> LockInfo:
    try:
        data = json.loads(entry.get("Value") or b"{}")
    except ValueError:
        data = {}
    return LockInfo(group=group, holder=str(data.get("holder", "unknown")),
                    pid=int(data.get("pid", 0)), host=str(data.get("host", "")),
                    started_at=float(data.get("started_at", 0.0)),
                    rotation_id=str(data.get("rotation_id", "")))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
