"""Runs HTTP and TCP checks, against loopback targets only.

The datacenter never schedules a probe for another address; redirects are
followed only while they stay on loopback, so no check ever leaves the machine.
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request

from rotator.sandbox.consul.model import CRITICAL, PASSING, WARNING

_MAX_OUTPUT = 4096


class _LoopbackRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        from rotator.sandbox.consul.datacenter import is_loopback_target

        if not is_loopback_target("http", newurl):
            raise urllib.error.HTTPError(newurl, code, "redirect away from loopback refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def http_probe(url: str, method: str, headers: dict[str, list[str]], body: str, timeout: float,
               tls_skip_verify: bool) -> tuple[str, str]:
    handlers: list[urllib.request.BaseHandler] = [_LoopbackRedirects()]
    if tls_skip_verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, method=method, data=body.encode() if body else None)
    req.add_header("User-Agent", "Consul Health Check")
    for name, values in headers.items():
        for value in values:
            req.add_header(name, value)
    try:
        with opener.open(req, timeout=timeout) as resp:
            text = resp.read(_MAX_OUTPUT).decode("utf-8", "replace")
            return PASSING, f"HTTP {method} {url}: {resp.status} {resp.reason} Output: {text}"
    except urllib.error.HTTPError as exc:
        text = ""
        try:
            text = exc.read(_MAX_OUTPUT).decode("utf-8", "replace")
        except Exception:  # the body is only informative
            pass
        status = WARNING if exc.code == 429 else CRITICAL
        return status, f"HTTP {method} {url}: {exc.code} {exc.reason} Output: {text}"
    except (OSError, ValueError) as exc:
        return CRITICAL, f"Get {url!r}: {exc}"


def tcp_probe(target: str, timeout: float) -> tuple[str, str]:
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return PASSING, f"TCP connect {target}: Success"
    except (OSError, ValueError) as exc:
        return CRITICAL, f"dial tcp {target}: {exc}"


def run_probe(kind: str, target: str, method: str, headers: dict[str, list[str]], body: str,
              timeout: float, tls_skip_verify: bool) -> tuple[str, str]:
    if kind == "http":
        return http_probe(target, method, headers, body, timeout, tls_skip_verify)
    return tcp_probe(target, timeout)
