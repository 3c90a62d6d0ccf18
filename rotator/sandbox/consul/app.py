"""The Consul v1 HTTP API over a ``ConsulCore``, as an ASGI (Starlette) app."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rotator.sandbox.consul.core import ConsulCore
from rotator.sandbox.consul.datacenter import Datacenter
from rotator.sandbox.consul.durations import parse_duration
from rotator.sandbox.consul.model import ConsulError, normalize_keys

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
_TRUE = ("", "1", "true", "True", "yes")

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


async def _body_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConsulError(400, f"Request decode failed: {exc}") from None


def create_app(core: ConsulCore) -> Starlette:
    """The ASGI app answering for every datacenter of ``core``."""

    def endpoint(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def wrapper(request: Request) -> Response:
            try:
                if core.acl_token is not None and _token(request) != core.acl_token:
                    raise ConsulError(403, "Permission denied: anonymous token lacks permission")
                dc = core.dc(request.query_params.get("dc") or None)
                return await fn(request, dc)
            except ConsulError as exc:
                return PlainTextResponse(exc.message, status_code=exc.status)

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

    # ------------------------------------------------------------------ agent

    async def agent_self(request: Request, dc: Datacenter) -> Response:
        node = dc.nodes[dc.node_name]
        return _json({
            "Config": {"Datacenter": dc.name, "PrimaryDatacenter": core.default_dc,
                       "NodeName": dc.node_name, "NodeID": node.node_id, "Revision": "emulated",
                       "Server": True, "Version": "1.22.0"},
            "DebugConfig": {}, "Coord": {}, "Meta": {}, "xDS": {},
            "Member": _member(dc),
            "Stats": {"consul": {"leader": "true", "leader_addr": "127.0.0.1:8300",
                                 "server": "true", "known_datacenters": str(len(core.datacenters))}},
        })

    async def agent_members(request: Request, dc: Datacenter) -> Response:
        if _flag(request, "wan"):
            return _json([_member(core.dc(name), wan=True) for name in core.datacenters])
        return _json([_member(dc)])

    async def agent_services(request: Request, dc: Datacenter) -> Response:
        return _json(dc.agent_services())

    async def agent_service(request: Request, dc: Datacenter) -> Response:
        data = dc.agent_service(request.path_params["sid"])
        resp = _json(data)
        resp.headers["X-Consul-ContentHash"] = data["ContentHash"]
        return resp

    async def agent_checks(request: Request, dc: Datacenter) -> Response:
        return _json(dc.agent_checks())

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
        return _json(*reversed(await blocking(request, ["catalog"], dc.catalog_services)))

    async def catalog_service(request: Request, dc: Datacenter) -> Response:
        name = request.path_params["name"]
        tags = request.query_params.getlist("tag")
        return _json(*reversed(await blocking(request, [f"svc:{name}"],
                                              lambda: dc.catalog_service(name, tags))))

    async def catalog_nodes(request: Request, dc: Datacenter) -> Response:
        return _json(*reversed(await blocking(request, ["catalog"], dc.catalog_nodes)))

    async def catalog_node(request: Request, dc: Datacenter) -> Response:
        node = request.path_params["node"]
        return _json(*reversed(await blocking(request, ["catalog"], lambda: dc.catalog_node(node))))

    async def catalog_register(request: Request, dc: Datacenter) -> Response:
        body = normalize_keys(await _body_json(request))
        node = str(body.get("node") or "")
        if not node:
            raise ConsulError(400, "Must provide node")
        dc.register_node(node, str(body.get("address") or ""), body.get("nodemeta") or None)
        if body.get("service"):
            dc.register_service(body["service"], node=node)
        for chk in ([body["check"]] if body.get("check") else []) + list(body.get("checks") or []):
            dc.register_check(chk, node=node)
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

    async def health_service(request: Request, dc: Datacenter) -> Response:
        name = request.path_params["name"]
        tags = request.query_params.getlist("tag")
        passing = _flag(request, "passing")
        return _json(*reversed(await blocking(request, [f"svc:{name}"],
                                              lambda: dc.health_service(name, tags, passing))))

    async def health_checks(request: Request, dc: Datacenter) -> Response:
        name = request.path_params["name"]
        return _json(*reversed(await blocking(request, [f"svc:{name}"],
                                              lambda: dc.health_checks(name))))

    async def health_state(request: Request, dc: Datacenter) -> Response:
        state = request.path_params["state"]
        dc.health_state(state)  # validates before blocking
        return _json(*reversed(await blocking(request, ["catalog"], lambda: dc.health_state(state))))

    async def health_node(request: Request, dc: Datacenter) -> Response:
        node = request.path_params["node"]
        return _json(*reversed(await blocking(request, ["catalog"], lambda: dc.health_node(node))))

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
        body = await request.body()
        flags = _int_param(request, "flags", "Invalid flags")
        ok = dc.kv_put(request.path_params["key"], body or None,
                       cas=_int_param(request, "cas", "Invalid cas index"), flags=flags,
                       acquire=request.query_params.get("acquire") or None,
                       release=request.query_params.get("release") or None)
        return _json(ok)

    async def kv_delete(request: Request, dc: Datacenter) -> Response:
        ok = dc.kv_delete(request.path_params["key"], recurse=_flag(request, "recurse"),
                          cas=_int_param(request, "cas", "Invalid cas index"))
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

    get, put = ["GET"], ["PUT"]
    routes = [
        Route("/", root, methods=get),
        Route("/ui/", root, methods=get),
        Route("/v1/agent/self", endpoint(agent_self), methods=get),
        Route("/v1/agent/members", endpoint(agent_members), methods=get),
        Route("/v1/agent/services", endpoint(agent_services), methods=get),
        Route("/v1/agent/service/register", endpoint(service_register), methods=put),
        Route("/v1/agent/service/deregister/{sid:path}", endpoint(service_deregister), methods=put),
        Route("/v1/agent/service/maintenance/{sid:path}", endpoint(service_maintenance), methods=put),
        Route("/v1/agent/service/{sid:path}", endpoint(agent_service), methods=get),
        Route("/v1/agent/maintenance", endpoint(node_maintenance), methods=put),
        Route("/v1/agent/checks", endpoint(agent_checks), methods=get),
        Route("/v1/agent/check/register", endpoint(check_register), methods=put),
        Route("/v1/agent/check/deregister/{cid:path}", endpoint(check_deregister), methods=put),
        Route("/v1/agent/check/pass/{cid:path}", endpoint(ttl_update("passing")), methods=put),
        Route("/v1/agent/check/warn/{cid:path}", endpoint(ttl_update("warning")), methods=put),
        Route("/v1/agent/check/fail/{cid:path}", endpoint(ttl_update("critical")), methods=put),
        Route("/v1/agent/check/update/{cid:path}", endpoint(check_update), methods=put),
        Route("/v1/catalog/datacenters", endpoint(catalog_datacenters), methods=get),
        Route("/v1/catalog/services", endpoint(catalog_services), methods=get),
        Route("/v1/catalog/service/{name}", endpoint(catalog_service), methods=get),
        Route("/v1/catalog/nodes", endpoint(catalog_nodes), methods=get),
        Route("/v1/catalog/node/{node}", endpoint(catalog_node), methods=get),
        Route("/v1/catalog/register", endpoint(catalog_register), methods=put),
        Route("/v1/catalog/deregister", endpoint(catalog_deregister), methods=put),
        Route("/v1/health/service/{name}", endpoint(health_service), methods=get),
        Route("/v1/health/checks/{name}", endpoint(health_checks), methods=get),
        Route("/v1/health/state/{state}", endpoint(health_state), methods=get),
        Route("/v1/health/node/{node}", endpoint(health_node), methods=get),
        Route("/v1/kv/{key:path}", endpoint(kv_get), methods=get),
        Route("/v1/kv/{key:path}", endpoint(kv_put), methods=put),
        Route("/v1/kv/{key:path}", endpoint(kv_delete), methods=["DELETE"]),
        Route("/v1/session/create", endpoint(session_create), methods=put),
        Route("/v1/session/destroy/{sid}", endpoint(session_destroy), methods=put),
        Route("/v1/session/renew/{sid}", endpoint(session_renew), methods=put),
        Route("/v1/session/info/{sid}", endpoint(session_info), methods=get),
        Route("/v1/session/list", endpoint(session_list), methods=get),
        Route("/v1/session/node/{node}", endpoint(session_node), methods=get),
        Route("/v1/status/leader", endpoint(status_leader), methods=get),
        Route("/v1/status/peers", endpoint(status_peers), methods=get),
    ]
    return Starlette(routes=routes)


def _token(request: Request) -> str | None:
    token = request.headers.get("x-consul-token") or request.query_params.get("token")
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


def _member(dc: Datacenter, wan: bool = False) -> dict[str, Any]:
    name = f"{dc.node_name}.{dc.name}" if wan else dc.node_name
    return {"Name": name, "Addr": "127.0.0.1", "Port": 8302 if wan else 8301,
            "Tags": {"dc": dc.name, "role": "consul", "build": "1.22.0", "port": "8300"},
            "Status": 1, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
            "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4}
