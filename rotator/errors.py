"""The error tree. Every error a user can hit carries its exit code."""

from __future__ import annotations


class RotatorError(Exception):
    """Base of every error rotator reports to a user."""

    exit_code = 1


class InputError(RotatorError):
    """Bad input: a file, a field, an argument. Nothing in the world changed."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None):
        self.file = file
        self.field = field
        self.line = line
        where = ""
        if file:
            where = file + (f":{line}" if line else "")
        if field:
            where = f"{where}: {field}" if where else field
        super().__init__(f"{where}: {message}" if where else message)


class Refused(RotatorError):
    """Refused for safety (traffic guard, lock)."""

    exit_code = 3


class TransientError(RotatorError):
    """A fault worth retrying (throttling, 5xx, connection reset)."""


class StepFailed(RotatorError):
    """A step could not be completed; the engine decides what follows."""
