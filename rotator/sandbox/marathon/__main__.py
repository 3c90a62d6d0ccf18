"""python -m rotator.sandbox.marathon --host 127.0.0.1 --port 8080 [--agents 3] [--step-seconds 1.0]"""

from __future__ import annotations

import argparse
import signal
import sys

import uvicorn

from . import Agent, MarathonEmulator, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rotator.sandbox.marathon",
                                     description="Serve one emulated Marathon 1.6 (no apps).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--agents", type=int, default=3, help="simulated agents for tasks")
    parser.add_argument("--step-seconds", type=float, default=1.0,
                        help="time of each simulated task transition")
    args = parser.parse_args(argv)
    agents = [Agent(f"agent-{i}", f"agent-{i}.sandbox.internal") for i in range(1, args.agents + 1)]
    emulator = MarathonEmulator(agents, step_seconds=args.step_seconds,
                                leader=f"{args.host}:{args.port}")
    print(f"Marathon emulator on http://{args.host}:{args.port} "
          f"({args.agents} agents, {args.step_seconds}s per step)", flush=True)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
    # handler that was there before: make that one exit with status 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    uvicorn.run(create_app(emulator), host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
