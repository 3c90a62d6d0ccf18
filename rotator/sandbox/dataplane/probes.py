"""Health probes over real HTTP and TCP, as a load balancer node or Marathon sends them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from .addresses import Endpoint


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    kind: str  # "ok", "status", "timeout", "refused"
    status: int | None = None
    detail: str = ""


REFUSED = ProbeOutcome(False, "refused", detail="connection refused")


def probe_session() -> aiohttp.ClientSession:
    """Probes close their connection after each check, as ALB nodes do."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0),
                                 auto_decompress=False)


async def probe_http(session: aiohttp.ClientSession, endpoint: Endpoint | None, path: str,
                     timeout: float, healthy: Callable[[int], bool],
                     headers: dict[str, str] | None = None) -> ProbeOutcome:
    if endpoint is None:
        return REFUSED
    try:
        async with session.get(endpoint.url + (path if path.startswith("/") else "/" + path),
                               headers=headers, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            await response.read()
            if healthy(response.status):
                return ProbeOutcome(True, "ok", response.status)
            return ProbeOutcome(False, "status", response.status,
                                f"HTTP {response.status}")
    except TimeoutError:
        return ProbeOutcome(False, "timeout", detail=f"no answer in {timeout:.2f}s")
    except (aiohttp.ClientError, OSError) as exc:
        return ProbeOutcome(False, "refused", detail=str(exc) or type(exc).__name__)


async def probe_tcp(endpoint: Endpoint | None, timeout: float) -> ProbeOutcome:
    if endpoint is None:
        return REFUSED
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port), timeout)
    except TimeoutError:
        return ProbeOutcome(False, "timeout", detail=f"no connection in {timeout:.2f}s")
    except OSError as exc:
        return ProbeOutcome(False, "refused", detail=str(exc))
    writer.close()
    return ProbeOutcome(True, "ok")


def status_matcher(spec: str) -> Callable[[int], bool]:
    """An ALB ``Matcher.HttpCode``: "200", "200,202" or "200-299"."""
    ranges = []
    for part in str(spec or "200").split(","):
        low, _, high = part.strip().partition("-")
        ranges.append((int(low), int(high or low)))
    return lambda code: any(lo <= code <= hi for lo, hi in ranges)
