"""Client of a running emulator's control endpoints (another process's emulator)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AwsEmulatorControlError(RuntimeError):
    """The emulator refused a control request."""


class AwsEmulatorControl:
    """Drive an :class:`AwsEmulator` over HTTP: same methods, same meaning."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_sandbox/aws/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", "")
            except (ValueError, AttributeError):
                detail = ""
            raise AwsEmulatorControlError(
                f"{method} /_sandbox/aws/{route} -> {exc.code}: {detail}"
            ) from None

    def ping(self) -> bool:
        try:
            return bool(self._request("GET", "ping").get("ok"))
        except (OSError, AwsEmulatorControlError):
            return False

    def add_fault(
        self,
        operation: str,
        code: str | None,
        *,
        count: int | None = 1,
        after: int = 0,
        delay: float = 0.0,
        status: int | None = None,
        message: str | None = None,
        applied: bool = False,
    ) -> None:
        body = {"operation": operation, "code": code, "count": count, "after": after,
                "delay": delay, "applied": applied}
        if status is not None:
            body["status"] = status
        if message is not None:
            body["message"] = message
        self._request("POST", "faults", body)

    def clear_faults(self) -> None:
        self._request("DELETE", "faults")

    def faults(self) -> list[dict[str, Any]]:
        return self._request("GET", "faults")

    def set_instance_health(
        self, elb_name: str, instance_id: str, state: str | None = "OutOfService"
    ) -> None:
        self._request(
            "POST",
            "instance-health",
            {"elb_name": elb_name, "instance_id": instance_id, "state": state},
        )

    def calls(self) -> dict[str, int]:
        return self._request("GET", "calls")

    def reset_calls(self) -> None:
        self._request("DELETE", "calls")

    def register_ami(self, name: str, *, region: str, from_ami: str | None = None,
                     tags: list[dict[str, str]] | None = None) -> str:
        body: dict[str, Any] = {"name": name, "region": region}
        if from_ami is not None:
            body["from_ami"] = from_ami
        if tags:
            body["tags"] = tags
        return self._request("POST", "amis", body)["image_id"]

    def reset(self) -> None:
        self._request("POST", "reset")

    def set_route53_propagation(self, seconds: float) -> None:
        self._request("POST", "route53-propagation", {"seconds": seconds})

    def set_target_health(self, target_group_arn: str, target_id: str,
                          state: str | None = "unhealthy") -> None:
        self._request("POST", "target-health", {"target_group_arn": target_group_arn,
                                                "target_id": target_id, "state": state})
