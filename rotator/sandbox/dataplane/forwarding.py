"""Forward one HTTP request to an upstream endpoint and relay its answer."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .addresses import Endpoint

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailers", "transfer-encoding", "upgrade", "content-length"})


def _headers(headers: object, extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}  # type: ignore[attr-defined]
    out.update(extra or {})
    return out


async def forward(session: aiohttp.ClientSession, target: Endpoint, request: web.BaseRequest,
                  body: bytes, extra_headers: dict[str, str] | None = None,
                  timeout: float | None = None) -> web.Response:
    """The upstream's answer; raises aiohttp/OS errors when there is none."""
    client_timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout) if timeout else None
    async with session.request(request.method, target.url + str(request.rel_url),
                               headers=_headers(request.headers, extra_headers),
                               data=body or None, allow_redirects=False,
                               timeout=client_timeout) as upstream:
        payload = await upstream.read()
        return web.Response(status=upstream.status, body=payload,
                            headers=_headers(upstream.headers))
