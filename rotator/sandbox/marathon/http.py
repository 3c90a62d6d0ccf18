"""The Marathon 1.6 REST API (and sandbox controls) in front of a MarathonEmulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rotator.apps.app_definition import normalize_id

from . import definitions
from .deployments import Deployment
from .emulator import MarathonEmulator
from .model import ApiError, iso

HEARTBEAT_SECONDS = 5.0


def _flag(request: Request, name: str, default: bool = False) -> bool:
    """JAX-RS Boolean.valueOf: 'true' in any case is true, anything else false."""
    value = request.query_params.get(name)
    return default if value is None else value.lower() == "true"


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, {"message": "Please specify data in JSON format",
                             "details": "No content to map due to end-of-input"})
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ApiError(400, {"message": "Invalid JSON", "details": str(e)}) from None


def _deployed(dep: Deployment, status: int = 200, location: str | None = None,
              body: Any = None) -> JSONResponse:
    headers = {"Marathon-Deployment-Id": dep.id}
    if location:
        headers["Location"] = location
    payload = body if body is not None else MarathonEmulator.result(dep)
    return JSONResponse(payload, status_code=status, headers=headers)


def _location(request: Request, kind: str, path_id: str) -> str:
    return str(request.base_url).rstrip("/") + f"/v2/{kind}" + path_id


def _wants_tasks(request: Request) -> bool:
    return any(e.endswith("tasks") for e in request.query_params.getlist("embed"))


def _frame(event: dict[str, Any]) -> str:
    return f"event: {event['eventType']}\ndata: {json.dumps(event)}\n\n"


def create_app(emulator: MarathonEmulator, ticker: bool = True) -> Starlette:
    """The ASGI app serving ``emulator``; ``ticker`` advances it in the background."""
    em = emulator

    async def ping(request: Request) -> Response:
        if "json" in request.headers.get("accept", ""):
            return JSONResponse("pong")
        return PlainTextResponse("pong")

    async def info(request: Request) -> Response:
        return JSONResponse(em.info())

    async def leader(request: Request) -> Response:
        return JSONResponse({"leader": em.leader})

    async def apps(request: Request) -> Response:
        if request.method == "GET":
            q = request.query_params
            return JSONResponse({"apps": em.list_apps(q.get("id"), q.get("label"), q.get("cmd"),
                                                      _wants_tasks(request))})
        body = await _json_body(request)
        if request.method == "POST":
            app, dep = em.create_app(body, _flag(request, "force"))
            em.api_post_event(request.url.path, request.client.host if request.client else "", body)
            return _deployed(dep, 201, _location(request, "apps", app["id"]), app)
        definitions.check_app_list(body)
        dep = em.put_apps(body, _flag(request, "force"), _flag(request, "partialUpdate", True))
        return _deployed(dep)

    async def app(request: Request) -> Response:
        app_id = request.path_params["app_id"]
        if not app_id.strip("/"):
            return await apps(request)
        if request.method == "GET":
            return JSONResponse({"app": em.get_app(app_id)})
        if request.method == "DELETE":
            return _deployed(em.delete_app(app_id, _flag(request, "force", True)))
        body = await _json_body(request)
        partial = request.method == "PATCH" or _flag(request, "partialUpdate", True)
        if request.method == "PATCH":
            em.get_app(app_id)  # PATCH never creates
        created, dep = em.put_app(app_id, body, _flag(request, "force"), partial)
        em.api_post_event(request.url.path, request.client.host if request.client else "", body)
        if created:
            return _deployed(dep, 201, _location(request, "apps", "/" + app_id.strip("/")))
        return _deployed(dep)

    async def restart(request: Request) -> Response:
        return _deployed(em.restart_app(request.path_params["app_id"], _flag(request, "force")))

    async def app_tasks(request: Request) -> Response:
        app_id = request.path_params["app_id"]
        if request.method == "GET":
            return JSONResponse({"tasks": em.app_tasks(app_id)})
        scale = _flag(request, "scale")
        if scale and _flag(request, "wipe"):
            raise ApiError(400, {"message": "You cannot use scale and wipe at the same time."})
        tasks, dep = em.kill_app_tasks(app_id, request.query_params.get("host"), scale,
                                       _flag(request, "force"))
        return _deployed(dep) if dep else JSONResponse({"tasks": tasks})

    async def app_task(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        em.get_app(request.path_params["app_id"])
        tasks, dep = em.kill_tasks([task_id], _flag(request, "scale"), _flag(request, "force"))
        if not tasks:
            raise ApiError(404, {"message": f"Task '{task_id}' does not exist"})
        return _deployed(dep) if dep else JSONResponse({"task": tasks[0]})

    async def versions(request: Request) -> Response:
        return JSONResponse({"versions": em.app_versions(request.path_params["app_id"])})

    async def version(request: Request) -> Response:
        p = request.path_params
        return JSONResponse(em.app_version(p["app_id"], p["version"]))

    async def tasks(request: Request) -> Response:
        return JSONResponse({"tasks": em.list_tasks(request.query_params.get("status"))})

    async def tasks_delete(request: Request) -> Response:
        body = await _json_body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise ApiError(422, {"message": "Object is not valid",
                                 "details": [{"path": "/ids", "errors": ["is required"]}]})
        killed, dep = em.kill_tasks(ids, _flag(request, "scale"), _flag(request, "force"))
        return _deployed(dep) if dep else JSONResponse({"tasks": killed})

    async def groups(request: Request) -> Response:
        gid = request.path_params.get("group_id", "/")
        if request.method == "GET":
            return JSONResponse(em.get_group(gid, _wants_tasks(request)))
        if request.method == "DELETE":
            return _deployed(em.delete_group(gid, _flag(request, "force")))
        body = await _json_body(request)
        if isinstance(body, dict):  # Marathon reads the whole GroupUpdate before validating it
            target = gid
            if request.method == "POST" and isinstance(body.get("id"), str):
                target = normalize_id(body["id"], normalize_id(gid))
            definitions.check_group_update(body, target)
        if request.method == "POST":
            dep = em.put_group(gid, body, _flag(request, "force"), create=True)
            created = normalize_id(body["id"], normalize_id(gid))
            return _deployed(dep, 201, _location(request, "groups", created))
        dry = _flag(request, "dryRun")
        dep = em.put_group(gid, body, _flag(request, "force"), dry_run=dry)
        if dry:
            return JSONResponse({"steps": Deployment.to_json(dep)["steps"]})
        return _deployed(dep)

    async def group_versions(request: Request) -> Response:
        return JSONResponse(em.group_versions(request.path_params.get("group_id", "/")))

    async def group_version(request: Request) -> Response:
        p = request.path_params
        if request.method == "PUT":  # marathon-python's rollback_group: a group path, no body
            await _json_body(request)
        return JSONResponse(em.group_version(p.get("group_id", "/"), p["version"]))

    async def deployments(request: Request) -> Response:
        return JSONResponse(em.list_deployments())

    async def deployment(request: Request) -> Response:
        force = _flag(request, "force")
        revert = em.cancel_deployment(request.path_params["dep_id"], force)
        if revert is None:
            return Response(status_code=202)
        return _deployed(revert, body={"deploymentId": revert.id, "version": revert.version})

    async def queue(request: Request) -> Response:
        return JSONResponse({"queue": em.queue()})

    async def queue_delay(request: Request) -> Response:
        em.reset_delay(request.path_params["app_id"])
        return Response(status_code=204)

    async def events(request: Request) -> Response:
        sub = em.events.subscribe(request.query_params.getlist("event_type"))
        peer = request.client.host if request.client else ""

        async def stream() -> AsyncIterator[str]:
            try:
                yield _frame({"eventType": "event_stream_attached", "timestamp": _now(em),
                              "remoteAddress": peer})
                while True:
                    try:
                        event = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_SECONDS)
                    except TimeoutError:
                        yield "\n"
                        continue
                    yield _frame(event)
            finally:
                em.events.unsubscribe(sub)

        return StreamingResponse(stream(), media_type="text/event-stream")

    # sandbox controls ------------------------------------------------------------------

    async def sb_health(request: Request) -> Response:
        body = await _json_body(request)
        try:
            em.set_health(request.path_params["app_id"], body.get("mode", ""))
        except ValueError as e:
            raise ApiError(422, {"message": str(e)}) from None
        return JSONResponse({"ok": True})

    async def sb_unavailable(request: Request) -> Response:
        body = await _json_body(request)
        em.set_unavailable(float(body.get("seconds", 0)))
        return JSONResponse({"ok": True})

    async def sb_step(request: Request) -> Response:
        body = await _json_body(request)
        em.set_step_seconds(float(body["seconds"]))
        return JSONResponse({"ok": True, "step_seconds": em.step_seconds})

    async def sb_stats(request: Request) -> Response:
        if request.method == "DELETE":
            em.requests.clear()
        return JSONResponse({"requests": sum(em.requests.values()),
                             "by_route": dict(em.requests), "tasks": em.task_count(),
                             "events": em.events.published, "step_seconds": em.step_seconds})

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"message": f"URI not found: {request.url.path}"}, status_code=404)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    A = "{app_id:path}"
    G = "{group_id:path}"
    routes = [
        Route("/ping", ping),
        Route("/v2/info", info),
        Route("/v2/leader", leader),
        Route("/v2/apps", apps, methods=["GET", "POST", "PUT", "PATCH"]),
        Route(f"/v2/apps/{A}/restart", restart, methods=["POST"]),
        Route(f"/v2/apps/{A}/tasks/{{task_id}}", app_task, methods=["DELETE"]),
        Route(f"/v2/apps/{A}/tasks", app_tasks, methods=["GET", "DELETE"]),
        Route(f"/v2/apps/{A}/versions/{{version}}", version),
        Route(f"/v2/apps/{A}/versions", versions),
        Route(f"/v2/apps/{A}", app, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/v2/tasks", tasks),
        Route("/v2/tasks/delete", tasks_delete, methods=["POST"]),
        Route("/v2/groups", groups, methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/v2/groups/versions", group_versions),
        Route("/v2/groups/versions/{version}", group_version, methods=["GET", "PUT"]),
        Route(f"/v2/groups/{G}/versions/{{version}}", group_version, methods=["GET", "PUT"]),
        Route(f"/v2/groups/{G}/versions", group_versions),
        Route(f"/v2/groups/{G}", groups, methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/v2/deployments", deployments),
        Route("/v2/deployments/{dep_id}", deployment, methods=["DELETE"]),
        Route("/v2/queue", queue),
        Route(f"/v2/queue/{A}/delay", queue_delay, methods=["DELETE"]),
        Route("/v2/events", events),
        Route(f"/_sandbox/apps/{A}/health", sb_health, methods=["POST"]),
        Route("/_sandbox/unavailable", sb_unavailable, methods=["POST"]),
        Route("/_sandbox/step", sb_step, methods=["POST"]),
        Route("/_sandbox/stats", sb_stats, methods=["GET", "DELETE"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(run_ticker(lambda: [em])) if ticker else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    starlette = Starlette(routes=routes, lifespan=lifespan,
                          exception_handlers={404: not_found, ApiError: api_error})
    starlette.add_middleware(_MarathonHeaders, emulator=em)
    return starlette


def _now(em: MarathonEmulator) -> str:
    return iso(em.clock())


class _MarathonHeaders:
    """Counts API calls, answers 503 during a simulated leader election, and adds the
    headers every Marathon response carries."""

    def __init__(self, app: ASGIApp, emulator: MarathonEmulator):
        self.app = app
        self.em = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        segs = [s for s in path.split("/") if s][:2]
        self.em.requests[f"{scope['method']} /{'/'.join(segs)}"] += 1
        extra = [(b"x-marathon-leader", f"http://{self.em.leader}".encode()),
                 (b"cache-control", b"no-cache, no-store, must-revalidate"),
                 (b"pragma", b"no-cache"), (b"expires", b"0")]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        if self.em.unavailable():
            response = JSONResponse({"message": "Could not determine the current leader"},
                                    status_code=503)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


async def run_ticker(emulators: Callable[[], Iterable[MarathonEmulator]],
                     max_sleep: float = 0.25) -> None:
    """Advance emulators when their next task transition is due (or when woken)."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def waker() -> None:
        loop.call_soon_threadsafe(wake.set)

    known: list[MarathonEmulator] = []
    try:
        while True:
            ems = list(emulators())
            for em in ems:
                if em not in known:
                    em.add_waker(waker)
                    known.append(em)
            delay = max_sleep
            for em in ems:
                due = em.next_due()
                if due is not None:
                    delay = min(delay, max(0.0, due - em.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay + 0.001)
            wake.clear()
            for em in ems:
                em.advance()
    finally:
        for em in known:
            em.remove_waker(waker)
