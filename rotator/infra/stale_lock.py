"""Is a Terraform state lock left behind by a run of ours that died?

When a `rotate` process is killed during `terraform apply`, its Terraform dies with it
(or just after) and the S3 lock object stays. Resuming must not wait forever for a holder
that is gone. A lock is only ever treated as stale when it was taken by this user on this
host and no Terraform process of this host works on a workspace of that name any more
(whatever its folder: another checkout of the same group shares the state); anything
else is a real holder and is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from rotator.identity import holder


def _terraform_workspaces() -> list[str]:
    """The workspace of every Terraform process of this host we may read."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv or not os.path.basename(argv[0]).startswith(b"terraform"):
                continue
            raw = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
        found.append(env.get("TF_WORKSPACE", "default"))
    return found


def left_by_dead_run(who: str, workspace: str) -> bool:
    return who == holder() and workspace not in _terraform_workspaces()
