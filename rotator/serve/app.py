"""The web side of `rotate serve`: the dashboard, its JSON API, its event stream, /metrics.

Everything the page needs is served from this package (no framework fetched from
anywhere). Every JSON answer passes through the service's redactor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rotator.errors import InputError
from rotator.serve.actions import submit
from rotator.serve.auth import COOKIE, Access
from rotator.serve.hub import sse
from rotator.serve.service import Service
from rotator.serve.traffic_chart import render_svg
from rotator.serve.views import history_view

STATIC = resources.files("rotator.serve") / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(service: Service, access: Access, *, manage_service: bool = True) -> Starlette:
    def json_answer(data: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(service.redactor.scrub(data), status_code=status)

    def group_or_404(name: str) -> str | None:
        return name if name in service.groups else None

    def set_session(response: Response, request: Request, session) -> None:
        response.set_cookie(COOKIE, access.cookie_value(session), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")

    # ------------------------------------------------------------------ pages

    async def index(request: Request) -> Response:
        if not access.may_read(request.headers, request.cookies):
            return RedirectResponse("/login", status_code=303)
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        response = HTMLResponse(html)
        if access.session_of(request.cookies) is None:  # a loopback visitor without a token
            set_session(response, request, access.new_session(authenticated=False))
        return response

    async def login_page(request: Request) -> Response:
        html = (STATIC / "login.html").read_text(encoding="utf-8")
        if request.query_params.get("failed"):
            html = html.replace("<!--failed-->", '<p class="error">wrong token</p>')
        return HTMLResponse(html)

    async def login(request: Request) -> Response:
        if not access.same_origin(request.headers):
            return _error(403, "cross-site request refused")
        # a urlencoded form of two fields: parsed here rather than with another dependency
        form = dict(parse_qsl((await request.body())[:4096].decode("utf-8", "replace")))
        if access.needs_token and not access.token_matches(str(form.get("token", ""))):
            return RedirectResponse("/login?failed=1", status_code=303)
        name = str(form.get("name", "")).strip() or "operator"
        response = RedirectResponse("/", status_code=303)
        set_session(response, request, access.new_session(authenticated=True, name=name))
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    # ------------------------------------------------------------------ API

    async def api_session(request: Request) -> Response:
        session = access.session_of(request.cookies)
        fresh = session is None
        if fresh:
            session = access.new_session(authenticated=not access.needs_token)
        response = json_answer({"csrf": access.csrf_for(session), "needs_token": access.needs_token,
                                "name": session.name, "environment": service.env.name,
                                "controller": service.owner, "groups": service.groups})
        if fresh:
            set_session(response, request, session)
        return response

    async def api_groups(request: Request) -> Response:
        return json_answer([service.summary(g) for g in service.groups])

    async def api_group(request: Request) -> Response:
        name = group_or_404(request.path_params["name"])
        if name is None:
            return _error(404, f"unknown group {request.path_params['name']!r}")
        return json_answer(service.detail(name))

    async def api_history(request: Request) -> Response:
        name = group_or_404(request.path_params["name"])
        if name is None:
            return _error(404, f"unknown group {request.path_params['name']!r}")
        return json_answer(history_view(service.board.state(name).history))

    async def api_traffic(request: Request) -> Response:
        name = group_or_404(request.path_params["name"])
        if name is None:
            return _error(404, f"unknown group {request.path_params['name']!r}")
        return json_answer(await run_in_threadpool(service.charts.series, name))

    async def api_traffic_svg(request: Request) -> Response:
        name = group_or_404(request.path_params["name"])
        if name is None:
            return _error(404, f"unknown group {request.path_params['name']!r}")
        data = service.redactor.scrub(await run_in_threadpool(service.charts.series, name))
        return Response(render_svg(data), media_type="image/svg+xml")

    async def api_act(request: Request) -> Response:
        allowed, status, why = access.may_act(request.headers, request.cookies)
        if not allowed:
            return _error(status, why)
        name = group_or_404(request.path_params["name"])
        if name is None:
            return _error(404, f"unknown group {request.path_params['name']!r}")
        action = request.path_params["action"]
        try:
            body = await request.json() if await request.body() else {}
        except json.JSONDecodeError:
            return _error(400, "the body must be JSON")
        session = access.session_of(request.cookies)
        who = (session.name if session and session.name else "dashboard")
        client = request.client.host if request.client else "?"
        try:
            result = await run_in_threadpool(
                submit, service.store, name, action, by=f"{who}@{client}", via="dashboard",
                reason=str((body or {}).get("reason", ""))[:500])
        except InputError as exc:
            return _error(409, str(exc))
        await run_in_threadpool(service.board.reload, name)
        return json_answer(result, 202)

    async def api_events(request: Request) -> Response:
        def first() -> list[str]:
            return [sse("group", service.detail(g)) for g in service.groups]

        return StreamingResponse(
            service.hub.stream(first, request.is_disconnected), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, service.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ guard

    open_paths = {"/healthz", "/login", "/logout"}

    class Guard:
        """Hosts, authentication and security headers for every request."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            request = Request(scope)
            if not access.host_allowed(request.headers):
                return await _error(421, "unexpected Host for a loopback server")(
                    scope, receive, send)
            path = scope["path"]
            if (path not in open_paths and path != "/" and not path.startswith("/static/")
                    and request.method == "GET"
                    and not access.may_read(request.headers, request.cookies)):
                return await _error(401, "the serve token is needed (log in, or "
                                         "send Authorization: Bearer TOKEN)")(scope, receive, send)

            async def with_headers(message):
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    present = {k.lower() for k, _ in headers}
                    for key, value in SECURITY_HEADERS.items():
                        if key.lower().encode() not in present:
                            headers.append((key.lower().encode(), value.encode()))
                    message = {**message, "headers": headers}
                await send(message)
            return await self.app(scope, receive, with_headers)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.hub.attach(asyncio.get_running_loop())
        if manage_service:
            await run_in_threadpool(service.start)
        try:
            yield
        finally:
            service.hub.close()
            if manage_service:
                await run_in_threadpool(service.stop)

    routes = [
        Route("/", index),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/api/session", api_session),
        Route("/api/groups", api_groups),
        Route("/api/groups/{name}", api_group),
        Route("/api/groups/{name}/history", api_history),
        Route("/api/groups/{name}/traffic", api_traffic),
        Route("/api/groups/{name}/traffic.svg", api_traffic_svg),
        Route("/api/groups/{name}/{action:str}", api_act, methods=["POST"]),
        Route("/api/events", api_events),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(Guard)
    return app
