"""``python -m rotator.sandbox.aws --host 127.0.0.1 --port PORT``: serve until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading

from .emulator import AwsEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rotator.sandbox.aws")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--no-ami-validation", action="store_true", help="accept any AMI id in RunInstances"
    )
    parser.add_argument("--warm", nargs="*", default=[], metavar="REGION")
    args = parser.parse_args(argv)

    emulator = AwsEmulator(args.host, args.port, ami_validation=not args.no_ami_validation)
    emulator.start()
    if args.warm:
        emulator.warm(*args.warm)
    print(emulator.url, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
