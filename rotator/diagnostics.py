"""Where a process is when it seems stuck: ``kill -USR1 PID`` prints every thread's stack."""

from __future__ import annotations

import faulthandler
import io
import signal
import sys
from typing import TextIO


def dump_stacks_on(signum: int = signal.SIGUSR1, file: TextIO | None = None) -> None:
    """On ``signum``, print every thread's stack to ``file`` (stderr); the process carries on."""
    try:
        faulthandler.register(signum, file=file or sys.stderr, all_threads=True)
    except (AttributeError, ValueError, io.UnsupportedOperation):
        pass  # an output without a file descriptor (a captured stderr): nowhere to print
