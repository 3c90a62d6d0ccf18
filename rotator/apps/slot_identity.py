"""The slot's identity, written into the app definitions rotator deploys.

A service cannot know which slot it runs in, so whatever registers it in
Consul must read the slot from the app definition. Two registrars are common
on Marathon clusters, and each reads its own fields:

- gliderlabs/registrator registers Docker containers under ``SERVICE_NAME``
  and takes extra tags from ``SERVICE_TAGS`` (comma separated), both read
  from the container's environment or labels;
- allegro/marathon-consul registers tasks of apps that carry the label
  ``consul`` (its value, when set, is the service name); every label whose
  value is ``tag`` becomes a tag.

``consul.tagging`` in group.yaml says which one the group's AMI runs. The
service name rotator waits for is written too, so that what gets registered
is what the health gate asks for, whatever the registrar's own default.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

Tagging = Literal["registrator", "marathon-consul"]


def slot_tag(group: str, slot: str) -> str:
    """The Consul tag the services of one slot carry: ``<group>-<slot>``."""
    return f"{group}-{slot}"


def with_slot_identity(app: dict[str, Any], *, service: str, tag: str,
                       tagging: Tagging) -> dict[str, Any]:
    """A copy of ``app`` whose registrar registers it as ``service`` tagged ``tag``."""
    out = copy.deepcopy(app)
    if tagging == "registrator":
        env = out.setdefault("env", {})
        tags = [t.strip() for t in str(env.get("SERVICE_TAGS", "")).split(",") if t.strip()]
        if tag not in tags:
            tags.append(tag)
        env["SERVICE_TAGS"] = ",".join(tags)
        env["SERVICE_NAME"] = service
    else:
        labels = out.setdefault("labels", {})
        labels["consul"] = service
        labels[tag] = "tag"
    return out
