"""The rotation steps a load run lived through, read from the groups' records.

The sandbox's environment file names the record store (``state.path``); each
group keeps its rotations (and failovers) under ``<state>/<group>/history/``.
Step times there are wall-clock seconds, as is the run's start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def state_folder(project_root: Path) -> Path | None:
    env_file = project_root / ".rotator" / "sandbox" / "environment.yaml"
    try:
        env = yaml.safe_load(env_file.read_text()) or {}
    except (FileNotFoundError, yaml.YAMLError):
        return None
    path = (env.get("state") or {}).get("path")
    if not path:
        return None
    folder = Path(path)
    return folder if folder.is_absolute() else project_root / folder


def groups_serving(project: Any, name: str) -> list[str]:
    """Groups with a record of that name, or whose edge load balancer's DNS name it is."""
    wanted = name.rstrip(".").lower()
    first_label = wanted.split(".", 1)[0]
    found = []
    for group_name in project.group_names():
        group = project.group(group_name)
        for record in group.traffic.records:
            zone = record.zone.rstrip(".").lower()
            fqdn = record.name.rstrip(".").lower()
            if not (fqdn == zone or fqdn.endswith("." + zone)):
                fqdn = f"{fqdn}.{zone}"
            if fqdn == wanted:
                found.append(group_name)
                break
        else:
            # moto names a balancer "<name>-<id>.<region>.elb.amazonaws.com[.cn]"
            edge = group.traffic.edge
            if edge is not None and first_label.startswith(edge.load_balancer.lower() + "-"):
                found.append(group_name)
    return found


def _records(state: Path, group: str) -> list[dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for path in [*sorted((state / group / "history").glob("*.json")), state / group / "current.json"]:
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue  # being rewritten this instant, or never written
        records[record.get("id", str(path))] = record
    return list(records.values())


def step_marks(state: Path, groups: list[str], since: float, until: float) -> list[dict[str, Any]]:
    """Steps that started or finished between ``since`` and ``until`` (wall clock)."""
    marks = []
    for group in groups:
        for record in _records(state, group):
            for step in [*record.get("steps", []), *record.get("rollback_steps", [])]:
                started, finished = step.get("started_at"), step.get("finished_at")
                inside = [t for t in (started, finished) if t is not None and since <= t <= until]
                if not inside:
                    continue
                marks.append({
                    "group": group,
                    "rotation": record.get("id"),
                    "kind": record.get("kind", "rotation"),
                    "step": step.get("name"),
                    "status": step.get("status"),
                    "started_at": started,
                    "finished_at": finished,
                })
    return sorted(marks, key=lambda m: m["started_at"] or m["finished_at"])
