"""TLS towards Marathon and Consul, in the terms requests takes (``verify``, ``cert``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TlsSettings:
    """How to talk TLS to a server: CA bundle, client certificate, verification."""

    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    def requests_verify(self) -> bool | str:
        if not self.verify:
            return False
        return self.ca_bundle or True

    def requests_cert(self) -> str | tuple[str, str] | None:
        if self.client_cert and self.client_key:
            return (self.client_cert, self.client_key)
        return self.client_cert


DEFAULT_TLS = TlsSettings()
