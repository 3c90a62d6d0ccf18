"""The PyPI ``marathon`` client (0.13.0), importable on Python >= 3.10.

Its JSON encoder checks ``collections.Iterable``, an alias removed in Python 3.10,
so serialising any app with nested objects raises AttributeError. The fix exists
upstream but was never released; restoring the alias is the smallest remedy.
Import ``marathon`` through this module only.
"""

from __future__ import annotations

import collections
import collections.abc

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

__all__ = ["ConflictError", "InternalServerError", "MarathonClient", "MarathonError",
           "MarathonHttpError", "NotFoundError", "marathon"]
