"""The PyPI ``marathon`` client (0.13.0), importable on Python >= 3.10.

Its JSON encoder checks ``collections.Iterable``, an alias removed in Python 3.10,
so serialising any app with nested objects raises AttributeError. The fix exists
upstream but was never released; restoring the alias is the smallest remedy.
Import ``marathon`` through this module only.

The client also logs every response body ("Got HTTP 200: b'...'" at debug level, error
bodies at error level). Bodies of /v2/apps carry the apps' environment, secrets
included, so a filter on its logger keeps the status and drops the body, whatever
level a user's logging is set to.
"""

from __future__ import annotations

import collections
import collections.abc
import logging
import re

if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

import marathon  # noqa: E402
from marathon import MarathonClient  # noqa: E402
from marathon.exceptions import (  # noqa: E402
    ConflictError,
    InternalServerError,
    MarathonError,
    MarathonHttpError,
    NotFoundError,
)

_BODY = re.compile(r"^(Got HTTP \d+): .*", re.DOTALL)


class WithoutBodies(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _BODY.match(message):
            record.msg = _BODY.sub(r"\1 (body not logged)", message)
            record.args = ()
        return True


if not any(isinstance(f, WithoutBodies) for f in marathon.log.filters):
    marathon.log.addFilter(WithoutBodies())

__all__ = ["ConflictError", "InternalServerError", "MarathonClient", "MarathonError",
           "MarathonHttpError", "NotFoundError", "marathon"]
