"""`rotate serve`: a long-running controller for a team, with a web dashboard, notifications
and Prometheus metrics, over the same record store and controls as the CLI."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from rotator.errors import InputError

TOKEN_ENV = "ROTATOR_SERVE_TOKEN"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8686`` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
        raise InputError(f"expected HOST:PORT, got {text!r}", field="--listen")
    return host.strip("[]"), int(port)


def read_token(token_file: str | None) -> str | None:
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read the token: {exc.strerror}", file=token_file,
                             field="--token-file") from None
        if not token:
            raise InputError("the token file is empty", file=token_file, field="--token-file")
        return token
    return os.environ.get(TOKEN_ENV) or None


def setup_logging(redactor) -> None:
    from rotator.serve.secrets import ScrubbingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubbingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # the Marathon client says "Got response from ..." on every read of the live views
    logging.getLogger("marathon").setLevel(logging.WARNING)


def serve(project, *, listen: str, token_file: str | None = None, public_url: str | None = None,
          resume_paused: bool | None = None) -> None:
    import uvicorn

    from rotator.environment import load_environment
    from rotator.serve.app import create_app
    from rotator.serve.auth import Access, is_loopback
    from rotator.serve.service import ServeSettings, Service
    from rotator.wiring import make_store

    host, port = parse_listen(listen)
    token = read_token(token_file)
    loopback = is_loopback(host)
    if not loopback and not token:
        raise InputError(f"{listen} is reachable beyond this machine: give a token "
                         f"({TOKEN_ENV} or --token-file)", field="--listen")
    env = load_environment(project.root)
    store = make_store(project, env)
    settings = ServeSettings(host=host, port=port, token=token, public_url=public_url,
                             resume_paused=resume_paused)
    service = Service(project, env, store, settings)
    setup_logging(service.redactor)
    app = create_app(service, Access(token, loopback_only=loopback))
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=3, lifespan="on")
