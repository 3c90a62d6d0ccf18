"""``python -m rotator.sandbox.consul --host 127.0.0.1 --port 8500 [--datacenter NAME ...]``.

Serves until SIGINT/SIGTERM (uvicorn handles both and shuts down cleanly).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import uvicorn

from rotator.sandbox.consul.app import create_app
from rotator.sandbox.consul.core import ConsulCore
from rotator.sandbox.consul.server import bind_socket


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotator.sandbox.consul",
                                     description="Consul v1 HTTP API emulator (loopback only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--datacenter", action="append", default=None,
                        help="datacenter name (repeat for several; the first is the local one)")
    parser.add_argument("--node-name", default=None)
    parser.add_argument("--acl-token", default=os.environ.get("CONSUL_EMULATOR_ACL_TOKEN"),
                        help="require this token on every /v1 request")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the emulator binds to loopback only")
    core = ConsulCore(args.datacenter or ["dc1"], node_name=args.node_name, acl_token=args.acl_token)
    sock = bind_socket(args.host, args.port)
    print(f"consul emulator on http://{args.host}:{sock.getsockname()[1]} "
          f"datacenters={','.join(core.datacenters)}", flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(core), log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=1, backlog=4096))

    def handle_exit(sig: int, frame: object) -> None:
        # A second SIGINT forces the exit; blocked queries are released at once so the
        # graceful shutdown is prompt, and the process then exits 0 (not re-raising the signal).
        server.force_exit = server.should_exit and sig == signal.SIGINT
        server.should_exit = True
        core.notifier.close()
        core.log.close()

    server.handle_exit = handle_exit  # type: ignore[method-assign]
    core.on_leave(lambda: handle_exit(signal.SIGTERM, None))  # /v1/agent/leave ends the process
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        core.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
