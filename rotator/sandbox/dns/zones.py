"""What the sandbox's DNS server reads: the record sets of the emulator's hosted zones."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol


def normal(name: str) -> str:
    """Names compare lower-case without the trailing dot."""
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class RecordSet:
    name: str
    type: str
    ttl: int | None
    values: tuple[str, ...] = ()
    set_identifier: str | None = None
    weight: int | None = None
    alias_target: str | None = None  # the alias's DNSName, normalised


@dataclass(frozen=True)
class ZoneMatch:
    """The most specific public zone holding a name, and what it has at that name."""

    zone: str
    record_sets: tuple[RecordSet, ...]
    name_exists: bool  # the name, or a name below it, has records (else NXDOMAIN)
    soa: RecordSet | None


class ZoneSource(Protocol):
    def find(self, name: str) -> ZoneMatch | None: ...


def match_zone(zones: list[tuple[str, list[RecordSet]]], name: str) -> ZoneMatch | None:
    """Pick the longest zone name that is ``name`` or a parent of it."""
    name = normal(name)
    best: tuple[str, list[RecordSet]] | None = None
    for zone, records in zones:
        if (name == zone or name.endswith("." + zone)) and (best is None or len(zone) > len(best[0])):
            best = (zone, records)
    if best is None:
        return None
    zone, records = best
    here = tuple(r for r in records if r.name == name)
    below = any(r.name.endswith("." + name) for r in records)
    soa = next((r for r in records if r.name == zone and r.type == "SOA"), None)
    return ZoneMatch(zone, here, bool(here) or below, soa)


class StaticZones:
    """Zones given as data (tests, and anything that is not moto)."""

    def __init__(self, zones: dict[str, list[RecordSet]] | None = None):
        self.lock = threading.Lock()
        self.zones = {normal(z): list(r) for z, r in (zones or {}).items()}

    def set(self, zone: str, records: list[RecordSet]) -> None:
        with self.lock:
            self.zones[normal(zone)] = list(records)

    def find(self, name: str) -> ZoneMatch | None:
        with self.lock:
            return match_zone(list(self.zones.items()), name)


class MotoHostedZones:
    """The public hosted zones of every account and partition of the in-process moto.

    Private zones are left out: they answer inside their VPCs only, and a
    client of this server is outside every VPC.

    The zones are copied out of moto under the emulator's lock when they have
    changed, and answered from that copy otherwise: a query then never waits
    behind a slow AWS request (Terraform's, during a rotation) that holds the lock.
    A zone's change count (every ``ChangeResourceRecordSets`` change is appended
    to it) tells a change; a batch being applied is noticed at its first change,
    and the copy then waits for the lock, so it never holds half a batch.
    """

    def __init__(self, lock: Any = None):
        if lock is None:
            # The emulator's own lock: moto's models are not made for concurrent access.
            from rotator.sandbox.aws.emulator import _MOTO_LOCK

            lock = _MOTO_LOCK
        self.lock = lock
        self._copy: tuple[tuple, list[tuple[str, list[RecordSet]]]] = ((), [])

    @staticmethod
    def _zones() -> list[Any]:
        from moto.route53.models import route53_backends

        return [zone for account in list(route53_backends.values())
                for backend in list(account.values())
                for zone in list(backend.zones.values())]

    @classmethod
    def _version(cls) -> tuple:
        return tuple((id(z), len(z.rr_changes), len(z.rrsets)) for z in cls._zones())

    def find(self, name: str) -> ZoneMatch | None:
        version, zones = self._copy
        if self._version() != version:
            with self.lock:
                version = self._version()
                zones = [(normal(z.name), [_record_set(r) for r in z.rrsets])
                         for z in self._zones() if not z.private_zone]
            self._copy = (version, zones)
        return match_zone(zones, name)


def _record_set(rrset: Any) -> RecordSet:
    values = tuple(
        str(v["Value"] if isinstance(v, dict) else v) for v in (rrset.records or [])
    )
    alias = rrset.alias_target or {}
    alias_name = alias.get("DNSName") if isinstance(alias, dict) else None
    return RecordSet(
        name=normal(rrset.name),
        type=str(rrset.type),
        ttl=None if rrset.ttl is None else int(rrset.ttl),
        values=values,
        set_identifier=rrset.set_identifier,
        weight=None if rrset.weight is None else int(rrset.weight),
        alias_target=normal(alias_name) if alias_name else None,
    )
