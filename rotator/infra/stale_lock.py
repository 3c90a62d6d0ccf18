"""Is a Terraform state lock left behind by a run of ours that died?

Terraform outlives a killed `rotate` (it runs detached, see ``run_detached``) and then
releases its lock itself; but when Terraform dies too (killed, out of memory, a host
reboot), the S3 lock object stays. Resuming must not wait forever for a holder that is
gone. A lock is only ever treated as stale when it was taken by this user on this
host and no Terraform process of this host works on that workspace of this group any
more (same folder or same data directory); anything else is a real holder and is left
alone. rotator's own group lock keeps two rotations of a group from overlapping.
"""

from __future__ import annotations

import os
from pathlib import Path

from rotator.identity import holder


def terraform_runs() -> list[tuple[Path | None, dict[str, str]]]:
    """(working directory, environment) of every Terraform process of this host we may read."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv or not os.path.basename(argv[0]).startswith(b"terraform"):
                continue
            raw = (entry / "environ").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
        env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
        found.append((cwd, env))
    return found


def left_by_dead_run(who: str, workspace: str, folder: Path, data_dir: Path) -> bool:
    if who != holder():
        return False
    folder, data_dir = folder.resolve(), data_dir.resolve()
    for cwd, env in terraform_runs():
        if env.get("TF_WORKSPACE", "default") != workspace:
            continue
        if cwd == folder or Path(env.get("TF_DATA_DIR", "/nonexistent")).resolve() == data_dir:
            return False  # still running: a live holder
    return True
