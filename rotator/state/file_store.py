"""Rotation records and the group lock in a local folder (the default store).

Layout under the state folder::

    <group>/current.json           the latest rotation's record
    <group>/history/<id>.json      every rotation (and failover) ever run
    <group>/control.json           abort / promote requests from other shells
    <group>/lock                   holder, host, pid, start time; renewed while held
    <group>/claims/<key>           who first claimed a one-time duty (a notification)

Writes go to a temporary file that is renamed over the target (atomic on
POSIX). The lock is a file created whole by a hard link that fails if it exists; a
heartbeat thread renews it. Reading the lock then renewing, releasing or breaking it is
done under an flock of ``<group>/.lock.guard``, so that none of them acts on a lock
another has just replaced.
A lock whose holder died on this host, or that was not renewed within its
TTL, is stale: it is reported, and broken only when asked (``--break-lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rotator.identity import holder as _holder
from rotator.identity import holder_dead
from rotator.ports import LockHeld, LockInfo
from rotator.state.control import with_request

LOCK_TTL = 60.0
HEARTBEAT = 10.0


@contextlib.contextmanager
def _written_aside(path: Path, data: dict[str, Any]) -> Iterator[str]:
    """``data`` as JSON in a temporary file beside ``path``, on disk; the temporary name is
    gone afterwards (moved into place by the caller, or removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    with _written_aside(path, data) as tmp:
        os.replace(tmp, path)


def _create_whole(path: Path, data: dict[str, Any]) -> None:
    """Create ``path`` with ``data``, FileExistsError when it exists: hard-linked into place
    once written, so that no reader ever sees the file empty or half written."""
    with _written_aside(path, data) as tmp:
        os.link(tmp, path)


@contextlib.contextmanager
def _exclusive(guard: Path) -> Iterator[None]:
    """Held by one process (and one thread) at a time: a read-check-write of a shared file
    under it is not interleaved with another's."""
    guard.parent.mkdir(parents=True, exist_ok=True)
    with open(guard, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _guard_of(lock: Path) -> Path:
    return lock.with_name(f".{lock.name}.guard")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def claim_file_name(key: str) -> str:
    """A claim key as one file name: anything but letters, digits, dot, dash becomes '_'."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", key)[:200]


class FileLock:
    def __init__(self, path: Path, info: LockInfo, heartbeat: float):
        self.path = path
        self.info = info
        self._lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, args=(heartbeat,), name=f"lock-{info.group}", daemon=True
        )
        self._thread.start()

    def _renew(self, every: float) -> None:
        while not self._stop.wait(every):
            with _exclusive(_guard_of(self.path)):  # not over a lock broken meanwhile
                current = _read(self.path)
                if not current or current.get("token") != self._token():
                    self._lost = True
                    return
                current["renewed_at"] = time.time()
                _atomic_write(self.path, current)

    def _token(self) -> str:
        return f"{self.info.host}:{self.info.pid}:{self.info.started_at}"

    def lost(self) -> bool:
        return self._lost

    def release(self) -> None:
        self._stop.set()
        # under the guard: a renewal under way would write the file back after the unlink,
        # leaving a lock held by a process about to exit
        with _exclusive(_guard_of(self.path)):
            current = _read(self.path)
            if current and current.get("token") == self._token():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()


class FileRecordStore:
    def __init__(self, root: Path, *, lock_ttl: float = LOCK_TTL, heartbeat: float = HEARTBEAT,
                 holder: str | None = None):
        self.root = Path(root)
        self.lock_ttl = lock_ttl
        self.heartbeat = heartbeat
        self.holder = holder

    def _dir(self, group: str) -> Path:
        return self.root / group

    # records ---------------------------------------------------------------

    def load(self, group: str) -> dict[str, Any] | None:
        return _read(self._dir(group) / "current.json")

    def save(self, record: dict[str, Any]) -> None:
        d = self._dir(record["group"])
        _atomic_write(d / "history" / f"{record['id']}.json", record)
        if record.get("kind", "rotation") == "rotation":
            _atomic_write(d / "current.json", record)

    def history(self, group: str) -> list[dict[str, Any]]:
        folder = self._dir(group) / "history"
        records = [r for p in folder.glob("*.json") if (r := _read(p))]
        return sorted(records, key=lambda r: r.get("created_at", 0))

    # control channel ----------------------------------------------------------

    def read_control(self, group: str) -> dict[str, Any]:
        return _read(self._dir(group) / "control.json") or {}

    def write_control(self, group: str, rotation_id: str,
                      request: dict[str, Any]) -> dict[str, Any]:
        d = self._dir(group)
        d.mkdir(parents=True, exist_ok=True)
        with _exclusive(d / ".control.lock"):  # two shells asking at once are both kept
            control = with_request(self.read_control(group), rotation_id, request)
            _atomic_write(d / "control.json", control)
            return control

    # one-time duties --------------------------------------------------------------

    def claim(self, group: str, key: str, value: dict[str, Any]) -> bool:
        """Create ``key`` for ``group`` unless it exists: True for the one caller that did."""
        path = self._dir(group) / "claims" / claim_file_name(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _create_whole(path, value)
        except FileExistsError:
            return False
        return True

    # lock ---------------------------------------------------------------------

    def _lock_path(self, group: str) -> Path:
        return self._dir(group) / "lock"

    def lock_info(self, group: str) -> LockInfo | None:
        data = _read(self._lock_path(group))
        if not data:
            return None
        return LockInfo(
            group=group, holder=data["holder"], pid=data["pid"], host=data["host"],
            started_at=data["started_at"], rotation_id=data.get("rotation_id", ""),
        )

    def lock_stale(self, group: str) -> bool:
        """Whether the group's lock is held by nobody any more (holder dead, or not renewed
        within the TTL): what `rotate resume` would break."""
        data = _read(self._lock_path(group))
        return data is not None and self._stale(data)

    def _stale(self, data: dict[str, Any]) -> bool:
        if holder_dead(data["host"], data["pid"]):
            return True
        return time.time() - data.get("renewed_at", data["started_at"]) > self.lock_ttl

    def acquire(self, group: str, rotation_id: str, break_stale: bool = False) -> FileLock:
        path = self._lock_path(group)
        path.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        info = LockInfo(group=group, holder=self.holder or _holder(), pid=os.getpid(),
                        host=socket.gethostname(), started_at=now, rotation_id=rotation_id)
        data = {"holder": info.holder, "pid": info.pid, "host": info.host,
                "started_at": now, "renewed_at": now, "rotation_id": rotation_id,
                "token": f"{info.host}:{info.pid}:{now}"}
        for _ in range(2):
            try:
                _create_whole(path, data)
            except FileExistsError:
                with _exclusive(_guard_of(path)):  # the lock read is the lock broken
                    held = _read(path)
                    if held is None:
                        continue  # released between our two calls
                    stale = self._stale(held)
                    if stale and break_stale:
                        path.unlink()
                        continue
                raise LockHeld(self.lock_info(group) or info, stale=stale) from None
            return FileLock(path, info, self.heartbeat)
        raise LockHeld(self.lock_info(group) or info)
