"""Who is running rotator: shown to whoever is refused a lock."""

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
