"""The serve tests that need the whole sandbox share one, as the e2e tests do."""

from tests.e2e.conftest import sandbox  # noqa: F401  (the session's sandbox fixture)
