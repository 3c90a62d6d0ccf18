"""Name the AWS operation an HTTP request asks for, as ``"<service>:<Operation>"``.

The service comes from the SigV4 credential scope (every SDK signs, even
against an emulator); the operation from ``X-Amz-Target`` (JSON protocols),
the ``Action`` field (query/EC2 protocols) or, for REST protocols (Route53,
S3), from matching method and path against botocore's own service model.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

import botocore.loaders

# Signing names that differ from the names used in operation strings.
_SIGNING_TO_SERVICE = {"elasticloadbalancing": "elb", "monitoring": "cloudwatch"}
_ELBV2_VERSION = "2015-12-01"

_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Operation:
    service: str  # short name used in operation strings: ec2, elb, elbv2, route53, s3 ...
    name: str  # AWS operation name, e.g. RunInstances
    region: str
    protocol: str  # botocore protocol: ec2, query, rest-xml, json, rest-json

    def __str__(self) -> str:
        return f"{self.service}:{self.name}"


@dataclass(frozen=True)
class _RestRoute:
    name: str
    method: str
    path: re.Pattern[str]
    query: dict[str, str | None]  # required query keys (value None: any value)
    headers: tuple[str, ...]  # required headers, as WSGI environ keys
    literal_len: int


class _ModelCache:
    """botocore service models, loaded on first use (loading all up front costs seconds)."""

    def __init__(self) -> None:
        self._loader = botocore.loaders.Loader()
        self._models: dict[str, dict] = {}
        self._routes: dict[str, list[_RestRoute]] = {}
        self._lock = threading.Lock()

    def model(self, service: str) -> dict | None:
        with self._lock:
            if service not in self._models:
                try:
                    self._models[service] = self._loader.load_service_model(service, "service-2")
                except Exception:  # unknown service: identify by method and path only
                    self._models[service] = {}
            return self._models[service] or None

    def protocol(self, service: str) -> str:
        model = self.model(service)
        return model["metadata"]["protocol"] if model else "unknown"

    def rest_routes(self, service: str) -> list[_RestRoute]:
        model = self.model(service)
        if model is None:
            return []
        with self._lock:
            if service not in self._routes:
                self._routes[service] = _compile_routes(model)
            return self._routes[service]


def _compile_routes(model: dict) -> list[_RestRoute]:
    routes = []
    for name, op in model["operations"].items():
        http = op.get("http", {})
        uri = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        required: dict[str, str | None] = {}
        for part in filter(None, query.split("&")):
            key, eq, value = part.partition("=")
            required[key] = value if eq else None
        # Operations sharing a URI (PutObject/CopyObject, DeleteObject/
        # AbortMultipartUpload) differ by required query fields or headers.
        headers = []
        input_shape = model["shapes"].get(op.get("input", {}).get("shape", ""), {})
        for member in input_shape.get("required", []):
            spec = input_shape.get("members", {}).get(member, {})
            if spec.get("location") == "querystring":
                required.setdefault(spec["locationName"], None)
            elif spec.get("location") == "header":
                headers.append("HTTP_" + spec["locationName"].upper().replace("-", "_"))
        pattern = ""
        literal = 0
        for piece in re.split(r"(\{[^}]+\})", path):
            if piece.startswith("{"):
                pattern += "(.+)" if piece.endswith("+}") else "([^/]+)"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        # A trailing slash is optional in practice (SDKs differ on it).
        pattern = pattern.rstrip("/") + "/?"
        routes.append(
            _RestRoute(
                name,
                http.get("method", "POST"),
                re.compile(pattern + r"\Z"),
                required,
                tuple(headers),
                literal,
            )
        )
    return routes


_models = _ModelCache()


def identify(environ: dict, body: bytes) -> Operation | None:
    """The operation a WSGI request asks for, or None when it cannot be told."""
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return None
    region, signing_name = match.group(1), match.group(2)
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "/") or "/"
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)

    target = environ.get("HTTP_X_AMZ_TARGET")
    action = _action(environ, body, query)
    service = _SIGNING_TO_SERVICE.get(signing_name, signing_name)
    if service == "elb" and action is not None and _version(environ, body, query) == _ELBV2_VERSION:
        service = "elbv2"
    protocol = _models.protocol(service)

    if target:
        return Operation(service, target.rpartition(".")[2], region, protocol)
    if action:
        return Operation(service, action, region, protocol)
    name = _rest_operation(service, method, path, query, environ)
    return Operation(service, name or f"{method} {path}", region, protocol)


def _form(environ: dict, body: bytes) -> dict[str, list[str]]:
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}


def _action(environ: dict, body: bytes, query: dict[str, list[str]]) -> str | None:
    values = _form(environ, body).get("Action") or query.get("Action")
    return values[0] if values else None


def _version(environ: dict, body: bytes, query: dict[str, list[str]]) -> str | None:
    values = _form(environ, body).get("Version") or query.get("Version")
    return values[0] if values else None


def _rest_operation(
    service: str, method: str, path: str, query: dict[str, list[str]], environ: dict
) -> str | None:
    best: tuple[int, int] | None = None
    found = None
    for route in _models.rest_routes(service):
        if route.method != method or not route.path.match(path):
            continue
        if any(
            key not in query or (value is not None and query[key][0] != value)
            for key, value in route.query.items()
        ):
            continue
        if any(header not in environ for header in route.headers):
            continue
        score = (len(route.query) + len(route.headers), route.literal_len)
        if best is None or score > best:
            best, found = score, route.name
    return found
