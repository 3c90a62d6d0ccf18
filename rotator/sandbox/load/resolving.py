"""Name resolution as one simulated client does it: the sandbox's DNS, its own cache.

Every client keeps its own cache (name -> address until an expiry). A
TTL-honouring client keeps an answer for the smallest TTL of the answer's chain
(the CNAME's and the load balancer's A record's), as a caching stub resolver
does. A TTL-ignoring client keeps it ``overstay`` seconds longer: 30 s by
default, the JVM's default ``networkaddress.cache.ttl``, standing for the JVMs
and resolvers that cache beyond what the record says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from .loopback import require_loopback

DEFAULT_OVERSTAY = 30.0


class DnsFailure(Exception):
    """The name did not resolve (NXDOMAIN, no answer, no server, timeout)."""


@dataclass(frozen=True)
class Resolved:
    addresses: tuple[str, ...]
    ttl: float


Lookup = Callable[[str], Awaitable[Resolved]]


class SandboxResolver:
    """Asks the sandbox's DNS server, and nothing else: no system resolver, no cache."""

    def __init__(self, host: str, port: int, timeout: float = 2.0):
        require_loopback(host, "the sandbox's DNS server")
        self.resolver = dns.asyncresolver.Resolver(configure=False)
        self.resolver.nameservers = [host]
        self.resolver.port = port
        self.resolver.timeout = timeout
        self.resolver.lifetime = timeout
        self.resolver.cache = None

    async def __call__(self, name: str) -> Resolved:
        try:
            answer = await self.resolver.resolve(name, "A", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers,
                dns.exception.Timeout) as exc:
            raise DnsFailure(f"{name}: {exc.__class__.__name__}") from exc
        addresses = tuple(rdata.address for rdata in answer)
        ttl = min(rrset.ttl for rrset in answer.response.answer)
        return Resolved(addresses, float(ttl))


@dataclass
class _Entry:
    address: str
    expires: float


class ClientCache:
    """One client's DNS cache; ``clock`` is monotonic seconds (injected in tests)."""

    def __init__(self, lookup: Lookup, clock: Callable[[], float], overstay: float = 0.0):
        self.lookup = lookup
        self.clock = clock
        self.overstay = overstay
        self._entries: dict[str, _Entry] = {}
        self.lookups = 0

    @property
    def honours_ttl(self) -> bool:
        return self.overstay == 0

    async def address(self, name: str) -> str:
        entry = self._entries.get(name)
        if entry is not None and self.clock() < entry.expires:
            return entry.address
        resolved = await self.lookup(name)
        self.lookups += 1
        if not resolved.addresses:
            raise DnsFailure(f"{name}: no address")
        for address in resolved.addresses:  # refuse before anything is cached or sent
            require_loopback(address, name)
        entry = _Entry(resolved.addresses[0], self.clock() + resolved.ttl + self.overstay)
        self._entries[name] = entry
        return entry.address
