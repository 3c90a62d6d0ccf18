"""Records held by the emulated Consul and their JSON shapes (CamelCase, as Consul answers)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from rotator.sandbox.consul.durations import format_duration

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
STATUSES = (PASSING, WARNING, CRITICAL)


class ConsulError(Exception):
    """An answer other than 200: ``status`` and a plain-text body, as Consul sends."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def normalize_keys(data: Any) -> dict[str, Any]:
    """Request keys are case-, underscore- and dash-insensitive (``ServiceID`` = ``service_id``)."""
    if not isinstance(data, dict):
        raise ConsulError(400, "Request decode failed: expected a JSON object")
    return {str(k).lower().replace("_", "").replace("-", ""): v for k, v in data.items()}


GATEWAY_KINDS = ("mesh-gateway", "terminating-gateway", "ingress-gateway", "api-gateway")
PROXY_KIND = "connect-proxy"


def agent_tagged_addresses(address: str) -> dict[str, str]:
    """What a Consul agent publishes for its own node (catalog registrations give their own)."""
    return {"lan": address, "lan_ipv4": address, "wan": address, "wan_ipv4": address}


@dataclass
class Node:
    name: str
    node_id: str
    address: str
    datacenter: str
    meta: dict[str, str] = field(default_factory=dict)
    create_index: int = 0
    modify_index: int = 0
    tagged_addresses: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.node_id,
            "Node": self.name,
            "Address": self.address,
            "Datacenter": self.datacenter,
            "TaggedAddresses": dict(self.tagged_addresses) if self.tagged_addresses is not None else None,
            "Meta": dict(self.meta),
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class Service:
    node: str
    service_id: str
    name: str
    tags: list[str] = field(default_factory=list)
    address: str = ""
    port: int = 0
    meta: dict[str, str] = field(default_factory=dict)
    tagged_addresses: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=lambda: {"Passing": 1, "Warning": 1})
    enable_tag_override: bool = False
    kind: str = ""
    create_index: int = 0
    modify_index: int = 0
    proxy: dict[str, Any] | None = None  # connect-proxy and gateway kinds only
    native: bool = False  # Connect.Native
    sidecar_of: str = ""  # the service this one was registered as sidecar of (agent state only)

    @property
    def is_proxy_or_gateway(self) -> bool:
        return self.kind == PROXY_KIND or self.kind in GATEWAY_KINDS

    def proxy_json(self) -> dict[str, Any]:
        """NodeService.Proxy as Consul emits it (MeshGateway and Expose are never omitted)."""
        return {"MeshGateway": {}, "Expose": {}, **(self.proxy or {})}

    def agent_json(self, datacenter: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ID": self.service_id,
            "Service": self.name,
            "Tags": list(self.tags),
            "Meta": dict(self.meta),
            "Port": self.port,
            "Address": self.address,
            "TaggedAddresses": dict(self.tagged_addresses),
            "Weights": dict(self.weights),
            "EnableTagOverride": self.enable_tag_override,
            "Datacenter": datacenter,
        }
        if self.kind:
            out["Kind"] = self.kind
        if self.is_proxy_or_gateway:
            out["Proxy"] = self.proxy_json()
        if self.native:
            out["Connect"] = {"Native": True}
        return out

    def health_json(self, proxy: dict[str, Any] | None = None) -> dict[str, Any]:
        """NodeService; ``proxy`` replaces the stored one (merge-central-config)."""
        out = self.agent_json("")
        del out["Datacenter"]
        out["Proxy"] = proxy if proxy is not None else self.proxy_json()
        out["Connect"] = {"Native": True} if self.native else {}
        out["CreateIndex"] = self.create_index
        out["ModifyIndex"] = self.modify_index
        return out

    def catalog_json(self, node: Node, proxy: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "ID": node.node_id,
            "Node": node.name,
            "Address": node.address,
            "Datacenter": node.datacenter,
            "TaggedAddresses": node.to_json()["TaggedAddresses"],
            "NodeMeta": dict(node.meta),
            "ServiceID": self.service_id,
            "ServiceName": self.name,
            "ServiceTags": list(self.tags),
            "ServiceAddress": self.address,
            "ServicePort": self.port,
            "ServiceMeta": dict(self.meta),
            "ServiceTaggedAddresses": dict(self.tagged_addresses),
            "ServiceEnableTagOverride": self.enable_tag_override,
            "ServiceWeights": dict(self.weights),
            "ServiceKind": self.kind,
            "ServiceProxy": proxy if proxy is not None else self.proxy_json(),
            "ServiceConnect": {"Native": True} if self.native else {},
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class Check:
    node: str
    check_id: str
    name: str
    status: str = CRITICAL
    notes: str = ""
    output: str = ""
    service_id: str = ""
    service_name: str = ""
    service_tags: list[str] = field(default_factory=list)
    kind: str = "ttl"  # ttl, http, tcp, script, grpc, docker, alias, maintenance, serf
    ttl: float = 0.0
    interval: float = 0.0
    timeout: float = 10.0
    target: str = ""  # URL for http, host:port for tcp
    method: str = "GET"
    header: dict[str, list[str]] = field(default_factory=dict)
    body: str = ""
    tls_skip_verify: bool = False
    deregister_after: float = 0.0
    alias_service: str = ""  # alias checks follow this service's health on the same node
    create_index: int = 0
    modify_index: int = 0
    # timers (monotonic seconds); None when the check has no such timer
    ttl_deadline: float | None = None
    next_probe: float | None = None
    probing: bool = False

    def to_json(self) -> dict[str, Any]:
        kind = {"maintenance": "", "serf": "", "catalog": ""}.get(self.kind, self.kind)
        return {
            "Node": self.node,
            "CheckID": self.check_id,
            "Name": self.name,
            "Status": self.status,
            "Notes": self.notes,
            "Output": self.output,
            "ServiceID": self.service_id,
            "ServiceName": self.service_name,
            "ServiceTags": list(self.service_tags),
            "Type": kind,
            "Interval": format_duration(self.interval) if self.interval else "",
            "Timeout": format_duration(self.timeout) if self.kind in ("http", "tcp", "grpc") else "",
            "ExposedPort": 0,
            "Definition": {},
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class Session:
    session_id: str
    name: str
    node: str
    lock_delay: float
    behavior: str
    ttl: float  # 0 = no TTL
    ttl_text: str
    node_checks: list[str]
    service_checks: list[str] | None
    create_index: int
    modify_index: int
    expires_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.session_id,
            "Name": self.name,
            "Node": self.node,
            "LockDelay": int(round(self.lock_delay * 1e9)),
            "Behavior": self.behavior,
            "TTL": self.ttl_text,
            "NodeChecks": list(self.node_checks),
            "ServiceChecks": (
                None if self.service_checks is None
                else [{"ID": c, "Namespace": ""} for c in self.service_checks]
            ),
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class KVEntry:
    key: str
    value: bytes | None
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0
    session: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": base64.b64encode(self.value).decode("ascii") if self.value else None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }
        if self.session:
            out["Session"] = self.session
        return out
