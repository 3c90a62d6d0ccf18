"""Terraform runs detached from `rotate`: killing rotate never kills an apply half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rotator.infra.terraform import run_detached

# Stands in for Terraform: prints a line now and then (as `apply -json` does), and on
# SIGINT finishes "gracefully" the way Terraform does, saving before it exits.
FAKE_TF = textwrap.dedent("""
    import signal, sys, time
    done = sys.argv[1]
    def graceful(*_):
        open(done, "w").write("interrupted")
        sys.exit(1)
    signal.signal(signal.SIGINT, graceful)
    for i in range(int(sys.argv[2])):
        print(f'{{"line": {i}}}', flush=True)
        time.sleep(0.1)
    open(done, "w").write("finished")
""")


def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def test_output_and_exit_code_are_returned(tmp_path) -> None:
    script = tmp_path / "tf.py"
    script.write_text(FAKE_TF)
    rc, out, err = run_detached([sys.executable, str(script), str(tmp_path / "done"), "3"],
                                cwd=str(tmp_path), env=dict(os.environ))
    assert rc == 0 and out.splitlines() == ['{"line": 0}', '{"line": 1}', '{"line": 2}']
    assert err == "" and (tmp_path / "done").read_text() == "finished"


def test_a_killed_parent_leaves_terraform_to_finish(tmp_path) -> None:
    script = tmp_path / "tf.py"
    script.write_text(FAKE_TF)
    done = tmp_path / "done"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys
        from rotator.infra.terraform import run_detached
        run_detached([sys.executable, {str(script)!r}, {str(done)!r}, "20"], cwd=".",
                     env=dict(os.environ))
    """)], cwd=tmp_path, start_new_session=True)
    time.sleep(0.8)  # Terraform is half-way, writing output
    os.killpg(parent.pid, signal.SIGKILL)  # rotate and everything in its process group
    parent.wait(5)
    # no SIGKILL from the group, no SIGPIPE on its next line: it completes
    assert wait_for_file(done) == "finished"


def test_an_interrupt_asks_terraform_to_stop_gracefully(tmp_path) -> None:
    script = tmp_path / "tf.py"
    script.write_text(FAKE_TF)
    done = tmp_path / "done"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # xdist ignores it
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # from a thread
        with pytest.raises(KeyboardInterrupt):
            run_detached([sys.executable, str(script), str(done), "100"], cwd=str(tmp_path),
                         env=dict(os.environ))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert done.read_text() == "interrupted"
