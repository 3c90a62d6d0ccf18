"""One way to build a py-consul client: only from rotator's configured values.

py-consul reads ``CONSUL_HTTP_ADDR``, ``CONSUL_HTTP_SSL``, ``CONSUL_HTTP_SSL_VERIFY`` and,
whatever is passed to it, ``CONSUL_HTTP_TOKEN`` from the environment
(``consul/base.py``: ``self.token = os.getenv("CONSUL_HTTP_TOKEN", token)``). One
operator's shell token would then replace every group's token, and an address in the shell
could send one group's queries to another cluster. Every value is passed explicitly here
and the token is set after construction, so the environment has no say.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import consul

from rotator.tls import DEFAULT_TLS, TlsSettings


@dataclass(frozen=True)
class ConsulEndpoint:
    address: str
    datacenter: str | None = None
    token: str | None = None
    tls: TlsSettings = DEFAULT_TLS

    def __repr__(self) -> str:  # never shows the token
        return f"ConsulEndpoint({self.address!r}, datacenter={self.datacenter!r})"

    @property
    def parts(self) -> tuple[str, str, int]:
        parts = urlsplit(self.address if "://" in self.address else f"http://{self.address}")
        return parts.scheme or "http", parts.hostname or "127.0.0.1", parts.port or 8500

    @property
    def url(self) -> str:
        scheme, host, port = self.parts
        return f"{scheme}://{host}:{port}"


def consul_client(endpoint: ConsulEndpoint, timeout: float) -> consul.Consul:
    scheme, host, port = endpoint.parts
    client = consul.Consul(host=host, port=port, scheme=scheme, token=endpoint.token,
                           dc=endpoint.datacenter, verify=endpoint.tls.requests_verify(),
                           cert=endpoint.tls.requests_cert(), connections_timeout=timeout)
    client.token = endpoint.token  # the constructor prefers CONSUL_HTTP_TOKEN to the argument
    return client
