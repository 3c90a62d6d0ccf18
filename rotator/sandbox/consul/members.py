"""Serf LAN membership of one datacenter: which agents are alive, failed or gone.

Status codes and the force-leave rules are serf's (``handleNodeLeaveIntent``): a failed
member that is forced out becomes ``left``; ``prune`` also drops it from the member list;
an alive member refutes the intent and stays alive; an unknown name is no error (Consul
1.x ``Agent.ForceLeave`` passes it through to serf, which ignores it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALIVE, LEAVING, LEFT, FAILED = 1, 2, 3, 4
VERSION = "1.22.0"


@dataclass
class Member:
    name: str
    addr: str
    datacenter: str
    status: int = ALIVE
    port: int = 8301
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self, wan: bool = False) -> dict[str, Any]:
        return {"Name": f"{self.name}.{self.datacenter}" if wan else self.name,
                "Addr": self.addr, "Port": 8302 if wan else self.port,
                "Tags": dict(self.tags), "Status": self.status,
                "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
                "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4}


def server_member(name: str, datacenter: str) -> Member:
    return Member(name, "127.0.0.1", datacenter,
                  tags={"dc": datacenter, "role": "consul", "build": VERSION, "port": "8300"})


def client_member(name: str, addr: str, datacenter: str) -> Member:
    return Member(name, addr, datacenter, tags={"dc": datacenter, "role": "node", "build": VERSION})


class Membership:
    def __init__(self, local: Member):
        self.local = local
        self.members: dict[str, Member] = {local.name: local}

    def join(self, member: Member) -> None:
        member.status = ALIVE
        self.members[member.name] = member

    def fail(self, name: str) -> bool:
        member = self.members.get(name)
        if member is None or member is self.local or member.status != ALIVE:
            return False
        member.status = FAILED
        return True

    def force_leave(self, name: str, prune: bool) -> str | None:
        """Apply a leave intent; returns the member's new status name when it changed."""
        member = self.members.get(name)
        if member is None or member is self.local or member.status == ALIVE:
            return None
        changed = None
        if member.status == FAILED:
            member.status, changed = LEFT, "left"
        if prune:
            del self.members[name]
            changed = "pruned"
        return changed

    def to_json(self) -> list[dict[str, Any]]:
        return [m.to_json() for _, m in sorted(self.members.items())]
