"""Who is running rotator (shown to whoever is refused a lock), and whether a process lives."""

from __future__ import annotations

import getpass
import os
import socket


def holder() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs (a lock holder, a provider daemon)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_dead(host: str, pid: int) -> bool:
    """True only when the process is known to be gone: it ran on this host and has exited."""
    return host == socket.gethostname() and not pid_alive(pid)
