"""What a group's traffic is made of: its DNS records and its part of the region's edge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RecordType = Literal["CNAME", "A"]


def set_identifier(group: str, slot: str) -> str:
    """The SetIdentifier of one slot's weighted record set: ``<group>-<slot>``."""
    return f"{group}-{slot}"


def normalize_name(name: str) -> str:
    """Route53 answers names in lower case with a trailing dot."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


@dataclass(frozen=True)
class RecordSpec:
    """One DNS name the group serves; one weighted record set per slot.

    ``type`` CNAME points at the slot ELB's DNS name; ``type`` A is an alias to
    the slot ELB (``AliasTarget`` with the ELB's canonical hosted zone id).
    ``name`` is either fully qualified ("api.rotator-demo.cn.") or relative to
    the zone ("api").
    """

    zone: str  # hosted zone name, e.g. "rotator-demo.cn."
    name: str
    type: RecordType = "CNAME"
    ttl: int = 60

    def __post_init__(self) -> None:
        if self.type not in ("CNAME", "A"):
            raise ValueError(f"record {self.name!r}: type must be CNAME or A, not {self.type!r}")

    @property
    def zone_name(self) -> str:
        return normalize_name(self.zone)

    @property
    def fqdn(self) -> str:
        zone = self.zone_name
        name = self.name.lower()
        if name.endswith("."):
            return name
        if name + "." == zone or (name + ".").endswith("." + zone):
            return name + "."
        return f"{name}.{zone}"

    @property
    def key(self) -> str:
        """The record key used in ``TrafficState.weights``: "zone/name/type"."""
        return f"{self.zone_name}/{self.fqdn}/{self.type}"


@dataclass(frozen=True)
class EdgeSpec:
    """The group's part of its region's edge: the ALB ``load_balancer`` whose listener on
    ``port`` forwards to one target group per slot; the slot's instances of ``role`` are
    registered there by private IP."""

    load_balancer: str
    target_groups: dict[str, str]  # slot -> target group name
    port: int = 80
    role: str = "proxy"
