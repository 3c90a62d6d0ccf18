"""Who may look and who may act: the serve token, browser sessions, CSRF, allowed hosts.

- Bound beyond loopback, `rotate serve` refuses to start without a token
  (``ROTATOR_SERVE_TOKEN`` or ``--token-file``); with a token, every page and API call
  needs it: ``Authorization: Bearer <token>`` (curl, Prometheus), or a browser session
  opened on ``/login``.
- A browser session is a signed cookie (HttpOnly, SameSite=Strict). The buttons' POSTs
  carry a CSRF token derived from it (``X-Rotator-CSRF``), which only a page of this
  origin can read from ``/api/session``; a foreign ``Origin`` is refused as well.
- Bound to loopback, the ``Host`` must be a loopback name: a page of another site whose
  name an attacker points at 127.0.0.1 (DNS rebinding) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

COOKIE = "rotator_session"
CSRF_HEADER = "x-rotator-csrf"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    if host.strip("[]") in LOOPBACK_NAMES or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class BrowserSession:
    sid: str
    authenticated: bool
    name: str


class Access:
    def __init__(self, token: str | None, *, loopback_only: bool, secret: bytes | None = None):
        self.token = token or None
        self.loopback_only = loopback_only
        self._secret = secret or secrets.token_bytes(32)

    @property
    def needs_token(self) -> bool:
        return self.token is not None

    # ------------------------------------------------------------------ signing

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def cookie_value(self, session: BrowserSession) -> str:
        name = base64.urlsafe_b64encode(session.name.encode()).decode().rstrip("=")
        body = f"{session.sid}.{int(session.authenticated)}.{name}"
        return f"{body}.{self._sign(body)}"

    def session_of(self, cookies: dict[str, str]) -> BrowserSession | None:
        value = cookies.get(COOKIE, "")
        try:
            sid, authed, name, sig = value.split(".")
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sign(f"{sid}.{authed}.{name}")):
            return None
        try:
            who = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return BrowserSession(sid, authed == "1", who)

    def new_session(self, *, authenticated: bool, name: str = "") -> BrowserSession:
        return BrowserSession(secrets.token_urlsafe(16), authenticated, name[:64])

    def csrf_for(self, session: BrowserSession) -> str:
        return self._sign("csrf:" + session.sid)

    # ------------------------------------------------------------------ checks

    def token_matches(self, given: str | None) -> bool:
        return bool(self.token and given and hmac.compare_digest(given.encode(),
                                                                 self.token.encode()))

    def bearer(self, headers) -> bool:
        auth = headers.get("authorization", "")
        return auth.lower().startswith("bearer ") and self.token_matches(auth[7:].strip())

    def may_read(self, headers, cookies) -> bool:
        if not self.needs_token or self.bearer(headers):
            return True
        session = self.session_of(cookies)
        return session is not None and session.authenticated

    def host_allowed(self, headers) -> bool:
        if not self.loopback_only:
            return True
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return is_loopback(name)

    def same_origin(self, headers) -> bool:
        """A browser's POST names its page's origin: it must be this server."""
        origin = headers.get("origin")
        if headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
            return False
        if origin is None:
            return True  # not a browser's cross-site request (those always carry Origin)
        return urlsplit(origin).netloc == headers.get("host", "")

    def may_act(self, headers, cookies) -> tuple[bool, int, str]:
        """(allowed, HTTP status when not, why) for a state-changing request."""
        if self.bearer(headers):
            return True, 200, ""
        if self.needs_token and headers.get("authorization"):
            return False, 401, "wrong token"
        session = self.session_of(cookies)
        if session is None:
            return False, 401 if self.needs_token else 403, "no session: open the dashboard"
        if self.needs_token and not session.authenticated:
            return False, 401, "log in with the serve token first"
        if not self.same_origin(headers):
            return False, 403, "cross-site request refused"
        given = headers.get(CSRF_HEADER, "")
        if not given or not hmac.compare_digest(given, self.csrf_for(session)):
            return False, 403, "missing or wrong CSRF token (reload the page)"
        return True, 200, ""
