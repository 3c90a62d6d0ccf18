"""Deploying a group's apps through Marathon's REST API (the ``AppDeployer`` port).

Reads go through the PyPI ``marathon`` client's models. Writes send the app JSON
exactly as written (``_send``): the client's model round trip drops empty or
false values, rejects keys it does not know, and its ``update_app`` has no
``partialUpdate=false``, so a field removed from a definition would survive.

Deployment strategy: one atomic group ``PUT /v2/groups/<root>``. Measured with
bench/marathon_deploy.py against the emulator (1 s steps, inherent time 2 s):

    N=50:  group PUT 2.03-2.06 s (1-3 % overhead, 5 HTTP calls)
           per-app PUT, 8 in parallel 2.6-3.1 s (30-55 %, 59-65 calls)
           naive sequential POST + 1 s polling 4.5-4.8 s (~130 %, 53 calls)
    N=200: 2.1-2.3 s vs 5.0 s vs 12-16 s

Marathon applies root-group changes one at a time, so N writes queue up however
parallel the client is; the group PUT also yields one deployment id to wait for,
and either every definition is accepted or none (a 422 changes nothing). Each
slot has its own Marathon, so replacing the root group's contents is intended.
``strategy="apps"`` keeps the per-app path for Marathons shared with others.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import requests
from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from rotator.apps.app_definition import (
    normalize_id,
    path_segments,
    validate_app_definition,
)
from rotator.apps.marathon_compat import (
    ConflictError,
    InternalServerError,
    MarathonClient,
    MarathonError,
    MarathonHttpError,
    NotFoundError,
)
from rotator.errors import InputError, StepFailed, TransientError
from rotator.ports import AppDeployer, AppHealth
from rotator.retries import stop_at
from rotator.tls import DEFAULT_TLS, TlsSettings

RETRY_STATUSES = {502, 503, 504}
_LOCK_ID = re.compile(r"/v2/deployments/([0-9a-fA-F-]+)")


# ---------------------------------------------------------------------------- input


def _safe_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, InternalServerError):
        return getattr(exc, "status_code", None) in RETRY_STATUSES
    # NoResponseError (the client's wrapping of connection errors) and bare MarathonError
    return isinstance(exc, MarathonError) and not isinstance(exc, MarathonHttpError)


# ---------------------------------------------------------------------------- adapter


class MarathonDeployer(AppDeployer):
    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        tls: TlsSettings = DEFAULT_TLS,
        proxy: str | None = None,
        timeout: float = 10.0,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        on_conflict: Literal["wait", "force"] = "wait",
        conflict_timeout: float = 300.0,
        strategy: Literal["group", "apps"] = "group",
        concurrency: int = 8,
        use_events: bool = True,
        poll_interval: float = 0.5,
        max_poll_interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Credentials come from the caller (read from environment variables it names);
        they are only handed to the HTTP session, never logged or put in messages."""
        if on_conflict not in ("wait", "force"):
            raise ValueError("on_conflict must be 'wait' or 'force'")
        if strategy not in ("group", "apps"):
            raise ValueError("strategy must be 'group' or 'apps'")
        self._auth = (username, password) if username and password else None
        self._token = token
        self._tls = tls
        self._proxy = proxy
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_conflict = on_conflict
        self.conflict_timeout = conflict_timeout
        self.strategy = strategy
        self.concurrency = max(1, concurrency)
        self.use_events = use_events
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self._sleep = sleep
        self._clock = clock
        self._clients: dict[str, MarathonClient] = {}
        self._no_events: set[str] = set()
        self._poll_delay: dict[str, float] = {}

    def __repr__(self) -> str:  # never shows credentials
        return f"MarathonDeployer(strategy={self.strategy!r}, on_conflict={self.on_conflict!r})"

    # -- plumbing -----------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # the proxy is configuration, never the environment
        if self._proxy:
            session.proxies = {"http": self._proxy, "https": self._proxy}
        session.verify = self._tls.requests_verify()
        session.cert = self._tls.requests_cert()
        return session

    def _client(self, url: str) -> MarathonClient:
        client = self._clients.get(url)
        if client is None:
            client = MarathonClient(url, username=self._auth[0] if self._auth else None,
                                    password=self._auth[1] if self._auth else None,
                                    auth_token=self._token,
                                    verify=self._tls.requests_verify(),
                                    timeout=self.timeout, session=self._session(),
                                    sse_session=self._session())
            self._clients[url] = client
        return client

    def _stream_headers(self) -> dict[str, str]:
        # the client sends its token on API calls but not on the event stream
        headers = {"Accept": "text/event-stream"}
        if self._token:
            headers["Authorization"] = f"token={self._token}"
        return headers

    def _retrying(self, fn: Callable[[], Any], url: str, what: str) -> Any:
        """Retry one idempotent call on 5xx-unavailable and connection errors, with backoff."""
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=self.max_backoff),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except MarathonError as e:
            if _is_transient(e):
                raise TransientError(
                    f"Marathon at {_safe_url(url)} did not answer {what} after "
                    f"{self.attempts} attempts: {_describe(e)}") from None
            raise

    def _send(self, url: str, method: str, path: str, params: dict[str, Any] | None = None,
              body: Any = None) -> Any:
        """A raw JSON request through the client's transport (auth, error mapping)."""
        data = None if body is None else json.dumps(body)
        response = self._client(url)._do_request(method, path, params=params, data=data)
        return response.json() if response.content else None

    # -- start ----------------------------------------------------------------------

    def start(self, marathon_url: str, apps: list[dict[str, Any]]) -> list[str]:
        if not apps:
            return []
        for app in apps:
            validate_app_definition(app, f"app {app.get('id')!r}" if isinstance(app, dict) else "app")
        ids = [normalize_id(a["id"]) for a in apps]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise InputError(f"app ids defined more than once: {', '.join(dup)}", field="/id")
        if self.strategy == "group":
            return [self._with_conflicts(marathon_url, ids, lambda force: self._put_group(
                marathon_url, apps, force))]
        return self._put_each(marathon_url, apps)

    def _put_group(self, url: str, apps: list[dict[str, Any]], force: bool) -> str:
        root, body = group_body(apps)
        params = {"force": "true"} if force else None
        result = self._retrying(
            lambda: self._send(url, "PUT", "/v2/groups" + (root if root != "/" else "/"),
                               params, body), url, f"PUT group {root}")
        return result["deploymentId"]

    def _put_each(self, url: str, apps: list[dict[str, Any]]) -> list[str]:
        def one(app: dict[str, Any]) -> str:
            app_id = normalize_id(app["id"])
            return self._with_conflicts(url, [app_id], lambda force: self._put_app(
                url, app_id, app, force))

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(apps))) as pool:
            return list(pool.map(one, apps))

    def _put_app(self, url: str, app_id: str, app: dict[str, Any], force: bool) -> str:
        params = {"partialUpdate": "false"}
        if force:
            params["force"] = "true"
        body = {**app, "id": app_id}
        result = self._retrying(lambda: self._send(url, "PUT", f"/v2/apps{app_id}", params, body),
                                url, f"PUT app {app_id}")
        return result["deploymentId"]

    def _with_conflicts(self, url: str, app_ids: list[str], send: Callable[[bool], str]) -> str:
        """Send; on 409 (locked by another deployment) force or wait, per ``on_conflict``:
        sent again with backoff until ``conflict_timeout``."""
        if self.on_conflict == "force":
            try:
                return send(False)
            except ConflictError:
                return self._rejected(lambda: send(True), url, app_ids)
            except MarathonHttpError as e:
                raise self._input_error(e, app_ids) from None
        retrying = Retrying(
            retry=retry_if_exception_type(ConflictError),
            stop=stop_at(self._clock() + self.conflict_timeout, self._clock),
            wait=wait_exponential(multiplier=self.poll_interval, max=self.max_poll_interval),
            sleep=self._sleep, reraise=True,
        )
        try:
            return retrying(send, False)
        except ConflictError as e:
            lock = _LOCK_ID.search(getattr(e, "error_message", "") or "")
            raise StepFailed(
                f"apps {', '.join(app_ids)} stayed locked by deployment "
                f"{lock.group(1) if lock else '(unknown)'} on {_safe_url(url)} for "
                f"{self.conflict_timeout:.0f}s") from None
        except MarathonHttpError as e:
            raise self._input_error(e, app_ids) from None

    def _rejected(self, fn: Callable[[], str], url: str, app_ids: list[str]) -> str:
        try:
            return fn()
        except MarathonHttpError as e:
            raise self._input_error(e, app_ids) from None

    @staticmethod
    def _input_error(e: MarathonHttpError, app_ids: list[str]) -> Exception:
        if e.status_code not in (400, 422):
            return e
        details = getattr(e, "error_details", None)
        paths: list[str] = []
        if isinstance(details, list):
            for d in details:
                errs = "; ".join(d.get("errors", []))
                paths.append(f"{d.get('path')}: {errs}")
        elif details:
            paths.append(str(details))
        field = details[0].get("path") if isinstance(details, list) and details else None
        who = _apps_named(field, app_ids)
        return InputError(f"Marathon rejected {who}: {e.error_message}"
                          + (f" ({'; '.join(paths)})" if paths else ""), field=field)

    # -- waiting -----------------------------------------------------------------------

    def deployment_ids(self, marathon_url: str) -> dict[str, list[str]]:
        """Running deployments: id -> affected app ids."""
        deps = self._retrying(lambda: self._client(marathon_url).list_deployments(), marathon_url,
                              "GET /v2/deployments")
        return {d.id: list(d.affected_apps or []) for d in deps}

    def affected_apps(self, marathon_url: str, deployment_ids: list[str]) -> list[str]:
        running = self.deployment_ids(marathon_url)
        return sorted({a for i in deployment_ids for a in running.get(i, [])})

    def pending(self, marathon_url: str, deployment_ids: list[str], wait: float) -> list[str]:
        if not deployment_ids:
            return []
        if wait > 0 and self.use_events and marathon_url not in self._no_events:
            try:
                return self._pending_with_events(marathon_url, deployment_ids, wait)
            except _NoEventStream:
                self._no_events.add(marathon_url)  # this Marathon has no event stream: poll
            except (requests.RequestException, ValueError):
                pass  # the stream broke: poll this time
        still = self._still(marathon_url, deployment_ids)
        if still and wait > 0:
            delay = self._poll_delay.get(marathon_url, self.poll_interval)
            self._sleep(min(wait, delay))
            self._poll_delay[marathon_url] = min(delay * 1.5, self.max_poll_interval)
            after = self._still(marathon_url, deployment_ids)
            if after != still:
                self._poll_delay[marathon_url] = self.poll_interval
            still = after
        return still

    def _still(self, url: str, ids: list[str]) -> list[str]:
        running = self.deployment_ids(url)
        return [i for i in ids if i in running]

    def _pending_with_events(self, url: str, ids: list[str], wait: float) -> list[str]:
        """Subscribe first, then look: a deployment ending in between is not missed."""
        deadline = self._clock() + wait
        client = self._client(url)
        response = client.sse_session.get(
            url.rstrip("/") + "/v2/events",
            params={"event_type": ["deployment_success", "deployment_failed"]},
            headers=self._stream_headers(), auth=client.auth, stream=True,
            timeout=(self.timeout, max(0.05, min(wait, self.max_poll_interval))),
            allow_redirects=False)
        try:
            if response.status_code in (404, 405, 406):
                raise _NoEventStream()
            if response.status_code != 200:  # e.g. 503 during an election: poll this time
                return self._still(url, ids)
            lines = response.iter_lines()
            still = self._still(url, ids)
            watched = set(still)
            while watched and self._clock() < deadline:
                try:
                    line = next(lines)
                except StopIteration:
                    break
                except requests.RequestException:  # read timeout: no event in the window
                    if self._clock() >= deadline:
                        break
                    return self._still(url, ids)
                if line.startswith(b"data:"):
                    event = json.loads(line[5:])
                    if event.get("id") in watched:
                        break
            return self._still(url, ids) if watched else still
        finally:
            response.close()

    def cancel(self, marathon_url: str, deployment_ids: list[str]) -> None:
        """Cancel each deployment; Marathon reverts its apps to what they were before."""
        client = self._client(marathon_url)
        for dep_id in deployment_ids:
            try:
                self._retrying(lambda d=dep_id: client.delete_deployment(d), marathon_url,
                               f"DELETE deployment {dep_id}")
            except NotFoundError:
                pass  # already finished or cancelled

    # -- state -------------------------------------------------------------------------

    def health(self, marathon_url: str, app_ids: list[str]) -> list[AppHealth]:
        apps = self._retrying(lambda: self._client(marathon_url).list_apps(embed_counts=True),
                              marathon_url, "GET /v2/apps")
        by_id = {a.id: a for a in apps}
        out = []
        for app_id in app_ids:
            app = by_id.get(normalize_id(app_id))
            if app is None:  # absent: wanted but nothing runs
                out.append(AppHealth(normalize_id(app_id), 1, 0, 0, False))
                continue
            out.append(AppHealth(app.id, app.instances or 0, app.tasks_running or 0,
                                 app.tasks_healthy or 0, bool(app.health_checks)))
        return out

    def report_unhealthy(self, marathon_url: str, app_ids: list[str]) -> list[str]:
        """One line per app that is not (yet) healthy, e.g. '/prod/web: 1/2 running, 0/2 healthy'."""
        lines = []
        for h in self.health(marathon_url, app_ids):
            if not h.ok:
                checks = f", {h.healthy}/{h.wanted} healthy" if h.has_health_checks else ""
                lines.append(f"{h.app_id}: {h.running}/{h.wanted} running{checks}")
        return lines


class _NoEventStream(Exception):
    pass


def _describe(e: MarathonError) -> str:
    status = getattr(e, "status_code", None)
    return f"HTTP {status}" if status else "no connection"


def _apps_named(field: str | None, app_ids: list[str]) -> str:
    """Which app a 422 detail path points at ('/apps(1)/cpus' -> the second app)."""
    m = re.match(r"^/apps\((\d+)\)", field or "")
    if m and int(m.group(1)) < len(app_ids):
        return f"app {app_ids[int(m.group(1))]}"
    if len(app_ids) == 1:
        return f"app {app_ids[0]}"
    return "apps " + ", ".join(app_ids)


def group_body(apps: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The root group (deepest common parent of the apps) and its GroupUpdate body, with
    one nested group per sub-path so that each app sits in its own parent group."""
    ids = [normalize_id(a["id"]) for a in apps]
    parents = [path_segments(i)[:-1] for i in ids]
    common: list[str] = []
    for segs in zip(*parents, strict=False):
        if all(s == segs[0] for s in segs):
            common.append(segs[0])
        else:
            break
    root = "/" + "/".join(common)

    def build(gid: str) -> dict[str, Any]:
        depth = len(path_segments(gid))
        direct = [({**a, "id": i}) for a, i in zip(apps, ids, strict=True)
                  if path_segments(i)[:-1] == path_segments(gid)]
        subs = sorted({"/" + "/".join(path_segments(i)[: depth + 1]) for i in ids
                       if len(path_segments(i)) > depth + 1 and _under(i, gid)})
        body: dict[str, Any] = {"id": gid, "apps": direct}
        if subs:
            body["groups"] = [build(s) for s in subs]
        return body

    return root, build(root)


def _under(path_id: str, gid: str) -> bool:
    return gid == "/" or path_id.startswith(gid + "/")


# ---------------------------------------------------------------------------- waiting


def wait_until_deployed(
    deployer: Any,
    marathon_url: str,
    deployment_ids: list[str],
    deadline_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    app_ids: Iterable[str] | None = None,
    poll_interval: float = 1.0,
) -> None:
    """Block until the deployments are done. At the deadline, cancel them and raise
    StepFailed naming the apps that never became healthy (Marathon itself never gives
    up on a task that never turns healthy)."""
    start = clock()
    deadline = start + deadline_seconds
    ids = list(deployment_ids)
    watched = list(app_ids) if app_ids is not None else None
    while True:
        if watched is None and hasattr(deployer, "affected_apps"):
            watched = deployer.affected_apps(marathon_url, ids)
        before = clock()
        remaining = deadline - before
        still = deployer.pending(marathon_url, ids, wait=max(0.0, min(remaining, poll_interval * 5)))
        if not still:
            return
        now = clock()
        if now >= deadline:
            ids = still
            break
        spent = now - before
        if still == ids and spent < poll_interval:
            # nothing changed and the deployer did not block: pace the polling
            sleep(min(poll_interval - spent, max(0.0, deadline - now)))
        ids = still
    apps = watched or []
    lines = deployer.report_unhealthy(marathon_url, apps) if apps else []
    deployer.cancel(marathon_url, ids)
    names = "; ".join(lines) if lines else (", ".join(apps) or "unknown apps")
    raise StepFailed(f"deployments {', '.join(ids)} did not finish within "
                     f"{deadline_seconds:g}s and were cancelled; never healthy: {names}")
