"""`kill -USR1` on a rotator process prints where every thread is, and the process goes on."""

from __future__ import annotations

import signal
import subprocess
import sys

PROGRAM = """
import sys, threading
from rotator.diagnostics import dump_stacks_on

def waiting_for_the_lock(event):
    event.wait()

dump_stacks_on()
gate = threading.Event()
threading.Thread(target=waiting_for_the_lock, args=(gate,), daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
print("carried on", flush=True)
"""


def test_sigusr1_prints_every_threads_stack_and_the_process_carries_on():
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGUSR1)
        dump = []
        while not all(any(frame in line for line in dump)
                      for frame in ("waiting_for_the_lock", "<module>")):
            line = proc.stderr.readline()  # written by the signal handler, then read here
            assert line, "".join(dump)
            dump.append(line)
        out, err = proc.communicate("\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out == "carried on\n", err
    assert sum(line.startswith(("Thread 0x", "Current thread 0x")) for line in dump) >= 2
