"""Secrets `rotate serve` knows of, kept out of every page, API answer and log line.

The serve token, the notification URLs (apprise URLs carry tokens in their user, password,
path or query) and the values of the variables the groups name for their credentials are
collected once; ``scrub`` replaces any of them found in a string, and a URL's user
information is masked whatever it is.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
MIN_SECRET = 4  # shorter fragments ("v1", "api") would mask ordinary words
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)


def url_fragments(url: str) -> set[str]:
    """The whole URL and each part of it that may carry a token."""
    out = {url}
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    out |= {parts.username or "", parts.password or ""}
    out |= {unquote(seg) for seg in parts.path.split("/")}
    out |= {v for _, v in parse_qsl(parts.query)}
    out.add(parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else "")
    return {s for s in out if len(s) >= MIN_SECRET and not s.isdigit()}


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        found = {s for s in secrets if s and len(s) >= MIN_SECRET}
        # longest first: a URL is masked whole before its parts are
        self._secrets = sorted(set(self._secrets) | found, key=len, reverse=True)

    def add_url(self, url: str) -> None:
        self.add(*url_fragments(url))

    def scrub_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)

    def scrub(self, value: Any) -> Any:
        """A copy of a JSON-like value with every secret masked (keys too), ready for JSON."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {self.scrub_text(str(k)): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None  # an approval's deadline is infinite: JSON has no word for it
        return value


class ScrubbingFilter(logging.Filter):
    """Masks secrets in every record passing a handler (libraries log URLs at debug)."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redactor.scrub_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # the traceback text is rendered later: keep the type, drop the message
            exc = record.exc_info[1]
            text = self.redactor.scrub_text(str(exc))
            if text != str(exc):
                record.exc_info = None
                record.msg = f"{record.msg} ({type(exc).__name__}: {text})"
        return True


def credential_values(project, env) -> set[str]:
    """The values of every variable a group or the environment names for a secret."""
    names: set[str] = set()
    values: set[str] = set()
    if env.state.consul_token_env:
        names.add(env.state.consul_token_env)
    names |= set(env.notify.urls_env)
    for listed in env.notify.groups_env.values():
        names |= set(listed)
    for name in project.group_names():
        try:
            group = project.group(name)
        except Exception:  # a broken group.yaml is reported where it is used
            continue
        creds = group.aws.credentials
        names |= {creds.access_key_id_env, creds.secret_access_key_env, creds.session_token_env}
        names.add(group.consul.token_env)
        mc = group.marathon.credentials
        for field in ("username_env", "password_env", "token_env"):
            names.add(getattr(mc, field, None))
        values |= {str(group.terraform.vars[v]) for v in group.terraform.secret_vars}
    return values | {os.environ[n] for n in names if n and os.environ.get(n)}
