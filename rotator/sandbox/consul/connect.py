"""Service mesh registrations: proxy and gateway kinds, sidecars, central config merging.

Rules and defaults follow hashicorp/consul: ``NodeService.Validate`` (agent/structs/structs.go),
``sidecarServiceFromNodeService`` and ``sidecarDefaultChecks`` (agent/sidecar_service.go),
and ``ComputeResolvedServiceConfig`` / ``MergeServiceConfig`` (agent/configentry).
"""

from __future__ import annotations

import copy
from typing import Any

from rotator.sandbox.consul.model import GATEWAY_KINDS, PROXY_KIND, normalize_keys

SIDECAR_SUFFIX = "-sidecar-proxy"
SIDECAR_PORTS = range(21000, 21256)  # connect.sidecar_min_port .. sidecar_max_port

_PROXY_KEYS = ("DestinationServiceName", "DestinationServiceID", "LocalServiceAddress",
               "LocalServicePort", "LocalServiceSocketPath", "Mode", "TransparentProxy", "Config",
               "Upstreams", "MeshGateway", "Expose", "AccessLogs")
_UPSTREAM_KEYS = ("DestinationType", "DestinationNamespace", "DestinationPartition",
                  "DestinationPeer", "DestinationName", "Datacenter", "LocalBindAddress",
                  "LocalBindPort", "LocalBindSocketPath", "Config", "MeshGateway",
                  "CentrallyConfigured")
_NESTED = {"TransparentProxy": ("OutboundListenerPort", "DialedDirectly"),
           "MeshGateway": ("Mode",), "Expose": ("Checks", "Paths")}


def _canonical(data: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """Request keys are case/underscore-insensitive; answers use Consul's spelling."""
    lowered = normalize_keys(data or {})
    out = {}
    for key in keys:
        value = lowered.get(key.lower())
        if value is None:
            continue
        if key in _NESTED:
            value = _canonical(value, _NESTED[key])
        elif key == "Upstreams":
            value = [_canonical(u, _UPSTREAM_KEYS) for u in value or []]
        out[key] = value
    return out


def normalize_proxy(data: Any) -> dict[str, Any]:
    return _canonical(data, _PROXY_KEYS)


def validation_errors(kind: str, port: int, proxy: dict[str, Any], native: bool,
                      sidecar: dict[str, Any] | None) -> list[str]:
    """NodeService.Validate's findings, in its order."""
    errors: list[str] = []
    if kind == PROXY_KIND:
        if not port:
            errors.append(f"Port or SocketPath must be set for a {kind}")
        destination = str(proxy.get("DestinationServiceName") or "")
        if not destination.strip():
            errors.append("Proxy.DestinationServiceName must be non-empty for Connect proxy services")
        if destination == "*":
            errors.append("Proxy.DestinationServiceName must not be a wildcard for Connect proxy services")
        if native:
            errors.append("A Proxy cannot also be Connect Native, only typical services")
    if kind in GATEWAY_KINDS:
        if not port and kind not in ("ingress-gateway", "api-gateway"):
            errors.append(f"Port must be non-zero for a {kind}")
        if sidecar is not None:
            errors.append(f"A {kind} cannot have a sidecar service defined")
        for key in ("DestinationServiceName", "DestinationServiceID", "LocalServiceAddress",
                    "LocalServicePort", "LocalServiceSocketPath", "Upstreams"):
            if proxy.get(key):
                errors.append(f"The Proxy.{key} configuration is invalid for a {kind}")
    if sidecar is not None:
        nested = normalize_keys(sidecar)
        if nested.get("id"):
            errors.append("A SidecarService cannot specify an ID as this is managed by the agent")
        if normalize_keys(nested.get("connect") or {}).get("sidecarservice") is not None:
            errors.append("A SidecarService cannot have a nested SidecarService")
    if native and not port:
        errors.append("Port or SocketPath must be set for a Connect native service.")
    return errors


def multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's rendering."""
    plural = "s" if len(errors) > 1 else ""
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} error{plural} occurred:\n\t{points}\n\n"


def sidecar_definition(parent: dict[str, Any], parent_id: str, parent_name: str,
                       used_ports: set[int], current_port: int | None) -> dict[str, Any]:
    """The service definition an agent registers for ``Connect.SidecarService``."""
    nested = normalize_keys(parent.get("connect") or {}).get("sidecarservice") or {}
    d = normalize_keys(nested)
    proxy = normalize_proxy(d.get("proxy"))
    proxy.setdefault("DestinationServiceName", parent_name)
    proxy.setdefault("DestinationServiceID", parent_id)
    if not proxy.get("LocalServiceAddress") or int(proxy.get("LocalServicePort") or 0) < 1:
        proxy.setdefault("LocalServiceAddress", "127.0.0.1")
        if int(proxy.get("LocalServicePort") or 0) < 1:
            proxy["LocalServicePort"] = int(parent.get("port") or 0)
    port = int(d.get("port") or 0)
    if port < 1:
        port = current_port if current_port in SIDECAR_PORTS else next(
            (p for p in SIDECAR_PORTS if p not in used_ports), 0)
    address = str(d.get("address") or parent.get("address") or "")
    sidecar_id = parent_id + SIDECAR_SUFFIX
    checks = list(d.get("checks") or [])
    if d.get("check"):
        checks.insert(0, d["check"])
    if not checks:
        target = address or str(proxy.get("LocalServiceAddress") or "")
        checks = [{"Name": "Connect Sidecar Listening", "TCP": f"{target}:{port}", "Interval": "10s"},
                  {"Name": f"Connect Sidecar Aliasing {parent_id}", "AliasService": parent_id}]
    return {
        "ID": sidecar_id,
        "Name": str(d.get("name") or parent_name + SIDECAR_SUFFIX),
        "Kind": str(d.get("kind") or PROXY_KIND),
        "Tags": list(d.get("tags") or parent.get("tags") or []),
        "Meta": dict(d.get("meta") or parent.get("meta") or {}),
        "Address": address,
        "Port": port,
        "Proxy": proxy,
        "Checks": checks,
    }


def merged_proxy(kind: str, name: str, proxy: dict[str, Any],
                 entries: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any] | None:
    """The Proxy block with proxy-defaults/global and service-defaults applied, for the
    kinds merge-central-config concerns (sidecar proxies and gateways); None otherwise."""
    if kind != PROXY_KIND and kind not in GATEWAY_KINDS:
        return None
    target = str(proxy.get("DestinationServiceName") or "") if kind == PROXY_KIND else name
    global_defaults = entries.get(("proxy-defaults", "global")) or {}
    service_defaults = entries.get(("service-defaults", target)) or {}

    config = dict(global_defaults.get("Config") or {})
    if service_defaults.get("Protocol"):
        config["protocol"] = service_defaults["Protocol"]
    mesh_gateway = (service_defaults.get("MeshGateway") or {}).get("Mode") or (
        global_defaults.get("MeshGateway") or {}).get("Mode") or ""
    expose = service_defaults.get("Expose") or global_defaults.get("Expose") or {}
    mode = service_defaults.get("Mode") or global_defaults.get("Mode") or ""
    transparent = service_defaults.get("TransparentProxy") or global_defaults.get("TransparentProxy") or {}

    out = {"MeshGateway": {}, "Expose": {}, **copy.deepcopy(proxy)}
    # mergo.Merge: only what the registration left unset is taken from the defaults.
    out["Config"] = {**config, **(out.get("Config") or {})} or out.get("Config")
    if out.get("Config") is None:
        out.pop("Config")
    if not out["MeshGateway"].get("Mode") and mesh_gateway:
        out["MeshGateway"] = {**out["MeshGateway"], "Mode": mesh_gateway}
    if not out["Expose"] and expose:
        out["Expose"] = copy.deepcopy(expose)
    if not out.get("Mode") and mode:
        out["Mode"] = mode
    if transparent and not (out.get("TransparentProxy") or {}).get("OutboundListenerPort"):
        out["TransparentProxy"] = {**(out.get("TransparentProxy") or {}), **transparent}
    return out
