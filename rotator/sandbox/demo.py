"""`make demo`: bring the sandbox up, bake an AMI, rotate prd-cn onto it, show the result.

Each step runs the real `rotate` command, exactly as a user would type it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _rotate() -> str:
    here = Path(sys.executable).parent / "rotate"
    return str(here) if here.exists() else (shutil.which("rotate") or "rotate")


def _run(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [_rotate(), *args]
    print(f"\n$ rotate {' '.join(args)}", flush=True)
    return subprocess.run(cmd, text=True, capture_output=capture, check=False)


def main() -> int:
    started = time.monotonic()
    os.environ["ROTATOR_ENV"] = "sandbox"  # the demo always runs in the project's sandbox
    from rotator.config import Project
    from rotator.sandbox.control import Sandbox

    box = Sandbox(Project.find())
    if box.info() is None or not box.seed():
        up = _run("sandbox", "up")
        if up.returncode != 0:
            return up.returncode
    else:
        print("the sandbox is already up (`rotate sandbox status` shows it)")
    bake = _run("sandbox", "bake", "--group", "prd-cn", capture=True)
    if bake.returncode != 0:
        sys.stderr.write(bake.stderr)
        return bake.returncode
    ami = bake.stdout.strip()
    print(ami)
    rotation_started = time.monotonic()
    rotation = _run("prd-cn", "--ami", ami, "--yes")
    took = time.monotonic() - rotation_started
    _run("status", "prd-cn")
    print(f"\nrotation took {took:.0f}s; the whole demo {time.monotonic() - started:.0f}s.")
    print("The sandbox keeps running: try `.venv/bin/rotate sandbox status`, "
          "`.venv/bin/rotate history prd-cn`,\n"
          f"`.venv/bin/rotate plan prd-cn --ami {ami} --policy canary`. "
          "Stop it with `.venv/bin/rotate sandbox down` (or `make sandbox-down`).")
    return rotation.returncode


if __name__ == "__main__":
    sys.exit(main())
