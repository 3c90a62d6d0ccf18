"""Which emulator serves the current request (read by the moto fixes).

Kept apart from :mod:`.moto_fixes` so importing the emulator does not import moto.
"""

from __future__ import annotations

import contextvars
from typing import Any, Protocol


class ServingContext(Protocol):
    """What the fixes need to know about the emulator serving the current request."""

    ami_validation: bool

    route53_changes: Any  # route53_changes.ChangeBook

    def forced_health(self, elb_name: str, instance_id: str) -> str | None: ...

    def forced_target_health(self, target_group_arn: str, target_id: str) -> str | None: ...


serving: contextvars.ContextVar[ServingContext | None] = contextvars.ContextVar(
    "aws_emulator_serving", default=None
)
