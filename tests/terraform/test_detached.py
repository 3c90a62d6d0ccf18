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

# Stands in for Terraform: prints its lines (as `apply -json` does); given a gate, it then
# says it is half-way (GATE.waiting) and waits until the test opens the gate (GATE exists)
# before its last line. On SIGINT it finishes "gracefully" the way Terraform does, saving
# before it exits.
FAKE_TF = textwrap.dedent("""
    import os, signal, sys, time
    done, lines = sys.argv[1], int(sys.argv[2])
    gate = sys.argv[3] if len(sys.argv) > 3 else None
    def graceful(*_):
        open(done, "w").write("interrupted")
        sys.exit(1)
    signal.signal(signal.SIGINT, graceful)
    for i in range(lines):
        print(f'{{"line": {i}}}', flush=True)
    if gate:
        open(gate + ".waiting", "w").write("half-way")
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        print('{"line": "last"}', flush=True)
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
    gate = tmp_path / "gate"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys
        from rotator.infra.terraform import run_detached
        run_detached([sys.executable, {str(script)!r}, {str(done)!r}, "10", {str(gate)!r}],
                     cwd=".", env=dict(os.environ))
    """)], cwd=tmp_path, start_new_session=True)
    assert wait_for_file(tmp_path / "gate.waiting") == "half-way"  # Terraform is mid-apply
    os.killpg(parent.pid, signal.SIGKILL)  # rotate and everything in its process group
    parent.wait(5)
    gate.touch()
    # no SIGKILL from the group, no SIGPIPE on its next line: it completes
    assert wait_for_file(done) == "finished"


def test_an_interrupt_asks_terraform_to_stop_gracefully(tmp_path) -> None:
    script = tmp_path / "tf.py"
    script.write_text(FAKE_TF)
    done = tmp_path / "done"
    gate = tmp_path / "gate"  # never opened: Terraform is mid-apply when Ctrl-C comes

    def ctrl_c_once_half_way() -> None:
        wait_for_file(tmp_path / "gate.waiting")
        os.kill(os.getpid(), signal.SIGINT)  # from a thread, as a terminal's would land

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # xdist ignores it
    try:
        threading.Thread(target=ctrl_c_once_half_way, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run_detached([sys.executable, str(script), str(done), "3", str(gate)],
                         cwd=str(tmp_path), env=dict(os.environ))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert done.read_text() == "interrupted"
