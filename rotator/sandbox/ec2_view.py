"""The world's view of its EC2 instances: read from moto's models, again only after a
request that may have changed them.

The slots' Marathons ask it for a slot's agents, for the Marathon instance behind an
address and whether it still runs. Reading moto's models under the emulator's lock takes
well under a millisecond; a boto3 ``DescribeInstances`` against the same process takes
tens (a client to build, XML that moto renders and botocore parses), all of it holding
the GIL that the data plane's event loop needs to serve requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rotator.sandbox.dataplane.inventory import Instance, read_instances

LIVE_STATES = ("pending", "running")
_READS = ("Describe", "Get", "List")


def changes_instances(operation: str | None) -> bool:
    """Whether an AWS request may have changed an instance (its state, address or tags):
    any EC2 or Auto Scaling request but a read, a reset, or one that cannot be told."""
    if operation is None or operation == "reset":
        return True
    service, _, name = operation.partition(":")
    return service in ("ec2", "autoscaling") and not name.startswith(_READS)


class Ec2View:
    """The live (pending or running) instances, and a callback after every change."""

    def __init__(self, aws: Any) -> None:
        self.aws = aws
        self._lock = threading.Lock()
        self._generation = 0
        self._read: tuple[int, tuple[Instance, ...]] | None = None
        self._listeners: list[Callable[[], None]] = []
        aws.add_observer(self._aws_changed)

    def close(self) -> None:
        self.aws.remove_observer(self._aws_changed)

    def on_change(self, fn: Callable[[], None]) -> None:
        """``fn()`` after every request that may have changed an instance, in the thread
        that served it: it must not block."""
        self._listeners.append(fn)

    def _aws_changed(self, operation: str | None) -> None:
        if changes_instances(operation):
            with self._lock:
                self._generation += 1
            for fn in list(self._listeners):
                fn()

    def live(self) -> tuple[Instance, ...]:
        with self._lock:
            generation = self._generation
            if self._read is not None and self._read[0] == generation:
                return self._read[1]
        found = tuple(i for i in self.aws.inspect(read_instances) if i.state in LIVE_STATES)
        with self._lock:
            # a change during the read raised the generation: the next call reads again
            if self._read is None or self._read[0] <= generation:
                self._read = (generation, found)
        return found

    def find(self, region: str | None = None, **tags: str) -> list[Instance]:
        """Live instances of ``region`` (None: any) carrying every tag given, by id."""
        return sorted((i for i in self.live() if (region is None or i.region == region)
                       and all(i.tag(k) == v for k, v in tags.items())), key=lambda i: i.id)

    def at(self, private_ip: str, regions: tuple[str, ...], **tags: str) -> Instance | None:
        """The live instance at a private address, in the first of ``regions`` having one."""
        for region in regions:
            for instance in self.find(region, **tags):
                if instance.private_ip == private_ip:
                    return instance
        return None

    def alive(self, region: str, instance_id: str) -> bool:
        return any(i.region == region and i.id == instance_id for i in self.live())
