"""The address book over HTTP, for what runs outside the world (a bench, ``curl``).

``GET /addresses`` lists where every private address of the world listens on loopback;
``ip``, ``port`` and ``region`` narrow it (``/addresses?ip=10.20.10.7&port=31001``).
Each entry: ``{"ip", "port", "region", "network", "host", "endpoint_port"}``. A private
address is unique within its VPC only, so one address may have several entries.
"""

from __future__ import annotations

from aiohttp import web

from .addresses import AddressBook
from .serving import SocketServer, bind


class AddressLookup:
    def __init__(self, book: AddressBook) -> None:
        self.book = book
        self.server = SocketServer(self._handle, bind())

    @property
    def url(self) -> str:
        return f"{self.server.endpoint.url}/addresses"

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != "/addresses" or request.method != "GET":
            return web.json_response({"error": "GET /addresses only"}, status=404)
        query = request.query
        try:
            port = int(query["port"]) if "port" in query else None
        except ValueError:
            return web.json_response({"error": "port is a number"}, status=400)
        found = [{"ip": ip, "port": p, "region": region, "network": network,
                  "host": endpoint.host, "endpoint_port": endpoint.port}
                 for ip, p, region, network, endpoint in self.book.entries()
                 if query.get("ip", ip) == ip and (port is None or port == p)
                 and query.get("region", region) == region]
        return web.json_response(sorted(found, key=lambda e: (e["ip"], e["port"],
                                                              e["region"], e["network"])))
