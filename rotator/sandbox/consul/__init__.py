"""An emulator of the Consul v1 HTTP API: catalog, health, checks, KV, sessions, blocking queries.

Embedding::

    core = ConsulCore(["cn-north-1", "ap-southeast-1"], acl_token=None)
    with ConsulServer(core, port=0) as server:       # real HTTP on 127.0.0.1
        core.dc("cn-north-1").register_service({...}) # or in-process, as a registrator
    core.close()

Standalone: ``python -m rotator.sandbox.consul --port 8500 --datacenter cn-north-1``.
"""

from rotator.sandbox.consul.app import create_app
from rotator.sandbox.consul.core import ConsulCore
from rotator.sandbox.consul.datacenter import Datacenter
from rotator.sandbox.consul.model import ConsulError
from rotator.sandbox.consul.server import ConsulServer

__all__ = ["ConsulCore", "ConsulError", "ConsulServer", "Datacenter", "create_app"]
