"""The address book: where a private VPC address really listens on loopback.

Private addresses (10.x) are never contacted. Whatever "listens" at a private
address and port in the emulated world (a task on its agent's host port, a proxy
instance on port 80) is registered here with the loopback endpoint that serves it.
A private address is unique within its VPC, not across VPCs or regions, so every
entry names its VPC (``network``) and region, and a lookup says which networks may
be reached from where it starts (a VPC and its peers).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class _Entry:
    region: str
    network: str
    endpoint: Endpoint


class AddressBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int], list[_Entry]] = {}

    def add(self, region: str, network: str, ip: str, port: int, endpoint: Endpoint) -> None:
        with self._lock:
            entries = self._entries.setdefault((ip, int(port)), [])
            entries[:] = [e for e in entries if (e.region, e.network) != (region, network)]
            entries.append(_Entry(region, network, endpoint))

    def remove(self, region: str, network: str, ip: str, port: int) -> None:
        with self._lock:
            entries = self._entries.get((ip, int(port)), [])
            entries[:] = [e for e in entries if (e.region, e.network) != (region, network)]
            if not entries:
                self._entries.pop((ip, int(port)), None)

    def entries(self) -> list[tuple[str, int, str, str, Endpoint]]:
        """Every (ip, port, region, network, endpoint) the book holds."""
        with self._lock:
            return [(ip, port, e.region, e.network, e.endpoint)
                    for (ip, port), entries in self._entries.items() for e in entries]

    def lookup(self, ip: str, port: int, *, region: str | None = None,
               networks: Iterable[str] | None = None) -> Endpoint | None:
        """Where ``ip:port`` listens, seen from ``networks`` (None: any) of ``region``."""
        allowed = None if networks is None else set(networks)
        with self._lock:
            for entry in self._entries.get((ip, int(port)), []):
                if region is not None and entry.region != region:
                    continue
                if allowed is not None and entry.network not in allowed:
                    continue
                return entry.endpoint
        return None
