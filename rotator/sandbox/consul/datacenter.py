"""The state of one emulated datacenter: its catalog, checks, KV store and sessions.

Every method is safe to call from any thread (one lock shared by the whole
emulator). Every write takes a fresh Raft-like index and wakes the blocking
queries of the topics it touched: ``svc:<name>`` for one service's health,
``catalog`` for node/service/check listings, ``kv`` and ``sessions``.
"""

from __future__ import annotations

import ipaddress
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from rotator.sandbox.consul import connect
from rotator.sandbox.consul.config_entries import ConfigEntries
from rotator.sandbox.consul.durations import format_duration, parse_duration
from rotator.sandbox.consul.members import (
    Membership,
    client_member,
    server_member,
)
from rotator.sandbox.consul.model import (
    CRITICAL,
    PASSING,
    STATUSES,
    WARNING,
    Check,
    ConsulError,
    KVEntry,
    Node,
    Service,
    Session,
    agent_tagged_addresses,
    normalize_keys,
)
from rotator.sandbox.consul.notifier import ChangeNotifier

MAX_KV_VALUE = 512 * 1024
AGENT_NODE = object()  # register_node: the node runs an agent (serfHealth, lan/wan addresses)
MAX_LOCK_DELAY = 60.0
NODE_MAINTENANCE = "_node_maintenance"
SERVICE_MAINTENANCE = "_service_maintenance:"
NODE_MAINT_NOTE = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
SERVICE_MAINT_NOTE = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
# Probe = (check key, kind, target, method, headers, body, timeout, tls_skip_verify)
Probe = tuple[tuple[str, str], str, str, str, dict[str, list[str]], str, float, bool]


def is_loopback_target(kind: str, target: str) -> bool:
    """Only loopback addresses are ever probed; anything else keeps its initial status."""
    if kind == "http":
        host = urlsplit(target).hostname or ""
    else:
        host = target.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Datacenter:
    def __init__(
        self,
        name: str,
        node_name: str,
        *,
        lock: threading.RLock,
        notifier: ChangeNotifier,
        clock: Callable[[], float],
        poke: Callable[[], None] = lambda: None,
        log: Callable[..., None] = lambda *args, **fields: None,
        probe_target: Callable[[str, str], str | None] | None = None,
    ):
        self.name = name
        # (kind, target) -> the loopback target to probe, None when unreachable; by default
        # only loopback targets are probed (the sandbox maps private addresses)
        self.probe_target = probe_target or (
            lambda kind, target: target if is_loopback_target(kind, target) else None)
        self.node_name = node_name
        self._lock = lock
        self._notifier = notifier
        self._clock = clock
        self._poke = poke  # tells the scheduler a timer may have moved earlier
        self._log = log  # (level, module, message, **fields): the agent's monitor stream
        self.index = 1
        self.catalog_index = 1
        self.kv_index = 1
        self.sessions_index = 1
        self.nodes: dict[str, Node] = {}
        self.services: dict[tuple[str, str], Service] = {}
        self.checks: dict[tuple[str, str], Check] = {}
        self.service_index: dict[str, int] = {}
        self.kv: dict[str, KVEntry] = {}
        self.tombstones: dict[str, int] = {}
        self.sessions: dict[str, Session] = {}
        self.lock_delays: dict[str, float] = {}
        self.config = ConfigEntries()
        self.membership = Membership(server_member(node_name, name))
        self._bootstrap()

    # ------------------------------------------------------------------ helpers

    def _bump(self) -> int:
        self.index += 1
        return self.index

    def _bootstrap(self) -> None:
        with self._lock:
            self.register_node(self.node_name, "127.0.0.1", node_id=str(uuid.uuid4()))
            idx = self._bump()
            self.services[(self.node_name, "consul")] = Service(
                node=self.node_name, service_id="consul", name="consul", port=8300,
                create_index=idx, modify_index=idx,
            )
            self.service_index["consul"] = idx
            self.catalog_index = idx

    def _catalog_changed(self, services: set[str], idx: int) -> None:
        services = services | self._refresh_aliases(idx)
        for name in services:
            self.service_index[name] = idx
        self.catalog_index = idx
        self._notifier.notify(["catalog", *(f"svc:{n}" for n in services)])

    def _refresh_aliases(self, idx: int) -> set[str]:
        """Alias checks take the worst status of the service they alias (same node);
        returns the names of the services whose alias checks changed."""
        changed: set[str] = set()
        for chk in self.checks.values():
            if chk.kind != "alias":
                continue
            target = self.services.get((chk.node, chk.alias_service))
            if target is None:
                status, output = CRITICAL, f"Service {chk.alias_service} could not be found on node {chk.node}"
            else:
                statuses = [c.status for c in self._checks_of(target) if c is not chk]
                status = (CRITICAL if CRITICAL in statuses else WARNING if WARNING in statuses
                          else PASSING)
                output = "No checks found." if not statuses else "All checks passing." \
                    if status == PASSING else "At least one check is not passing."
            if (chk.status, chk.output) != (status, output):
                chk.status, chk.output, chk.modify_index = status, output, idx
                if chk.service_name:
                    changed.add(chk.service_name)
        return changed

    def _node_services(self, node: str) -> set[str]:
        return {s.name for (n, _), s in self.services.items() if n == node}

    def _node(self, node: str | None) -> str:
        node = node or self.node_name
        if node not in self.nodes:
            raise ConsulError(500, "Missing node registration")
        return node

    # ------------------------------------------------------------------ nodes

    def register_node(self, name: str, address: str, meta: dict[str, str] | None = None,
                      node_id: str | None = None, *, tagged_addresses: Any = AGENT_NODE,
                      skip_node_update: bool = False) -> None:
        """A node in the catalog. By default it runs an agent (as the registrator's hosts do):
        it joins the member list and gets ``serfHealth``; a ``/v1/catalog/register`` node
        passes its own ``tagged_addresses`` (None allowed) and gets neither."""
        with self._lock:
            node = self.nodes.get(name)
            if node is not None and skip_node_update:
                return
            runs_agent = tagged_addresses is AGENT_NODE
            tagged = agent_tagged_addresses(address) if runs_agent else tagged_addresses
            idx = self._bump()
            if node is None:
                self.nodes[name] = Node(name, node_id or str(uuid.uuid4()), address, self.name,
                                        dict(meta or {}), idx, idx, tagged)
                if runs_agent:
                    serf = Check(node=name, check_id="serfHealth", name="Serf Health Status",
                                 status=PASSING, output="Agent alive and reachable", kind="serf",
                                 create_index=idx, modify_index=idx)
                    self.checks[(name, "serfHealth")] = serf
                    if name != self.node_name:
                        self.membership.join(client_member(name, address, self.name))
            else:
                node.address = address
                node.meta = dict(meta or node.meta)
                node.tagged_addresses = tagged
                if node_id:
                    node.node_id = node_id
                node.modify_index = idx
            self._catalog_changed(self._node_services(name), idx)

    def deregister_node(self, name: str) -> None:
        with self._lock:
            if name not in self.nodes or name == self.node_name:
                return
            names = self._node_services(name)
            for key in [k for k in self.services if k[0] == name]:
                del self.services[key]
            for key in [k for k in self.checks if k[0] == name]:
                del self.checks[key]
            del self.nodes[name]
            for sid in [s.session_id for s in self.sessions.values() if s.node == name]:
                self._invalidate_session(sid)
            self._catalog_changed(names, self._bump())

    # ------------------------------------------------------------------ services

    def register_service(self, definition: dict[str, Any], *, replace_existing_checks: bool = False,
                         node: str | None = None, source: str = "agent",
                         sidecar_of: str = "") -> None:
        """Register a service instance. ``source`` "agent" answers as
        ``/v1/agent/service/register`` does (and registers ``Connect.SidecarService``);
        "catalog" takes a catalog NodeService (name in ``Service``) and fails as the
        Catalog.Register RPC fails (HTTP 500)."""
        d = normalize_keys(definition)
        agent = source == "agent"
        status = 400 if agent else 500
        name = str(d.get("name") or ("" if agent else d.get("service")) or "")
        if not name:
            raise ConsulError(status, "Missing service name" if agent else
                              "Must provide service name (Service.Service) with ID (Service.ID)")
        sid = str(d.get("id") or name)
        address = str(d.get("address") or "")
        if address in ("0.0.0.0", "::", "[::]"):
            raise ConsulError(status, "Invalid service address")
        port = int(d.get("port") or 0)
        kind = str(d.get("kind") or "")
        proxy = connect.normalize_proxy(d.get("proxy"))
        conn = normalize_keys(d.get("connect") or {})
        native = bool(conn.get("native"))
        sidecar = conn.get("sidecarservice") if agent else None
        if sidecar is not None and not isinstance(sidecar, dict):
            sidecar = {}
        problems = connect.validation_errors(kind, port, proxy, native, sidecar)
        if problems:
            text = connect.multierror(problems)
            raise ConsulError(status, f"Validation failed: {text}" if agent else text)
        tags = [str(t) for t in (d.get("tags") or [])]
        checks_in = [normalize_keys(c) for c in (d.get("checks") or [])]
        if d.get("check"):
            checks_in.insert(0, normalize_keys(d["check"]))
        weights = {"Passing": 1, "Warning": 1}
        for k, v in (d.get("weights") or {}).items():
            weights[str(k).capitalize()] = int(v)
        tagged = {}
        for k, v in (d.get("taggedaddresses") or {}).items():
            v = normalize_keys(v)
            tagged[k] = {"Address": v.get("address", ""), "Port": int(v.get("port", 0))}
        with self._lock:
            node = self._node(node)
            # Build every check first so a bad definition changes nothing.
            new_checks: list[Check] = []
            for i, c in enumerate(checks_in, start=1):
                if c.get("status") and c["status"] not in STATUSES:
                    raise ConsulError(400, "Status for checks must 'passing', 'warning', 'critical'")
                default_id = f"service:{sid}" if len(checks_in) == 1 else f"service:{sid}:{i}"
                chk = self._build_check(c, node, default_id=default_id,
                                        default_name=f"Service '{name}' check")
                chk.service_id, chk.service_name, chk.service_tags = sid, name, tags
                new_checks.append(chk)
            idx = self._bump()
            old = self.services.get((node, sid))
            changed = {name} | ({old.name} if old else set())
            self.services[(node, sid)] = Service(
                node=node, service_id=sid, name=name, tags=tags, address=address, port=port,
                meta={str(k): str(v) for k, v in (d.get("meta") or {}).items()},
                tagged_addresses=tagged, weights=weights,
                enable_tag_override=bool(d.get("enabletagoverride", False)),
                kind=kind, proxy=proxy if kind and kind != "typical" else None, native=native,
                sidecar_of=sidecar_of,
                create_index=old.create_index if old else idx, modify_index=idx,
            )
            keep = {c.check_id for c in new_checks}
            for key, chk in list(self.checks.items()):
                if key[0] != node or chk.service_id != sid:
                    continue
                if chk.kind == "maintenance" or chk.check_id in keep:
                    chk.service_name, chk.service_tags, chk.modify_index = name, tags, idx
                    continue
                if replace_existing_checks:
                    self._remove_check(key)
            for chk in new_checks:
                self._install_check(chk, idx)
            self._catalog_changed(changed, idx)
            self._log("INFO", "agent", "Synced service", service=sid)
            if sidecar is not None:
                sidecar_id = sid + connect.SIDECAR_SUFFIX
                current = self.services.get((node, sidecar_id))
                used = {s.port for (n, _), s in self.services.items()
                        if n == node and s.port in connect.SIDECAR_PORTS and s.service_id != sidecar_id}
                self.register_service(
                    connect.sidecar_definition(d, sid, name, used, current.port if current else None),
                    replace_existing_checks=replace_existing_checks, node=node, sidecar_of=sid)
        self._poke()

    def deregister_service(self, service_id: str, *, node: str | None = None) -> None:
        with self._lock:
            node = node or self.node_name
            svc = self.services.pop((node, service_id), None)
            if svc is None:
                return
            for key, chk in list(self.checks.items()):
                if key[0] == node and chk.service_id == service_id:
                    self._remove_check(key)
            self._catalog_changed({svc.name}, self._bump())
            self._log("INFO", "agent", "Deregistered service", service=service_id)
            # A sidecar the agent registered for this service goes with it.
            for (n, other_id), other in list(self.services.items()):
                if n == node and other.sidecar_of == service_id:
                    self.deregister_service(other_id, node=node)

    def service_maintenance(self, service_id: str, enable: bool, reason: str = "") -> None:
        with self._lock:
            svc = self.services.get((self.node_name, service_id))
            if svc is None:
                raise ConsulError(404, f'Unknown service ID "{service_id}"')
            key = (self.node_name, SERVICE_MAINTENANCE + service_id)
            if enable == (key in self.checks):
                return
            idx = self._bump()
            if enable:
                self.checks[key] = Check(
                    node=self.node_name, check_id=key[1], name="Service Maintenance Mode",
                    status=CRITICAL, notes=reason or SERVICE_MAINT_NOTE, service_id=service_id,
                    service_name=svc.name, service_tags=list(svc.tags), kind="maintenance",
                    create_index=idx, modify_index=idx)
            else:
                del self.checks[key]
            self._catalog_changed({svc.name}, idx)

    def node_maintenance(self, enable: bool, reason: str = "") -> None:
        with self._lock:
            key = (self.node_name, NODE_MAINTENANCE)
            if enable == (key in self.checks):
                return
            idx = self._bump()
            if enable:
                self.checks[key] = Check(
                    node=self.node_name, check_id=NODE_MAINTENANCE, name="Node Maintenance Mode",
                    status=CRITICAL, notes=reason or NODE_MAINT_NOTE, kind="maintenance",
                    create_index=idx, modify_index=idx)
                self._check_went_critical(self.checks[key])
            else:
                del self.checks[key]
            self._catalog_changed(self._node_services(self.node_name), idx)

    def agent_services(self) -> dict[str, Any]:
        with self._lock:
            return {sid: s.agent_json(self.name) for (n, sid), s in sorted(self.services.items())
                    if n == self.node_name and sid != "consul"}

    def agent_service(self, service_id: str) -> dict[str, Any]:
        with self._lock:
            svc = self.services.get((self.node_name, service_id))
            if svc is None or service_id == "consul":
                raise ConsulError(404, f"unknown service ID: {service_id}")
            out = svc.agent_json(self.name)
            out["ContentHash"] = f"{svc.modify_index:016x}"
            return out

    # ------------------------------------------------------------------ checks

    def _build_check(self, d: dict[str, Any], node: str, *, default_id: str = "",
                     default_name: str = "") -> Check:
        name = str(d.get("name") or default_name)
        check_id = str(d.get("id") or d.get("checkid") or default_id or name)
        if not check_id:
            raise ConsulError(400, "Missing check name")
        status = str(d.get("status") or CRITICAL)
        if status not in STATUSES:
            raise ConsulError(400, f"Invalid check status: {status!r}")
        chk = Check(node=node, check_id=check_id, name=name or check_id, status=status,
                    notes=str(d.get("notes") or ""), output=str(d.get("output") or ""))
        try:
            if d.get("ttl"):
                chk.kind, chk.ttl = "ttl", parse_duration(d["ttl"])
            elif d.get("http"):
                chk.kind, chk.target = "http", str(d["http"])
                chk.method = str(d.get("method") or "GET").upper()
                chk.header = {str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
                              for k, v in (d.get("header") or {}).items()}
                chk.body = str(d.get("body") or "")
                chk.tls_skip_verify = bool(d.get("tlsskipverify", False))
            elif d.get("tcp"):
                chk.kind, chk.target = "tcp", str(d["tcp"])
            elif d.get("args") or d.get("script"):
                chk.kind = "script"
            elif d.get("grpc"):
                chk.kind, chk.target = "grpc", str(d["grpc"])
            elif d.get("dockercontainerid"):
                chk.kind = "docker"
            elif d.get("aliasservice"):
                chk.kind, chk.alias_service = "alias", str(d["aliasservice"])
            else:
                raise ConsulError(400, "Must provide TTL or Script/DockerContainerID/HTTP/TCP/GRPC check")
            if chk.kind in ("http", "tcp", "script", "grpc", "docker"):
                chk.interval = parse_duration(d.get("interval") or 0)
                if chk.interval <= 0:
                    raise ConsulError(400, "Interval must be > 0 for Script, HTTP, or TCP checks")
                # Short intervals are allowed (real Consul: 1 s minimum) so tests stay fast.
                chk.interval = max(chk.interval, 0.05)
            if d.get("timeout"):
                chk.timeout = parse_duration(d["timeout"])
            if d.get("deregistercriticalserviceafter"):
                chk.deregister_after = parse_duration(d["deregistercriticalserviceafter"])
        except ValueError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from None
        return chk

    def _install_check(self, chk: Check, idx: int) -> None:
        key = (chk.node, chk.check_id)
        old = self.checks.get(key)
        if old is not None and old.kind == chk.kind and chk.status == CRITICAL and not chk.output:
            chk.status, chk.output = old.status, old.output  # re-registration keeps the status
        chk.create_index = old.create_index if old else idx
        chk.modify_index = idx
        now = self._clock()
        if chk.kind == "ttl" and chk.ttl > 0:
            chk.ttl_deadline = now + chk.ttl
        elif chk.kind in ("http", "tcp") and self.probe_target(chk.kind, chk.target):
            chk.next_probe = now
        self.checks[key] = chk
        if chk.status == CRITICAL:
            self._check_went_critical(chk)

    def _remove_check(self, key: tuple[str, str]) -> None:
        chk = self.checks.pop(key, None)
        if chk is not None:
            self._check_went_critical(chk)  # sessions tied to a removed check are invalidated

    def register_check(self, definition: dict[str, Any], *, node: str | None = None) -> None:
        """``/v1/agent/check/register``: without ``ServiceID`` the check is a node check
        (it counts for every service on the node); an unknown ``ServiceID`` is a 404."""
        d = normalize_keys(definition)
        if not d.get("name"):
            raise ConsulError(400, "Missing check name")
        if d.get("status") and d["status"] not in STATUSES:
            raise ConsulError(400, "Bad check status")
        with self._lock:
            node = self._node(node)
            chk = self._build_check(d, node)
            sid = str(d.get("serviceid") or "")
            names: set[str] = set()
            if sid:
                svc = self.services.get((node, sid))
                if svc is None:
                    raise ConsulError(404, f'ServiceID "{sid}" does not exist')
                chk.service_id, chk.service_name, chk.service_tags = sid, svc.name, list(svc.tags)
                names.add(svc.name)
            else:
                names = self._node_services(node)
            idx = self._bump()
            self._install_check(chk, idx)
            self._catalog_changed(names, idx)
            self._log("INFO", "agent", "Synced check", check=chk.check_id)
        self._poke()

    def register_catalog_check(self, definition: dict[str, Any], node: str) -> None:
        """A check entry written through ``/v1/catalog/register``: stored as given (status
        defaults to critical), never run by an agent."""
        d = normalize_keys(definition)
        with self._lock:
            name = str(d.get("name") or "")
            check_id = str(d.get("checkid") or d.get("id") or name)
            status = str(d.get("status") or CRITICAL)
            if status not in STATUSES:
                raise ConsulError(500, f"Invalid check status: {status!r}")
            definition_d = normalize_keys(d.get("definition") or {})
            kind = "http" if definition_d.get("http") else "tcp" if definition_d.get("tcp") else "catalog"
            chk = Check(node=node, check_id=check_id, name=name, status=status,
                        notes=str(d.get("notes") or ""), output=str(d.get("output") or ""),
                        kind=kind)
            names: set[str]
            sid = str(d.get("serviceid") or "")
            svc = self.services.get((node, sid)) if sid else None
            if svc is not None:
                chk.service_id, chk.service_name, chk.service_tags = sid, svc.name, list(svc.tags)
                names = {svc.name}
            else:
                names = self._node_services(node)
            idx = self._bump()
            old = self.checks.get((node, check_id))
            chk.create_index = old.create_index if old else idx
            chk.modify_index = idx
            self.checks[(node, check_id)] = chk
            if chk.status == CRITICAL:
                self._check_went_critical(chk)
            self._catalog_changed(names, idx)

    def deregister_check(self, check_id: str, *, node: str | None = None) -> None:
        with self._lock:
            key = (node or self.node_name, check_id)
            chk = self.checks.get(key)
            if chk is None:
                return
            self._remove_check(key)
            names = {chk.service_name} if chk.service_id else self._node_services(key[0])
            self._catalog_changed(names, self._bump())

    def update_check(self, check_id: str, status: str, output: str = "", *,
                     node: str | None = None) -> None:
        """pass/warn/fail/update: set the status and output, reset the TTL clock."""
        if status not in STATUSES:
            raise ConsulError(400, f"Invalid check status: {status!r}")
        with self._lock:
            chk = self.checks.get((node or self.node_name, check_id))
            if chk is None:
                raise ConsulError(404, f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.')
            if chk.kind == "ttl" and chk.ttl > 0:
                chk.ttl_deadline = self._clock() + chk.ttl
            self._set_status(chk, status, output)
        self._poke()

    def _set_status(self, chk: Check, status: str, output: str) -> None:
        if chk.status == status and chk.output == output:
            return
        went_critical = status == CRITICAL and chk.status != CRITICAL
        chk.status, chk.output = status, output
        idx = self._bump()
        chk.modify_index = idx
        if went_critical:
            self._check_went_critical(chk)
        names = {chk.service_name} if chk.service_id else self._node_services(chk.node)
        self._catalog_changed(names, idx)

    def agent_checks(self) -> dict[str, Any]:
        with self._lock:
            return {cid: c.to_json() for (n, cid), c in sorted(self.checks.items())
                    if n == self.node_name and c.kind != "serf"}

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        with self._lock:
            times = [c.ttl_deadline for c in self.checks.values() if c.ttl_deadline is not None]
            times += [c.next_probe for c in self.checks.values()
                      if c.next_probe is not None and not c.probing]
            times += [s.expires_at for s in self.sessions.values() if s.expires_at is not None]
            return min(times) if times else None

    def run_due(self) -> list[Probe]:
        """Expire TTL checks and sessions that are due; return the probes to run now."""
        probes: list[Probe] = []
        with self._lock:
            now = self._clock()
            for chk in list(self.checks.values()):
                if chk.ttl_deadline is not None and chk.ttl_deadline <= now:
                    chk.ttl_deadline = None  # stays expired until the next pass/warn/fail
                    self._set_status(chk, CRITICAL, "TTL expired")
                if chk.next_probe is not None and chk.next_probe <= now and not chk.probing:
                    chk.probing = True
                    target = self.probe_target(chk.kind, chk.target)
                    if target is None:  # nothing listens there (any more)
                        chk.probing = False
                        chk.next_probe = now + chk.interval
                        self._set_status(chk, CRITICAL, f"dial {chk.target}: connection refused")
                        continue
                    probes.append(((chk.node, chk.check_id), chk.kind, target, chk.method,
                                   chk.header, chk.body, chk.timeout, chk.tls_skip_verify))
            for sess in list(self.sessions.values()):
                if sess.expires_at is not None and sess.expires_at <= now:
                    self._invalidate_session(sess.session_id)
        return probes

    def record_probe(self, key: tuple[str, str], status: str, output: str) -> None:
        with self._lock:
            chk = self.checks.get(key)
            if chk is None or not chk.probing:
                return
            chk.probing = False
            chk.next_probe = self._clock() + chk.interval
            self._set_status(chk, status, output)
        self._poke()

    # ------------------------------------------------------------------ catalog / health reads

    def _sorted_services(self, name: str, tags: list[str], connect_only: bool = False) -> list[Service]:
        if connect_only:  # the Connect-capable instances of ``name``: its proxies, or itself if native
            found = [s for s in self.services.values()
                     if (s.kind == "connect-proxy"
                         and (s.proxy or {}).get("DestinationServiceName") == name)
                     or (s.native and s.name == name)]
        else:
            found = [s for s in self.services.values() if s.name == name]
        found = [s for s in found if all(t in s.tags for t in tags)]
        return sorted(found, key=lambda s: (s.node, s.service_id))

    def service_topic_index(self, name: str) -> int:
        # An unknown service answers index 1 so a blocked watcher wakes exactly when it appears.
        return max(self.service_index.get(name, 1), 1)

    def _query_index(self, name: str, connect_only: bool, merge_central: bool) -> int:
        index = self.catalog_index if connect_only else self.service_topic_index(name)
        return max(index, self.config.index) if merge_central else index

    def _proxy_view(self, svc: Service, merge_central: bool) -> dict[str, Any] | None:
        if not merge_central:
            return None
        return connect.merged_proxy(svc.kind, svc.name, svc.proxy or {}, self.config.entries)

    def service_nodes(self) -> list[dict[str, Any]]:
        """Every service instance as a catalog ServiceNode (what /v1/catalog/services filters)."""
        with self._lock:
            return [s.catalog_json(self.nodes[s.node])
                    for _, s in sorted(self.services.items()) if s.node in self.nodes]

    def catalog_services(self, keep: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
                         ) -> tuple[int, dict[str, list[str]]]:
        with self._lock:
            nodes = self.service_nodes()
            if keep is not None:
                nodes = keep(nodes)
            out: dict[str, list[str]] = {}
            for s in nodes:
                tags = out.setdefault(s["ServiceName"], [])
                tags.extend(t for t in s["ServiceTags"] if t not in tags)
            return self.catalog_index, dict(sorted(out.items()))

    def catalog_service(self, name: str, tags: list[str], *, connect_only: bool = False,
                        merge_central: bool = False) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self._query_index(name, connect_only, merge_central), [
                s.catalog_json(self.nodes[s.node], self._proxy_view(s, merge_central))
                for s in self._sorted_services(name, tags, connect_only)]

    def catalog_nodes(self) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self.catalog_index, [n.to_json() for _, n in sorted(self.nodes.items())]

    def catalog_node(self, name: str) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            node = self.nodes.get(name)
            if node is None:
                return self.catalog_index, None
            services = {sid: s.health_json() for (n, sid), s in sorted(self.services.items())
                        if n == name}
            return self.catalog_index, {"Node": node.to_json(), "Services": services}

    def _checks_of(self, svc: Service) -> list[Check]:
        own = [c for (n, _), c in sorted(self.checks.items())
               if n == svc.node and c.service_id == svc.service_id]
        node_level = [c for (n, _), c in sorted(self.checks.items()) if n == svc.node and not c.service_id]
        return own + node_level

    def health_service(self, name: str, tags: list[str], passing: bool, *,
                       connect_only: bool = False, merge_central: bool = False
                       ) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            out = []
            for svc in self._sorted_services(name, tags, connect_only):
                checks = self._checks_of(svc)
                if passing and any(c.status != PASSING for c in checks):
                    continue
                out.append({"Node": self.nodes[svc.node].to_json(),
                            "Service": svc.health_json(self._proxy_view(svc, merge_central)),
                            "Checks": [c.to_json() for c in checks]})
            return self._query_index(name, connect_only, merge_central), out

    def gateway_services(self, gateway: str) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self.config.index, self.config.gateway_services(gateway)

    # ------------------------------------------------------------------ config entries

    def config_put(self, body: Any, cas: int | None = None) -> bool:
        entry = self.config.decode(body)
        with self._lock:
            idx = self.index + 1
            ok = self.config.put(entry, idx, cas)
            if ok:
                self._config_changed(idx)
            return ok

    def config_delete(self, kind: str, name: str, cas: int | None = None) -> bool:
        with self._lock:
            idx = self.index + 1
            existed = (kind, name) in self.config.entries
            ok = self.config.delete(kind, name, idx, cas)
            if ok and existed:
                self._config_changed(idx)
            return ok

    def _config_changed(self, idx: int) -> None:
        # Central config changes what merge-central-config reads return for every service.
        self.index = idx
        self._notifier.notify(["config", *(f"svc:{n}" for n in {s.name for s in self.services.values()})])

    def health_checks(self, name: str) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self.service_topic_index(name), [
                c.to_json() for _, c in sorted(self.checks.items())
                if c.service_id and c.service_name == name]

    def health_state(self, state: str) -> tuple[int, list[dict[str, Any]]]:
        if state not in ("any", PASSING, WARNING, CRITICAL):
            raise ConsulError(400, "Bad check state")
        with self._lock:
            return self.catalog_index, [c.to_json() for _, c in sorted(self.checks.items())
                                        if state == "any" or c.status == state]

    def health_node(self, node: str) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self.catalog_index, [c.to_json() for (n, _), c in sorted(self.checks.items())
                                        if n == node]

    # ------------------------------------------------------------------ sessions

    def _check_went_critical(self, chk: Check) -> None:
        for sess in list(self.sessions.values()):
            if sess.node != chk.node:
                continue
            if chk.check_id in sess.node_checks or chk.check_id in (sess.service_checks or []):
                self._invalidate_session(sess.session_id)

    def _invalidate_session(self, session_id: str) -> None:
        sess = self.sessions.pop(session_id, None)
        if sess is None:
            return
        now = self._clock()
        idx = self._bump()
        kv_changed = False
        for key, entry in list(self.kv.items()):
            if entry.session != session_id:
                continue
            kv_changed = True
            if sess.behavior == "delete":
                del self.kv[key]
                self.tombstones[key] = idx
            else:
                entry.session = None
                entry.modify_index = idx
            if sess.lock_delay > 0:
                self.lock_delays[key] = now + sess.lock_delay
        self.sessions_index = idx
        topics = ["sessions"]
        if kv_changed:
            self.kv_index = idx
            topics.append("kv")
        self._notifier.notify(topics)

    def session_create(self, body: dict[str, Any]) -> str:
        d = normalize_keys(body or {})
        try:
            lock_delay = d.get("lockdelay", "15s")
            lock_delay = parse_duration(lock_delay)
            ttl_text = str(d.get("ttl") or "")
            ttl = parse_duration(ttl_text) if ttl_text else 0.0
        except ValueError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from None
        if not 0 <= lock_delay <= MAX_LOCK_DELAY:
            lock_delay = min(max(lock_delay, 0.0), MAX_LOCK_DELAY)
        if ttl < 0 or ttl > 86400:
            raise ConsulError(400, f"Invalid Session TTL '{ttl_text}', must be between [10s=24h0m0s]")
        behavior = str(d.get("behavior") or "release")
        if behavior not in ("release", "delete"):
            raise ConsulError(400, f"Invalid Behavior setting '{behavior}'")
        with self._lock:
            node = self._node(str(d.get("node") or "") or None)
            if "checks" in d or "nodechecks" in d:
                node_checks = [str(c) for c in (d.get("nodechecks") or d.get("checks") or [])]
            else:
                node_checks = ["serfHealth"]
            service_checks = None
            if d.get("servicechecks"):
                service_checks = [str(normalize_keys(c).get("id", "")) if isinstance(c, dict) else str(c)
                                  for c in d["servicechecks"]]
            for cid in node_checks + (service_checks or []):
                chk = self.checks.get((node, cid))
                if chk is None:
                    raise ConsulError(500, f"Missing check '{cid}' registration")
                if chk.status == CRITICAL:
                    raise ConsulError(500, f"Check '{cid}' is in critical state")
            idx = self._bump()
            sid = str(uuid.uuid4())
            self.sessions[sid] = Session(
                session_id=sid, name=str(d.get("name") or ""), node=node, lock_delay=lock_delay,
                behavior=behavior, ttl=ttl, ttl_text=format_duration(ttl) if ttl else "",
                node_checks=node_checks, service_checks=service_checks,
                create_index=idx, modify_index=idx,
                expires_at=self._clock() + ttl if ttl else None)
            self.sessions_index = idx
            self._notifier.notify(["sessions"])
        self._poke()
        return sid

    def session_destroy(self, session_id: str) -> None:
        with self._lock:
            self._invalidate_session(session_id)

    def session_renew(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            sess = self.sessions.get(session_id)
            if sess is None:
                raise ConsulError(404, f"Session id '{session_id}' not found")
            if sess.ttl:
                sess.expires_at = self._clock() + sess.ttl
            return [sess.to_json()]

    def session_info(self, session_id: str) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            sess = self.sessions.get(session_id)
            return self.sessions_index, [sess.to_json()] if sess else []

    def session_list(self, node: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self.sessions_index, [
                s.to_json() for s in sorted(self.sessions.values(), key=lambda s: s.create_index)
                if node is None or s.node == node]

    # ------------------------------------------------------------------ KV

    def kv_get(self, key: str, *, recurse: bool = False, keys: bool = False,
               separator: str | None = None) -> tuple[int, Any]:
        """(index, data); data is None when nothing matches (the HTTP layer answers 404)."""
        with self._lock:
            if not recurse and not keys:
                entry = self.kv.get(key)
                if entry is None:
                    return self.kv_index, None
                return entry.modify_index, [entry.to_json()]
            matched = sorted(k for k in self.kv if k.startswith(key))
            indexes = [self.kv[k].modify_index for k in matched]
            indexes += [i for k, i in self.tombstones.items() if k.startswith(key)]
            index = max(indexes) if indexes else self.kv_index
            if not matched:
                return index, None
            if keys:
                out: list[str] = []
                for k in matched:
                    if separator:
                        pos = k.find(separator, len(key))
                        if pos >= 0:
                            k = k[: pos + len(separator)]
                    if not out or out[-1] != k:
                        out.append(k)
                return index, out
            return index, [self.kv[k].to_json() for k in matched]

    def kv_put(self, key: str, value: bytes | None, *, flags: int = 0, cas: int | None = None,
               acquire: str | None = None, release: str | None = None) -> bool:
        """One KVS.Apply as Consul runs it (agent/consul/kvs_endpoint.go and
        state/kvs.go): a plain set keeps the lock holder but not the lock index, ``cas``
        checks the modify index (0 = create only), ``acquire`` takes the lock unless another
        session holds it or the key is in lock-delay, ``release`` only by the holder.
        A write that changes nothing keeps the entry's index and wakes no one."""
        if not key:
            raise ConsulError(400, "Missing key name")
        with self._lock:
            entry = self.kv.get(key)
            session: str | None = None
            lock_index = 0
            if acquire is not None:
                # Lock-delay is judged on the leader before anything else (even the session).
                if self.lock_delays.get(key, 0.0) > self._clock():
                    self._log("WARN", "agent.server.kvs", "Rejecting lock of key due to lock-delay",
                              key=key)
                    return False
                if not acquire:
                    raise ConsulError(500, "missing session")
                if acquire not in self.sessions:
                    raise ConsulError(500, f'invalid session "{acquire}"')
                if entry is not None and entry.session and entry.session != acquire:
                    return False
                session = acquire
                held = entry is not None and entry.session == acquire
                lock_index = (entry.lock_index if held else entry.lock_index + 1) if entry else 1
            elif release is not None:
                if not release:
                    raise ConsulError(500, "missing session")
                if entry is None or entry.session != release:
                    return False
                session, lock_index = None, entry.lock_index
            else:
                if cas is not None:
                    if cas == 0 and entry is not None:
                        return False
                    if cas != 0 and (entry is None or entry.modify_index != cas):
                        return False
                session = entry.session if entry is not None else None
            stored = value or None
            if entry is not None and (entry.value, entry.flags, entry.session, entry.lock_index) == (
                    stored, flags, session, lock_index):
                return True
            idx = self._bump()
            if entry is None:
                entry = KVEntry(key=key, value=None, flags=0, create_index=idx, modify_index=idx)
                self.kv[key] = entry
                self.tombstones.pop(key, None)
            entry.value, entry.flags, entry.session, entry.lock_index = stored, flags, session, lock_index
            entry.modify_index = idx
            self.kv_index = idx
            self._notifier.notify(["kv"])
            return True

    def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        """KVDelete / KVDeleteTree / KVDeleteCAS; deleting nothing writes nothing."""
        if not key and not recurse:
            raise ConsulError(400, "Missing key name")
        with self._lock:
            if cas is not None:
                entry = self.kv.get(key)
                if entry is None:
                    return True
                if entry.modify_index != cas:
                    return False
            doomed = [k for k in self.kv if k.startswith(key)] if recurse else (
                [key] if key in self.kv else [])
            if not doomed:
                return True
            idx = self._bump()
            for k in doomed:
                del self.kv[k]
                self.tombstones[k] = idx
            self.kv_index = idx
            self._notifier.notify(["kv"])
            return True

    # ------------------------------------------------------------------ members

    def join_member(self, name: str, address: str) -> None:
        """An agent on ``name`` joins (or rejoins) the LAN pool; its serfHealth passes."""
        with self._lock:
            self.membership.join(client_member(name, address, self.name))
            chk = self.checks.get((name, "serfHealth"))
            if chk is not None:
                self._set_status(chk, PASSING, "Agent alive and reachable")

    def fail_member(self, name: str) -> None:
        """The agent on ``name`` stops answering gossip: the leader marks its serfHealth
        critical (sessions tied to it are invalidated)."""
        with self._lock:
            if self.membership.fail(name):
                chk = self.checks.get((name, "serfHealth"))
                if chk is not None:
                    self._set_status(chk, CRITICAL, "Agent not live or unreachable")

    def force_leave(self, name: str, prune: bool = False) -> None:
        """``/v1/agent/force-leave``: a failed member leaves; the leader then removes its
        node from the catalog, as it does for every member that left."""
        with self._lock:
            self._log("INFO", "agent", "Force leaving node", node=name)
            outcome = self.membership.force_leave(name, prune)
            if outcome is not None and name in self.nodes:
                self.deregister_node(name)

    def members(self) -> list[dict[str, Any]]:
        with self._lock:
            return self.membership.to_json()
