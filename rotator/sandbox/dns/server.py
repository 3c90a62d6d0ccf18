"""The sandbox's DNS server: UDP and TCP on one loopback port, answering from the zones."""

from __future__ import annotations

import logging
import random
import socketserver

from dnslib import RCODE, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from .answers import LbAddress, ZoneAnswers, reply_to
from .zones import ZoneSource

log = logging.getLogger("rotator.sandbox.dns")


class _Resolver(BaseResolver):
    def __init__(self, answers: ZoneAnswers):
        self.answers = answers

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        try:
            return reply_to(request, self.answers)
        except Exception:  # one bad question must not take the server thread down
            log.exception("DNS answer to %s failed", request.q.qname)
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL
            return reply


class _Quiet(DNSLogger):
    """dnslib prints every query by default; the world's log has no room for that."""

    def __init__(self) -> None:
        super().__init__(log="-recv,-send,-request,-reply,-truncated,-data", prefix=False,
                         logf=lambda message: log.debug("%s", message))


class _SerialUDPServer(socketserver.UDPServer):
    """Answers datagrams one after the other in the serving thread. An answer is a few
    hundred microseconds of work; a thread per datagram (dnslib's default) costs more
    than that, and under a burst of expiring caches each new thread waits for the GIL."""

    allow_reuse_address = True


class SandboxDns:
    """Listens on ``host`` (loopback) at one port for both UDP and TCP.

    ``lb_address(dns_name)`` gives a load balancer's loopback address (None: no such
    balancer); ``rng`` is the source of the weighted choices (tests inject one).
    """

    def __init__(self, zones: ZoneSource, lb_address: LbAddress, *, host: str = "127.0.0.1",
                 port: int = 0, rng: random.Random | None = None):
        self.host = host
        self._requested_port = port
        self.answers = ZoneAnswers(zones, lb_address, rng)
        self._servers: list[DNSServer] = []

    def start(self, attempts: int = 20) -> SandboxDns:
        resolver = _Resolver(self.answers)
        for _ in range(attempts):
            udp = DNSServer(resolver, address=self.host, port=self._requested_port,
                            logger=_Quiet(), server=_SerialUDPServer)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(resolver, address=self.host, port=port, tcp=True, logger=_Quiet())
            except OSError:
                udp.server.server_close()
                if self._requested_port:
                    raise
                continue  # the UDP port's TCP twin is taken: try another free port
            self._servers = [udp, tcp]
            for server in self._servers:
                server.start_thread()
            self.port = port
            return self
        raise OSError(f"no free port on {self.host} for both UDP and TCP")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()
        self._servers = []

    def __enter__(self) -> SandboxDns:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

