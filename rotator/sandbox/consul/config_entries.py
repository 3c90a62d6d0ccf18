"""Config entries (``/v1/config``) of one datacenter, and the gateway-service mappings
that ingress and terminating gateway entries define (``/v1/catalog/gateway-services``).

Kinds, messages and shapes follow hashicorp/consul ``agent/config_endpoint.go``,
``agent/structs/config_entry*.go`` and the catalog API docs (List Services for Gateway).
"""

from __future__ import annotations

import copy
from typing import Any

from rotator.sandbox.consul.model import ConsulError

KINDS = ("service-defaults", "proxy-defaults", "service-router", "service-splitter",
         "service-resolver", "service-intentions", "ingress-gateway", "terminating-gateway",
         "mesh", "exported-services", "api-gateway", "http-route", "tcp-route",
         "inline-certificate", "file-system-certificate", "jwt-provider", "sameness-group",
         "control-plane-request-limit", "prepared-query")


class ConfigEntries:
    """Not thread-safe on its own: the datacenter's lock guards it."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.index = 1

    @staticmethod
    def decode(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ConsulError(400, "Request decoding failed: expected a JSON object")
        entry = {_camel(k): v for k, v in body.items()}
        kind = str(entry.get("Kind") or "")
        if kind not in KINDS:
            raise ConsulError(400, f"Request decoding failed: invalid config entry kind: {kind}")
        return entry

    def validate(self, entry: dict[str, Any]) -> None:
        """Normalize and Validate of the entry's kind; failures come back from Consul's
        ConfigEntry.Apply RPC as plain errors (HTTP 500)."""
        kind, name = entry["Kind"], str(entry.get("Name") or "")
        if kind == "proxy-defaults":
            if name not in ("", "global"):
                raise ConsulError(500, f'invalid name ("{name}"), only "global" is supported')
            entry["Name"] = "global"
        if kind == "ingress-gateway":
            ports: set[int] = set()
            for listener in entry.get("Listeners") or []:
                port = int(listener.get("Port") or 0)
                protocol = listener.setdefault("Protocol", "tcp") or "tcp"
                listener["Protocol"] = protocol
                if port in ports:
                    raise ConsulError(500, f"port {port} declared on two listeners")
                ports.add(port)
                if protocol not in ("tcp", "http", "http2", "grpc"):
                    raise ConsulError(500, "protocol must be 'tcp', 'http', 'http2', or 'grpc'. "
                                           f"'{protocol}' is an unsupported protocol")
                services = listener.get("Services") or []
                if not services:
                    raise ConsulError(500, f"No service declared for listener with port {port}")
                if protocol == "tcp" and len(services) > 1:
                    raise ConsulError(500, "Multiple services per listener are only supported for "
                                           "L7 protocols, 'http', 'grpc' and 'http2' (listener on "
                                           f"port {port})")
                for svc in services:
                    if not svc.get("Name"):
                        raise ConsulError(500, f"Service name cannot be blank (listener on port {port})")

    def put(self, entry: dict[str, Any], index: int, cas: int | None = None) -> bool:
        self.validate(entry)
        key = (entry["Kind"], str(entry["Name"]))
        existing = self.entries.get(key)
        if cas is not None:
            if cas == 0 and existing is not None:
                return False
            if cas != 0 and (existing is None or existing["ModifyIndex"] != cas):
                return False
        stored = {k: copy.deepcopy(v) for k, v in entry.items() if k not in ("CreateIndex", "ModifyIndex")}
        if entry["Kind"] == "service-defaults" and stored.get("Protocol"):
            stored["Protocol"] = str(stored["Protocol"]).lower()
        stored["CreateIndex"] = existing["CreateIndex"] if existing else index
        stored["ModifyIndex"] = index
        self.entries[key] = stored
        self.index = index
        return True

    def get(self, kind: str, name: str) -> dict[str, Any]:
        self._check_kind(kind)
        entry = self.entries.get((kind, name))
        if entry is None:
            raise ConsulError(404, f'Config entry not found for "{kind}" / "{name}"')
        return copy.deepcopy(entry)

    def list(self, kind: str) -> list[dict[str, Any]]:
        self._check_kind(kind)
        return [copy.deepcopy(e) for (k, _), e in sorted(self.entries.items()) if k == kind]

    def delete(self, kind: str, name: str, index: int, cas: int | None = None) -> bool:
        self._check_kind(kind)
        existing = self.entries.get((kind, name))
        if cas is not None and (existing is None or existing["ModifyIndex"] != cas):
            return False
        if existing is not None:
            del self.entries[(kind, name)]
            self.index = index
        return True

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise ConsulError(400, f"invalid config entry kind: {kind}")

    def gateway_services(self, gateway: str) -> list[dict[str, Any]]:
        """The services a gateway's config entry names, as ``GatewayService`` records."""
        out: list[dict[str, Any]] = []
        ingress = self.entries.get(("ingress-gateway", gateway))
        if ingress is not None:
            for listener in ingress.get("Listeners") or []:
                for svc in listener.get("Services") or []:
                    item: dict[str, Any] = {
                        "Gateway": {"Name": gateway}, "Service": {"Name": svc.get("Name", "")},
                        "GatewayKind": "ingress-gateway", "Port": int(listener.get("Port") or 0),
                        "Protocol": str(listener.get("Protocol") or "tcp")}
                    if svc.get("Hosts"):
                        item["Hosts"] = list(svc["Hosts"])
                    item["CreateIndex"] = ingress["CreateIndex"]
                    item["ModifyIndex"] = ingress["ModifyIndex"]
                    out.append(item)
        terminating = self.entries.get(("terminating-gateway", gateway))
        if terminating is not None:
            for svc in terminating.get("Services") or []:
                item = {"Gateway": {"Name": gateway}, "Service": {"Name": svc.get("Name", "")},
                        "GatewayKind": "terminating-gateway"}
                for key in ("CAFile", "CertFile", "KeyFile", "SNI"):
                    if svc.get(key):
                        item[key] = svc[key]
                item["CreateIndex"] = terminating["CreateIndex"]
                item["ModifyIndex"] = terminating["ModifyIndex"]
                out.append(item)
        return sorted(out, key=lambda g: g["Service"]["Name"])


def _camel(key: str) -> str:
    """Config entries accept snake_case keys too (``kind``, ``name``, ``protocol``)."""
    if "_" in key or key.islower():
        return "".join(part[:1].upper() + part[1:] for part in key.split("_"))
    return key
