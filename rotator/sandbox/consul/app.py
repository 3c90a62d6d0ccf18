"""The Consul v1 HTTP API over a ``ConsulCore``, as an ASGI (Starlette) app."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from rotator.sandbox.consul import filter_fields as fields
from rotator.sandbox.consul.agent_log import valid_level
from rotator.sandbox.consul.core import ConsulCore
from rotator.sandbox.consul.datacenter import MAX_KV_VALUE, Datacenter
from rotator.sandbox.consul.durations import parse_duration
from rotator.sandbox.consul.filter import STR, Field, Filter, compile_filter, struct
from rotator.sandbox.consul.metrics import PROMETHEUS_DISABLED, path_label
from rotator.sandbox.consul.model import ConsulError, normalize_keys

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0

Handler = Callable[[Request, Datacenter], Awaitable[Response]]


def _json(data: Any, index: int | None = None, status: int = 200) -> Response:
    headers = {"X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
    if index is not None:
        headers["X-Consul-Index"] = str(max(index, 1))
    return Response(json.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def _flag(request: Request, name: str) -> bool:
    """Consul flags count by presence (``?recurse``, ``?recurse=1``, ``?keys=True``)."""
    value = request.query_params.get(name)
    return value is not None and value.lower() not in ("0", "false")


def _int_param(request: Request, name: str, message: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConsulError(400, message) from None
    if value < 0:
        raise ConsulError(400, message)
    return value


def _uint_param(request: Request, name: str) -> int | None:
    """strconv.ParseUint(v, 10, 64): a bad value fails the request as a plain error (500)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) >= 2 ** 64:
        reason = "invalid syntax" if not raw.isdigit() else "value out of range"
        raise ConsulError(500, f'strconv.ParseUint: parsing "{raw}": {reason}')
    return int(raw)


def _conflicting(request: Request, *names: str) -> None:
    """Consul's ``conflictingFlags``: these query parameters do not compose."""
    if sum(1 for n in names if n in request.query_params) > 1:
        encoded = urllib.parse.urlencode(sorted(request.query_params.multi_items()))
        raise ConsulError(400, f"Conflicting flags: {encoded}\n")


async def _body_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConsulError(400, f"Request decode failed: {exc}") from None


def _filter(request: Request, schema: Field, late: bool = False) -> Filter | None:
    return compile_filter(request.query_params.get("filter"), schema, late=late)


def _peer(request: Request) -> bool:
    """``?peer=NAME`` reads what a cluster peer exported; the emulator has no peerings, so
    such a read is empty (as Consul answers for a peer it does not know)."""
    return bool(request.query_params.get("peer"))


def create_app(core: ConsulCore) -> Starlette:
    """The ASGI app answering for every datacenter of ``core``."""

    def endpoint(fn: Handler, label: str) -> Callable[[Request], Awaitable[Response]]:
        """``label`` names the route in the consul.api.http metric (``v1.kv._``)."""

        @functools.wraps(fn)
        async def wrapper(request: Request) -> Response:
            started = time.perf_counter()
            try:
                core.tokens.check(_token(request), request.url.path)
                dc = core.dc(request.query_params.get("dc") or None)
                response = await fn(request, dc)
            except ConsulError as exc:
                response = PlainTextResponse(exc.message, status_code=exc.status)
            core.metrics.sample("consul.api.http", (time.perf_counter() - started) * 1000.0,
                                method=request.method, path=label)
            return response

        return wrapper

    async def blocking(request: Request, topics: list[str],
                       query: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """Answer at once without ``index``; else hold until the index passes it or ``wait`` ends."""
        min_index = _int_param(request, "index", "Invalid index") or 0
        wait = DEFAULT_WAIT
        if "wait" in request.query_params:
            try:
                wait = parse_duration(request.query_params["wait"])
            except ValueError:
                raise ConsulError(400, "Invalid wait time") from None
            if wait < 0:
                raise ConsulError(400, "Invalid wait time")
        if min_index == 0:
            index, data = query()
            return max(index, 1), data
        wait = min(wait, MAX_WAIT)
        wait += random.uniform(0, wait / 16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            sub = core.notifier.subscribe(topics)
            try:
                index, data = query()
                remaining = deadline - loop.time()
                if max(index, 1) > min_index or remaining <= 0 or core.notifier.closed:
                    return max(index, 1), data
                await sub.wait(remaining)
            finally:
                sub.cancel()

    def filtered(flt: Filter | None, query: Callable[[], tuple[int, Any]],
                 empty: bool = False) -> Callable[[], tuple[int, Any]]:
        """Apply ``?filter`` (and ``?peer``: ``empty``) to a listing, keeping its index."""

        def run() -> tuple[int, Any]:
            index, data = query()
            if empty:
                return index, [] if isinstance(data, list) else {}
            if flt is not None:
                data = flt.apply_map(data) if isinstance(data, dict) else flt.apply(data)
            return index, data

        return run

    # ------------------------------------------------------------------ agent

    async def agent_self(request: Request, dc: Datacenter) -> Response:
        node = dc.nodes[dc.node_name]
        return _json({
            "Config": {"Datacenter": dc.name, "PrimaryDatacenter": core.default_dc,
                       "NodeName": dc.node_name, "NodeID": node.node_id, "Revision": "emulated",
                       "Server": True, "Version": "1.22.0"},
            "DebugConfig": {}, "Coord": {}, "Meta": {}, "xDS": {},
            "Member": dc.membership.local.to_json(),
            "Stats": {"consul": {"leader": "true", "leader_addr": "127.0.0.1:8300",
                                 "server": "true", "known_datacenters": str(len(core.datacenters))}},
        })

    async def agent_members(request: Request, dc: Datacenter) -> Response:
        if request.query_params.get("wan"):
            return _json([core.dc(name).membership.local.to_json(wan=True) for name in core.datacenters])
        return _json(dc.members())

    async def agent_services(request: Request, dc: Datacenter) -> Response:
        services = dc.agent_services()
        flt = _filter(request, fields.AGENT_SERVICE)
        return _json(flt.apply_map(services) if flt else services)

    async def agent_service(request: Request, dc: Datacenter) -> Response:
        data = dc.agent_service(request.path_params["sid"])
        resp = _json(data)
        resp.headers["X-Consul-ContentHash"] = data["ContentHash"]
        return resp

    async def agent_checks(request: Request, dc: Datacenter) -> Response:
        # Consul creates this filter without a type: its selectors are checked on the first
        # check filtered, so a bad one fails only when there are checks.
        checks = dc.agent_checks()
        flt = _filter(request, fields.HEALTH_CHECK, late=True)
        return _json(flt.apply_map(checks) if flt else checks)

    async def agent_reload(request: Request, dc: Datacenter) -> Response:
        core.reload()
        return Response(status_code=200)

    async def agent_metrics(request: Request, dc: Datacenter) -> Response:
        accept = request.headers.get("accept", "").lower()
        wants_prometheus = (request.query_params.get("format") == "prometheus"
                            or "application/openmetrics-text" in accept
                            or "text/plain; version=0.4.0" in accept)
        if wants_prometheus:
            if not core.prometheus:
                # Consul's CodeWithPayloadError without a payload: the reason only in a header.
                return Response(status_code=200, headers={"X-Consul-Reason": PROMETHEUS_DISABLED})
            return PlainTextResponse(core.metrics.prometheus(core.gauges()),
                                     media_type="text/plain; version=0.0.4; charset=utf-8")
        return _json(core.metrics.summary(core.gauges()))

    async def agent_leave(request: Request, dc: Datacenter) -> Response:
        # The agent answers, then shuts down (it is the one being left).
        return Response(status_code=200, background=BackgroundTask(core.leave))

    async def agent_force_leave(request: Request, dc: Datacenter) -> Response:
        if "wan" not in request.query_params:
            dc.force_leave(request.path_params["node"], prune="prune" in request.query_params)
        return Response(status_code=200)

    async def agent_monitor(request: Request, dc: Datacenter) -> Response:
        level = request.query_params.get("loglevel") or "INFO"
        if not valid_level(level):
            raise ConsulError(400, f"Unknown log level: {level}")
        monitor = core.log.attach(level, "logjson" in request.query_params)

        async def lines() -> AsyncIterator[str]:
            try:
                yield ""
                while (line := await monitor.queue.get()) is not None:
                    yield line
            finally:
                core.log.detach(monitor)

        return StreamingResponse(lines(), media_type="text/plain")

    async def agent_token(request: Request, dc: Datacenter) -> Response:
        target = request.path_params["target"]
        if not core.tokens.enabled:
            raise ConsulError(401, "ACL support disabled")
        body = normalize_keys(await _body_json(request))
        name = core.tokens.update(target, str(body.get("token") or ""))
        core.log.emit("INFO", "agent", "Updated agent's ACL token", token=name)
        return Response(status_code=200)

    async def service_register(request: Request, dc: Datacenter) -> Response:
        dc.register_service(await _body_json(request),
                            replace_existing_checks=_flag(request, "replace-existing-checks"))
        return Response(status_code=200)

    async def service_deregister(request: Request, dc: Datacenter) -> Response:
        dc.deregister_service(request.path_params["sid"])
        return Response(status_code=200)

    async def service_maintenance(request: Request, dc: Datacenter) -> Response:
        enable = _required_bool(request)
        dc.service_maintenance(request.path_params["sid"], enable,
                               request.query_params.get("reason", ""))
        return Response(status_code=200)

    async def node_maintenance(request: Request, dc: Datacenter) -> Response:
        dc.node_maintenance(_required_bool(request), request.query_params.get("reason", ""))
        return Response(status_code=200)

    async def check_register(request: Request, dc: Datacenter) -> Response:
        dc.register_check(await _body_json(request))
        return Response(status_code=200)

    async def check_deregister(request: Request, dc: Datacenter) -> Response:
        dc.deregister_check(request.path_params["cid"])
        return Response(status_code=200)

    def ttl_update(status: str) -> Handler:
        async def handler(request: Request, dc: Datacenter) -> Response:
            dc.update_check(request.path_params["cid"], status, request.query_params.get("note", ""))
            return Response(status_code=200)

        return handler

    async def check_update(request: Request, dc: Datacenter) -> Response:
        body = normalize_keys(await _body_json(request))
        dc.update_check(request.path_params["cid"], str(body.get("status") or ""),
                        str(body.get("output") or ""))
        return Response(status_code=200)

    # ------------------------------------------------------------------ catalog

    async def catalog_datacenters(request: Request, dc: Datacenter) -> Response:
        return _json(core.datacenters)

    async def catalog_services(request: Request, dc: Datacenter) -> Response:
        flt = _filter(request, fields.SERVICE_NODE)
        peer = _peer(request)

        def query() -> tuple[int, Any]:
            index, data = dc.catalog_services(flt.apply if flt else None)
            return index, {} if peer else data

        return _json(*reversed(await blocking(request, ["catalog"], query)))

    def service_listing(listing: str, connect_only: bool) -> Handler:
        async def handler(request: Request, dc: Datacenter) -> Response:
            name = request.path_params["name"]
            tags = request.query_params.getlist("tag")
            merge = _flag(request, "merge-central-config")
            topics = ["catalog" if connect_only else f"svc:{name}", "config"]
            if listing == "catalog":
                flt = _filter(request, fields.SERVICE_NODE)

                def query() -> tuple[int, Any]:
                    return dc.catalog_service(name, tags, connect_only=connect_only,
                                              merge_central=merge)
            else:
                flt = _filter(request, fields.CHECK_SERVICE_NODE)
                passing = _flag(request, "passing")

                def query() -> tuple[int, Any]:
                    return dc.health_service(name, tags, passing, connect_only=connect_only,
                                             merge_central=merge)

            run = filtered(flt, query, empty=_peer(request))
            return _json(*reversed(await blocking(request, topics, run)))

        return handler

    async def catalog_nodes(request: Request, dc: Datacenter) -> Response:
        run = filtered(_filter(request, fields.NODE), dc.catalog_nodes, empty=_peer(request))
        return _json(*reversed(await blocking(request, ["catalog"], run)))

    async def catalog_node(request: Request, dc: Datacenter) -> Response:
        node = request.path_params["node"]
        flt = _filter(request, fields.NODE_SERVICE)

        def query() -> tuple[int, Any]:
            index, data = dc.catalog_node(node)
            if data is not None and flt is not None:
                data["Services"] = flt.apply_map(data["Services"])
            return index, data

        return _json(*reversed(await blocking(request, ["catalog"], query)))

    async def catalog_gateway_services(request: Request, dc: Datacenter) -> Response:
        gateway = request.path_params["gateway"]
        return _json(*reversed(await blocking(request, ["config"],
                                              lambda: dc.gateway_services(gateway))))

    async def catalog_register(request: Request, dc: Datacenter) -> Response:
        body = normalize_keys(await _body_json(request))
        node = str(body.get("node") or "")
        if not node:
            raise ConsulError(500, "Must provide node")
        skip = bool(body.get("skipnodeupdate"))
        address = str(body.get("address") or "")
        if not address and not skip:
            raise ConsulError(500, "Must provide address if SkipNodeUpdate is not set")
        tagged = body.get("taggedaddresses")
        dc.register_node(node, address, body.get("nodemeta") or None,
                         node_id=str(body.get("id") or "") or None,
                         tagged_addresses=dict(tagged) if tagged else None,
                         skip_node_update=skip)
        if body.get("service"):
            dc.register_service(body["service"], node=node, source="catalog")
        for chk in ([body["check"]] if body.get("check") else []) + list(body.get("checks") or []):
            dc.register_catalog_check(chk, node)
        return _json(True)

    async def catalog_deregister(request: Request, dc: Datacenter) -> Response:
        body = normalize_keys(await _body_json(request))
        node = str(body.get("node") or "")
        if body.get("serviceid"):
            dc.deregister_service(str(body["serviceid"]), node=node)
        elif body.get("checkid"):
            dc.deregister_check(str(body["checkid"]), node=node)
        else:
            dc.deregister_node(node)
        return _json(True)

    # ------------------------------------------------------------------ health

    async def health_checks(request: Request, dc: Datacenter) -> Response:
        name = request.path_params["name"]
        run = filtered(_filter(request, fields.HEALTH_CHECK), lambda: dc.health_checks(name),
                       empty=_peer(request))
        return _json(*reversed(await blocking(request, [f"svc:{name}"], run)))

    async def health_state(request: Request, dc: Datacenter) -> Response:
        state = request.path_params["state"]
        dc.health_state(state)  # validates before blocking
        run = filtered(_filter(request, fields.HEALTH_CHECK), lambda: dc.health_state(state),
                       empty=_peer(request))
        return _json(*reversed(await blocking(request, ["catalog"], run)))

    async def health_node(request: Request, dc: Datacenter) -> Response:
        node = request.path_params["node"]
        run = filtered(_filter(request, fields.HEALTH_CHECK), lambda: dc.health_node(node),
                       empty=_peer(request))
        return _json(*reversed(await blocking(request, ["catalog"], run)))

    # ------------------------------------------------------------------ config entries

    async def config_apply(request: Request, dc: Datacenter) -> Response:
        cas = _uint_param(request, "cas")
        return _json(dc.config_put(await _body_json(request), cas))

    async def config_list(request: Request, dc: Datacenter) -> Response:
        kind = request.path_params["kind"]
        flt = compile_filter(request.query_params.get("filter"), _ANY_ENTRY)
        return _json(*reversed(await blocking(request, ["config"], filtered(
            flt, lambda: (dc.config.index, dc.config.list(kind))))))

    async def config_entry(request: Request, dc: Datacenter) -> Response:
        kind, name = request.path_params["kind"], request.path_params["name"]
        if request.method == "DELETE":
            cas = _uint_param(request, "cas")
            deleted = dc.config_delete(kind, name, cas)
            return _json(deleted if cas is not None else {})
        return _json(*reversed(await blocking(request, ["config"],
                                              lambda: (dc.config.index, dc.config.get(kind, name)))))

    # ------------------------------------------------------------------ KV

    async def kv_get(request: Request, dc: Datacenter) -> Response:
        key = request.path_params["key"]
        keys = _flag(request, "keys")
        recurse = _flag(request, "recurse")
        separator = request.query_params.get("separator")
        index, data = await blocking(request, ["kv"], lambda: dc.kv_get(
            key, recurse=recurse, keys=keys, separator=separator))
        if data is None:
            return PlainTextResponse("", status_code=404, headers={"X-Consul-Index": str(index)})
        if _flag(request, "raw") and not keys:
            value = data[0]["Value"]
            raw = base64.b64decode(value) if value else b""
            return Response(raw, media_type="application/octet-stream",
                            headers={"X-Consul-Index": str(index)})
        return _json(data, index)

    async def kv_put(request: Request, dc: Datacenter) -> Response:
        _conflicting(request, "cas", "acquire", "release")
        flags = _uint_param(request, "flags") or 0
        cas = _uint_param(request, "cas")
        body = await request.body()
        if len(body) > MAX_KV_VALUE:
            raise ConsulError(413, f"Request body({len(body)} bytes) too large, max size: "
                                   f"{MAX_KV_VALUE} bytes. See https://developer.hashicorp.com/"
                                   "docs/agent/config/config-files#kv_max_value_size.")
        q = request.query_params
        ok = dc.kv_put(request.path_params["key"], body or None, flags=flags, cas=cas,
                       acquire=q.get("acquire"), release=q.get("release"))
        return _json(ok)

    async def kv_delete(request: Request, dc: Datacenter) -> Response:
        _conflicting(request, "recurse", "cas")
        ok = dc.kv_delete(request.path_params["key"], recurse=_flag(request, "recurse"),
                          cas=_uint_param(request, "cas"))
        return _json(ok)

    # ------------------------------------------------------------------ sessions

    async def session_create(request: Request, dc: Datacenter) -> Response:
        return _json({"ID": dc.session_create(await _body_json(request))})

    async def session_destroy(request: Request, dc: Datacenter) -> Response:
        dc.session_destroy(request.path_params["sid"])
        return _json(True)

    async def session_renew(request: Request, dc: Datacenter) -> Response:
        return _json(dc.session_renew(request.path_params["sid"]))

    async def session_info(request: Request, dc: Datacenter) -> Response:
        sid = request.path_params["sid"]
        return _json(*reversed(await blocking(request, ["sessions"], lambda: dc.session_info(sid))))

    async def session_list(request: Request, dc: Datacenter) -> Response:
        return _json(*reversed(await blocking(request, ["sessions"], dc.session_list)))

    async def session_node(request: Request, dc: Datacenter) -> Response:
        node = request.path_params["node"]
        return _json(*reversed(await blocking(request, ["sessions"], lambda: dc.session_list(node))))

    # ------------------------------------------------------------------ status

    async def status_leader(request: Request, dc: Datacenter) -> Response:
        return _json("127.0.0.1:8300")

    async def status_peers(request: Request, dc: Datacenter) -> Response:
        return _json(["127.0.0.1:8300"])

    async def root(request: Request) -> Response:
        return PlainTextResponse("Consul Agent (emulated)")

    def api(path: str, fn: Handler, methods: list[str]) -> Route:
        return Route(path, endpoint(fn, path_label(path)), methods=methods)

    get, put = ["GET"], ["PUT"]
    routes = [
        Route("/", root, methods=get),
        Route("/ui/", root, methods=get),
        api("/v1/agent/self", agent_self, methods=get),
        api("/v1/agent/members", agent_members, methods=get),
        api("/v1/agent/reload", agent_reload, methods=put),
        api("/v1/agent/metrics", agent_metrics, methods=get),
        api("/v1/agent/leave", agent_leave, methods=put),
        api("/v1/agent/force-leave/{node}", agent_force_leave, methods=put),
        api("/v1/agent/monitor", agent_monitor, methods=get),
        api("/v1/agent/token/{target}", agent_token, methods=put),
        api("/v1/agent/services", agent_services, methods=get),
        api("/v1/agent/service/register", service_register, methods=put),
        api("/v1/agent/service/deregister/{sid:path}", service_deregister, methods=put),
        api("/v1/agent/service/maintenance/{sid:path}", service_maintenance, methods=put),
        api("/v1/agent/service/{sid:path}", agent_service, methods=get),
        api("/v1/agent/maintenance", node_maintenance, methods=put),
        api("/v1/agent/checks", agent_checks, methods=get),
        api("/v1/agent/check/register", check_register, methods=put),
        api("/v1/agent/check/deregister/{cid:path}", check_deregister, methods=put),
        api("/v1/agent/check/pass/{cid:path}", ttl_update("passing"), methods=put),
        api("/v1/agent/check/warn/{cid:path}", ttl_update("warning"), methods=put),
        api("/v1/agent/check/fail/{cid:path}", ttl_update("critical"), methods=put),
        api("/v1/agent/check/update/{cid:path}", check_update, methods=put),
        api("/v1/catalog/datacenters", catalog_datacenters, methods=get),
        api("/v1/catalog/services", catalog_services, methods=get),
        api("/v1/catalog/service/{name}", service_listing("catalog", False), methods=get),
        api("/v1/catalog/connect/{name}", service_listing("catalog", True), methods=get),
        api("/v1/catalog/nodes", catalog_nodes, methods=get),
        api("/v1/catalog/node/{node}", catalog_node, methods=get),
        api("/v1/catalog/gateway-services/{gateway}", catalog_gateway_services,
              methods=get),
        api("/v1/catalog/register", catalog_register, methods=put),
        api("/v1/catalog/deregister", catalog_deregister, methods=put),
        api("/v1/health/service/{name}", service_listing("health", False), methods=get),
        api("/v1/health/connect/{name}", service_listing("health", True), methods=get),
        api("/v1/health/checks/{name}", health_checks, methods=get),
        api("/v1/health/state/{state}", health_state, methods=get),
        api("/v1/health/node/{node}", health_node, methods=get),
        api("/v1/config", config_apply, methods=put),
        api("/v1/config/{kind}", config_list, methods=get),
        api("/v1/config/{kind}/{name}", config_entry, methods=["GET", "DELETE"]),
        api("/v1/kv/{key:path}", kv_get, methods=get),
        api("/v1/kv/{key:path}", kv_put, methods=put),
        api("/v1/kv/{key:path}", kv_delete, methods=["DELETE"]),
        api("/v1/session/create", session_create, methods=put),
        api("/v1/session/destroy/{sid}", session_destroy, methods=put),
        api("/v1/session/renew/{sid}", session_renew, methods=put),
        api("/v1/session/info/{sid}", session_info, methods=get),
        api("/v1/session/list", session_list, methods=get),
        api("/v1/session/node/{node}", session_node, methods=get),
        api("/v1/status/leader", status_leader, methods=get),
        api("/v1/status/peers", status_peers, methods=get),
    ]
    return Starlette(routes=routes)


# Config entries of every kind: only Kind and Name are common to all.
_ANY_ENTRY = struct(Kind=STR, Name=STR)


def _token(request: Request) -> str | None:
    token = request.query_params.get("token") or request.headers.get("x-consul-token")
    if token:
        return token
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _required_bool(request: Request) -> bool:
    value = request.query_params.get("enable")
    if value is None:
        raise ConsulError(400, "Missing value for enable")
    if value.lower() not in ("true", "false"):
        raise ConsulError(400, "Invalid value for enable")
    return value.lower() == "true"
