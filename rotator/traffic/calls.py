"""One place through which traffic code calls AWS: retries and call counts.

Only calls that are safe to repeat go through here (UPSERT batches,
register/deregister, reads); a throttled request was not applied, so a
DELETE batch retried after ``Throttling`` is safe too. Retries are
jittered exponential backoff with an injectable sleep.

Clients handed to the routers should have botocore's own retries turned off
(``client_config()``), otherwise the two layers multiply.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from rotator.errors import StepFailed, TransientError

RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
    }
)


def client_config(connect_timeout: float = 5, read_timeout: float = 20) -> Config:
    """A botocore config for the routers' clients: no botocore retries (``AwsCalls`` retries)."""
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in RETRYABLE_CODES or status >= 500
    return isinstance(exc, ConnectionError | ReadTimeoutError)


# Request fields that name the resource a call acts on, for messages.
RESOURCE_FIELDS = ("LoadBalancerName", "LoadBalancerNames", "LoadBalancerArn", "ListenerArn",
                   "TargetGroupArn", "TargetGroupArns", "HostedZoneId", "Id", "InstanceIds",
                   "ImageIds")


class AwsError(StepFailed):
    """AWS refused a call for good (access denied, invalid input, missing resource): retrying
    would not help, so the step fails and the policy's ``on_failure`` applies."""

    def __init__(self, label: str, resource: str, code: str, message: str):
        self.operation = label
        self.resource = resource
        self.code = code
        self.aws_message = message
        on = f" on {resource}" if resource else ""
        super().__init__(f"{label}{on} refused: {code}: {message}")


def resource_of(kwargs: dict[str, Any]) -> str:
    parts = []
    for name in RESOURCE_FIELDS:
        if name in kwargs:
            value = kwargs[name]
            value = ",".join(map(str, value)) if isinstance(value, list | tuple) else value
            parts.append(f"{name}={value}")
    return " ".join(parts)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__


class AwsCalls:
    """Calls ``client.<operation>(**kwargs)`` with retries; counts attempts per operation.

    ``attempts`` counts every request sent ("route53:ChangeResourceRecordSets" -> n),
    ``retries`` the ones that were repeats after a transient fault.
    """

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 8,
        backoff_base: float = 0.2,
        backoff_max: float = 10.0,
    ):
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.attempts: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()

    def __call__(self, client: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
        service = client.meta.service_model.service_name
        api_name = client.meta.method_to_api_mapping.get(operation, operation)
        label = f"{service}:{api_name}"
        method = getattr(client, operation)

        def before_sleep(state: RetryCallState) -> None:
            self.retries[label] += 1

        def give_up(state: RetryCallState) -> Any:
            exc = state.outcome.exception() if state.outcome else None
            raise TransientError(
                f"{label} still failing after {state.attempt_number} attempts: {error_code(exc)}"
            ) from exc

        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_max),
            sleep=self.sleep,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.attempts[label] += 1
                    return method(**kwargs)
        except ClientError as exc:  # not retryable: AWS's answer is final
            error = exc.response.get("Error", {})
            raise AwsError(label, resource_of(kwargs), str(error.get("Code", "")),
                           str(error.get("Message", ""))) from exc
        raise AssertionError("unreachable")  # pragma: no cover
