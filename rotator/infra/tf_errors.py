"""Terraform's diagnostics, turned into typed rotator errors, with secrets redacted.

Terraform reports problems as diagnostics: in machine-readable form (``-json``: one
``{"type": "diagnostic", ...}`` line each) or as text blocks (``Error: summary`` /
``on file line N`` / ``with address``). Both are parsed into ``Diagnostic``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from rotator.errors import InputError, Refused, RotatorError, StepFailed

# --------------------------------------------------------------------------
# Redaction

_SECRET_PATTERNS = [
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
    re.compile(
        r"(?i)((?:secret|token|password|passwd|access[_-]?key|secret[_-]?key|session[_-]?token)"
        r"[\"']?\s*[=:]\s*[\"']?)([^\s\"',}]+)"
    ),
    re.compile(r"(?i)(Authorization:\s*)(\S.*)"),
]
REDACTED = "***"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secret values nor anything shaped like a credential."""
    for value in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    text = _SECRET_PATTERNS[0].sub(REDACTED, text)
    for pattern in _SECRET_PATTERNS[1:]:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


# --------------------------------------------------------------------------
# Diagnostics


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" / "warning"
    summary: str
    detail: str = ""
    file: str | None = None
    line: int | None = None
    address: str | None = None  # resource instance the diagnostic is about

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line else (self.file or "")

    def render(self) -> str:
        head = f"{self.where()}: " if self.where() else ""
        about = f" ({self.address})" if self.address else ""
        detail = " ".join(self.detail.split())
        return f"{head}{self.summary}{about}" + (f": {detail}" if detail else "")


def json_messages(text: str):
    """The JSON objects of Terraform's ``-json`` output, skipping anything else."""
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            yield json.loads(raw)
        except ValueError:
            continue


def parse_json_diagnostics(lines: str) -> list[Diagnostic]:
    """Diagnostics from the JSON lines of ``plan/apply -json``."""
    found = []
    for msg in json_messages(lines):
        if msg.get("type") != "diagnostic":
            continue
        d = msg.get("diagnostic", {})
        rng = d.get("range") or {}
        found.append(
            Diagnostic(
                severity=d.get("severity", "error"),
                summary=d.get("summary", ""),
                detail=d.get("detail", ""),
                file=rng.get("filename"),
                line=(rng.get("start") or {}).get("line"),
                address=d.get("address"),
            )
        )
    return found


_BOX = "╷╵│"
_ERROR_HEAD = re.compile(r"^(Error|Warning): (.*)$")
_ON_LINE = re.compile(r"^on (.+?) line (\d+)")
_WITH = re.compile(r"^with (\S+?),?$")


def parse_text_diagnostics(text: str) -> list[Diagnostic]:
    """Diagnostics from Terraform's human-readable (``-no-color``) output."""
    found: list[Diagnostic] = []
    current: dict | None = None
    for raw in text.splitlines():
        if raw.strip().startswith("╵") and current:  # end of a boxed diagnostic
            found.append(_diag_from(current))
            current = None
            continue
        line = raw.strip().lstrip(_BOX).strip()
        head = _ERROR_HEAD.match(line)
        if head:
            if current:
                found.append(_diag_from(current))
            current = {"severity": head.group(1).lower(), "summary": head.group(2), "detail": []}
            continue
        if current is None:
            continue
        on = _ON_LINE.match(line)
        if on and "file" not in current:
            current["file"], current["line"] = on.group(1), int(on.group(2))
            continue
        with_ = _WITH.match(line)
        if with_ and "address" not in current:
            current["address"] = with_.group(1)
            continue
        if re.match(r"^\d+:", line) or line.startswith(("├", "│")):
            continue  # source snippet
        if line:
            current["detail"].append(line)
    if current:
        found.append(_diag_from(current))
    return found


def _diag_from(d: dict) -> Diagnostic:
    return Diagnostic(
        severity=d["severity"],
        summary=d["summary"],
        detail="\n".join(d["detail"]),
        file=d.get("file"),
        line=d.get("line"),
        address=d.get("address"),
    )


def errors_of(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity == "error"]


# --------------------------------------------------------------------------
# Typed errors


class TerraformError(RotatorError):
    """Terraform failed; ``diagnostics`` says why (already redacted)."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        self.diagnostics = diagnostics or []
        super().__init__(message)


class TerraformConfigError(InputError):
    """The group's Terraform is invalid (syntax, reference, variable validation)."""

    def __init__(self, message: str, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        first = next((d for d in diagnostics if d.file), None)
        super().__init__(
            message,
            file=first.file if first else None,
            line=first.line if first else None,
        )


@dataclass(frozen=True)
class StateLockInfo:
    id: str = ""
    path: str = ""
    operation: str = ""
    who: str = ""
    version: str = ""
    created: str = ""
    info: str = ""


class TerraformLocked(Refused):
    """Another Terraform run holds the slot's state lock."""

    def __init__(self, group: str, slot: str, lock: StateLockInfo):
        self.lock = lock
        super().__init__(
            f"state of {group}/{slot} is locked by {lock.who or 'unknown'} "
            f"(operation {lock.operation or '?'}, since {lock.created or '?'}, lock ID {lock.id or '?'})"
        )


class TerraformApplyError(StepFailed):
    """An apply or destroy failed part-way; ``created`` lists what the state holds now."""

    def __init__(self, message: str, *, created: list[str], diagnostics: list[Diagnostic]):
        self.created = list(created)
        self.diagnostics = diagnostics
        listing = ", ".join(self.created) if self.created else "nothing"
        super().__init__(f"{message}; state now holds: {listing}")


@dataclass
class Classified:
    kind: str  # "locked" | "config" | "runtime"
    diagnostics: list[Diagnostic] = field(default_factory=list)
    lock: StateLockInfo | None = None


_LOCK_FIELD = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*)$", re.M)

# Summaries of problems found before any change is made, i.e. with the configuration.
_CONFIG_SUMMARIES = (
    "argument or block definition required",
    "unsupported argument",
    "unsupported block type",
    "missing required argument",
    "reference to undeclared",
    "invalid reference",
    "invalid value for variable",
    "invalid expression",
    "invalid function argument",
    "call to unknown function",
    "unclosed configuration block",
    "invalid block definition",
    "duplicate ",
    "module not installed",
    "failed to read module directory",
    "unreadable module directory",
    "no value for required variable",
    "incorrect attribute value type",
    "invalid index",
    "unsupported attribute",
    "invalid character",
    "missing newline after argument",
    "invalid multi-line string",
    "variables not allowed",
    "invalid count argument",
    "invalid for_each argument",
)


def parse_lock_info(text: str) -> StateLockInfo:
    fields = {k.lower(): v.strip() for k, v in _LOCK_FIELD.findall(text)}
    return StateLockInfo(**{k: fields.get(k, "") for k in StateLockInfo.__dataclass_fields__})


def classify(diags: list[Diagnostic], raw: str = "") -> Classified:
    errors = errors_of(diags)
    for d in errors:
        if "state lock" in d.summary.lower():
            return Classified("locked", errors, parse_lock_info(d.detail or raw))
    if errors and all(_is_config(d) for d in errors):
        return Classified("config", errors)
    return Classified("runtime", errors)


_MODULE_PREFIX = re.compile(r'^(?:module\.[^.\[]+(?:\[[^\]]*\])?\.)+')


def is_resource_address(address: str) -> bool:
    """``aws_instance.x`` / ``module.m.data.aws_ami.y[0]``; not ``var.x`` or ``module.m``."""
    rest = _MODULE_PREFIX.sub("", address)
    if rest.startswith("data."):
        rest = rest[5:]
    head = rest.split(".", 1)[0]
    return "." in rest and head not in ("var", "local", "output", "module", "each", "count")


def _is_config(d: Diagnostic) -> bool:
    if d.address and is_resource_address(d.address):
        return False  # about a resource instance: the cloud said no
    summary = d.summary.lower()
    return bool(d.file) and any(s in summary for s in _CONFIG_SUMMARIES)
