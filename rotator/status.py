"""`rotate status` and `rotate history`: what the world and the records say."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from rotator.config import Project
from rotator.durations import format_duration
from rotator.environment import load_environment
from rotator.errors import RotatorError
from rotator.model import RotationRecord
from rotator.ports import SlotOutputs


def group_status(project: Project, name: str) -> dict[str, Any]:
    """Live data for one group; parts that cannot be read say why instead."""
    from rotator.session import Session
    from rotator.wiring import make_apps

    env = load_environment(project.root)
    session = Session(project, project.group(name), project.policy(
        project.group(name).default_policy), env)
    out: dict[str, Any] = {"group": name, "environment": env.name}
    data = session.store.load(name)
    record = RotationRecord.from_dict(data) if data else None
    if record is not None:
        out["rotation"] = {"id": record.id, "status": record.status.value, "ami": record.ami,
                           "policy": record.policy, "reason": record.reason,
                           "step": record.current_step.name if record.current_step else None,
                           "updated": record.updated_at}
    try:
        state = session.traffic.read()
        out["records"] = state.weights
        edge = session.traffic.edge
        if edge is not None:
            view = edge.read()
            out["edge"] = {
                "load_balancer": edge.spec.load_balancer,
                "weights": view.weights,
                "targets": {slot: [t.to_dict() for t in targets]
                            for slot, targets in view.targets.items()},
            }
        totals = {s: state.slot_weight(s) for s in ("blue", "green")}
        live = [s for s, w in totals.items() if w > 0]
        out["live_slots"] = live
    except RotatorError as exc:
        out["traffic_error"] = str(exc)
        live = []
    except Exception as exc:  # an unreachable endpoint must not hide the rest
        out["traffic_error"] = f"{type(exc).__name__}: {exc}"
        live = []
    slots: dict[str, Any] = {}
    known = (record.slots if record else {})
    for slot in live or list(known):
        outputs = SlotOutputs.from_dict(known[slot]) if slot in known else None
        entry: dict[str, Any] = {"ami": outputs.ami if outputs else None}
        if outputs is not None:
            try:
                health = make_apps(session.group, env).health(
                    outputs.marathon_url, [a["id"] for a in session.apps_defs])
                entry["apps"] = {h.app_id: {"running": h.running, "healthy": h.healthy,
                                            "wanted": h.wanted, "ok": h.ok} for h in health}
            except Exception as exc:
                entry["apps_error"] = f"{type(exc).__name__}: {exc}"
        slots[slot] = entry
    out["slots"] = slots
    return out


def show_status(project: Project, group: str | None, output: str, console: Console) -> None:
    names = [group] if group else project.group_names()
    results = [group_status(project, n) for n in names]
    if output == "json":
        print(json.dumps(results if group is None else results[0], default=str))
        return
    for st in results:
        _render_status(st, console)


def _render_status(st: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]{st['group']}[/] [dim]({st['environment']})[/]")
    rot = st.get("rotation")
    if rot:
        age = format_duration(time.time() - rot["updated"])
        line = f"  last rotation {rot['id']}: [bold]{rot['status']}[/] to {rot['ami']} " \
               f"({rot['policy']}, {age} ago)"
        if rot["status"] not in ("done", "rolled-back") and rot["step"]:
            line += f" at step '{rot['step']}'"
        console.print(line)
        if rot["reason"]:
            console.print(f"  reason: {rot['reason']}")
    else:
        console.print("  no rotation yet")
    if "traffic_error" in st:
        console.print(f"  [red]traffic unreadable:[/] {st['traffic_error']}")
    else:
        live = ", ".join(st["live_slots"]) or "none"
        console.print(f"  live slot: [cyan]{live}[/]")
        table = Table(box=None, show_header=True, header_style="dim", pad_edge=False)
        table.add_column("  record")
        table.add_column("weights (set identifier)")
        for key, weights in sorted(st["records"].items()):
            table.add_row(f"  {key}", ", ".join(f"{k} {v}" for k, v in sorted(weights.items())))
        edge = st.get("edge")
        if edge:
            table.add_row(f"  edge {edge['load_balancer']}", ", ".join(
                f"{slot} {w}" for slot, w in sorted(edge["weights"].items())))
            for slot, targets in sorted(edge["targets"].items()):
                listed = ", ".join(f"{t['ip']} {t['state']}" for t in targets)
                table.add_row(f"    target group {slot}", listed or "no targets")
        console.print(table)
    for slot, entry in st["slots"].items():
        console.print(f"  slot {slot}: ami {entry.get('ami') or '?'}")
        if "apps" in entry:
            ok = sum(1 for a in entry["apps"].values() if a["ok"])
            console.print(f"    apps healthy: {ok}/{len(entry['apps'])}  " + ", ".join(
                f"{'✔' if a['ok'] else '✘'} {k} {a['healthy']}/{a['wanted']}"
                for k, a in sorted(entry["apps"].items())))
        elif "apps_error" in entry:
            console.print(f"    apps: [red]{entry['apps_error']}[/]")


def show_history(project: Project, group: str, limit: int, output: str, console: Console) -> None:
    from rotator.wiring import make_store

    project.group(group)
    store = make_store(project, load_environment(project.root))
    records = store.history(group)[-limit:]
    if output == "json":
        print(json.dumps(records, default=str))
        return
    if not records:
        console.print(f"{group}: no rotations yet")
        return
    table = Table(box=None, header_style="dim")
    for col in ("when", "id", "kind", "status", "ami / move", "took", "operators", "reason"):
        table.add_column(col)
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.get("created_at", 0)))
        took = format_duration((r.get("finished_at") or r.get("updated_at", 0)) - r.get(
            "created_at", 0)) if r.get("created_at") else ""
        what = r.get("ami") or f"{r.get('from', '?')} → {r.get('to', '?')}"
        table.add_row(when, r["id"], r.get("kind", "rotation"), r.get("status", ""), what, took,
                      operators(r), (r.get("reason") or "")[:60])
    console.print(table)


def operators(record: dict[str, Any]) -> str:
    """Who promoted or aborted, from where and when: 'promoted by ops@bastion (rotate) 12:03'."""
    done = {"promote": "promoted", "abort": "aborted",
            "override-quiet": "let a busy slot be destroyed, asked"}
    out = []
    for action in record.get("operator_actions", []):
        if str(action.get("outcome", "")).startswith("ignored"):
            continue
        at = time.strftime("%H:%M:%S", time.gmtime(action.get("at") or 0))
        verb = done.get(action.get("action"), action.get("action"))
        if str(action.get("outcome", "")).startswith("too late"):
            verb = "abort came too late, asked"
        out.append(f"{verb} by "
                   f"{action.get('by')} ({action.get('via')}) {at}")
    if record.get("by"):  # a failover or failback event
        out.append(f"by {record['by']} ({record.get('via', 'rotate')})")
    return "; ".join(out)
