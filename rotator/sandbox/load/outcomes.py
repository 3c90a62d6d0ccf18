"""What one request ended as: served (by which slot, AMI, app) or failed, and why."""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass

import aiohttp

from .resolving import DnsFailure

CAUSES = ("refused", "reset", "timeout", "5xx", "dns", "other")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    started: float  # seconds since the run began
    latency: float  # seconds, name resolution included (what a user waits)
    honours_ttl: bool
    cause: str | None = None  # one of CAUSES when the request failed
    status: int | None = None
    slot: str = UNKNOWN
    ami: str = UNKNOWN
    app: str = UNKNOWN
    group: str = UNKNOWN
    address: str = ""

    @property
    def ok(self) -> bool:
        return self.cause is None


def served_by(body: bytes) -> dict[str, str]:
    """The task's identity from its JSON answer (``{app, task, slot, ami, group, version}``)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(data[k]) for k in ("slot", "ami", "app", "group") if data.get(k) is not None}


def cause_of_status(status: int) -> str | None:
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "other"
    return None


def cause_of_error(exc: BaseException) -> str:
    """Sort a failed request by what the user would have seen."""
    if isinstance(exc, DnsFailure):
        return "dns"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED:
            return "refused"
        if isinstance(os_error, TimeoutError):
            return "timeout"
        return "other"
    # the peer went away mid-request: closed before answering, or mid-body
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError
                  | ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    return "other"
