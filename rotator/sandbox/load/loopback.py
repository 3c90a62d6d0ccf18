"""The load generator's one hard rule: nothing is sent outside 127.0.0.0/8."""

from __future__ import annotations

import ipaddress

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class NotLoopback(Exception):
    """An address outside 127.0.0.0/8 was about to be contacted; nothing was sent to it."""

    def __init__(self, address: str, name: str = ""):
        self.address, self.name = address, name
        what = f"{name} resolved to {address}" if name else f"{address}"
        super().__init__(
            f"refusing to send traffic: {what}, which is outside 127.0.0.0/8 "
            "(the sandbox's load balancers listen on loopback addresses only)")


def require_loopback(address: str, name: str = "") -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise NotLoopback(address, name) from None
    if ip.version != 4 or ip not in LOOPBACK:
        raise NotLoopback(address, name)
    return address
