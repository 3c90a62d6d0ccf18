"""AWS emulator: moto in server mode behind our own layer, on loopback.

The layer, a WSGI middleware around moto's ``DomainDispatcherApplication``,
names every call (``"<service>:<Operation>"``), counts it, applies injected
faults and delays with protocol-correct error bodies, answers the control
endpoints under ``/_sandbox/aws/`` and marks the request as served by this
emulator so the fixes of :mod:`.moto_fixes` apply.

moto keeps its state per process: emulators started in one process share it.
"""

from __future__ import annotations

import datetime
import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from . import control_endpoints
from .error_bodies import default_status, error_response
from .faults import Fault, FaultBook
from .operations import identify
from .route53_book import ChangeBook
from .serving import serving

CONTROL_PREFIX = "/_sandbox/aws/"
# Requests the emulator makes to itself (register_ami) carry this header: they
# are neither counted nor subject to faults.
INTERNAL_HEADER = "X-Sandbox-Internal"
_INTERNAL_ENVIRON = "HTTP_X_SANDBOX_INTERNAL"
DUMMY_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}

HEALTH_STATES = ("InService", "OutOfService")
TARGET_STATES = ("initial", "healthy", "unhealthy", "draining", "unavailable")


class AwsEmulator:
    """moto server with fault injection, call counting and AWS-faithful fixes.

    ``sleep`` is what injected delays wait with (tests may pass a fake).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ami_validation: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.ami_validation = ami_validation
        self._sleep = sleep
        self._faults = FaultBook()
        self._calls: Counter[str] = Counter()
        self._health: dict[tuple[str, str], str] = {}
        self._target_health: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._moto_app: Any = None
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self.route53_changes = ChangeBook(clock=time.monotonic)
        self._observers: list[Callable[[str | None], None]] = []
        # Where real health-check results come from (the world's data plane); None: moto's.
        self.health_source: Any = None
        # Called before moto serves each request, under the emulator's lock: the world's
        # data plane spaces AWS requests out while it carries requests of its own.
        self.before_serving: Callable[[], None] | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> AwsEmulator:
        """Listen at once; moto itself (~2 s of imports) loads in the background
        and the first AWS request waits for it."""
        if self._server is not None:
            return self
        from werkzeug.serving import WSGIRequestHandler, make_server

        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._server = make_server(
            self.host,
            self._requested_port,
            self,
            threaded=True,
            request_handler=_quiet(WSGIRequestHandler),
        )
        # Idle keep-alive connections must not hold up stop() or process exit.
        self._server.daemon_threads = True
        self._server.block_on_close = False
        threading.Thread(target=self._load_moto, name="aws-emulator-load", daemon=True).start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"aws-emulator-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _load_moto(self) -> None:
        try:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )

            from . import cloudwatch_fixes, dispatch_fixes, health_fixes, moto_fixes

            dispatch_fixes.install()
            health_fixes.install()  # first: the fixes of moto_fixes wrap these
            moto_fixes.install()
            cloudwatch_fixes.install()
            self._moto_app = DomainDispatcherApplication(create_backend_app)
            # moto's handler keeps S3 metadata headers spelt with underscores.
            self._server.RequestHandlerClass = _quiet(MotoRequestHandler)
        except BaseException as exc:  # reported to every request instead of hanging them
            self._load_error = exc
        finally:
            self._ready.set()

    def wait_ready(self, timeout: float | None = 60.0) -> None:
        """Block until moto is loaded (requests do this by themselves)."""
        if not self._ready.wait(timeout):
            raise TimeoutError("the AWS emulator did not finish loading moto")
        if self._load_error is not None:
            raise RuntimeError(f"the AWS emulator could not load moto: {self._load_error!r}")

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> AwsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the AWS emulator is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def warm(self, *regions: str) -> threading.Thread:
        """Load EC2's per-region data (default AMIs etc.) in the background.

        The first EC2 call of a region otherwise pays ~2 s for it.
        """

        def load() -> None:
            self.wait_ready()
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.ec2.models import ec2_backends

            for region in regions:
                ec2_backends[DEFAULT_ACCOUNT_ID][region]

        thread = threading.Thread(target=load, name="aws-emulator-warm", daemon=True)
        thread.start()
        return thread

    def reset(self) -> None:
        """Wipe all emulated resources, faults, health overrides and counts."""
        self.wait_ready()
        from moto.moto_api._internal.models import moto_api_backend

        with _MOTO_LOCK:
            moto_api_backend.reset()
        self.clear_faults()
        self.reset_calls()
        self.clear_instance_health()
        self._notify("reset")

    # ------------------------------------------------------------ observers

    def add_observer(self, fn: Callable[[str | None], None]) -> None:
        """``fn(operation)`` after every AWS request moto served ("service:Operation",
        None when it cannot be told, "reset" after a reset), in the serving thread,
        before the response leaves: what it changes is in place when the caller hears."""
        self._observers.append(fn)

    def remove_observer(self, fn: Callable[[str | None], None]) -> None:
        if fn in self._observers:
            self._observers.remove(fn)

    def _notify(self, operation: str | None) -> None:
        for fn in list(self._observers):
            try:
                fn(operation)
            except Exception:  # an observer's failure is not the caller's
                import logging

                logging.getLogger("rotator.sandbox.aws").exception("observer failed")

    def inspect(self, read: Callable[[], Any]) -> Any:
        """``read()`` (which may look at moto's models) while no request changes them."""
        self.wait_ready()
        with _MOTO_LOCK:
            return read()

    def put_metric_data(self, region: str, namespace: str, data: list[dict[str, Any]]) -> None:
        """What an internal ``PutMetricData`` of the default account does, without its
        round trip: for a period's latency histograms, boto3's serialising and moto's
        parsing held the GIL for tens of milliseconds, which the world's other threads
        (the data plane's event loop) then waited for."""
        self.wait_ready()
        from moto.cloudwatch.models import cloudwatch_backends
        from moto.core import DEFAULT_ACCOUNT_ID

        # moto's parser hands its backend naive UTC timestamps
        parsed = [{**d, "Timestamp": _naive_utc(d["Timestamp"])} if "Timestamp" in d else d
                  for d in data]
        token = serving.set(self)
        try:
            with _MOTO_LOCK:
                cloudwatch_backends[DEFAULT_ACCOUNT_ID][region].put_metric_data(namespace, parsed)
        finally:
            serving.reset(token)
        self._notify("cloudwatch:PutMetricData")

    # ------------------------------------------------------------------ faults

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
        """Fail (or, with ``code`` None, only delay) calls of ``operation``.

        The first ``after`` matching calls pass, the next ``count`` are acted on. With
        ``applied`` the call takes effect first and only its answer is the error.
        """
        self._faults.add(Fault(operation, code, count, after, delay, status, message, applied))

    def set_route53_propagation(self, seconds: float) -> None:
        """How long each Route53 change stays PENDING before GetChange says INSYNC."""
        self.route53_changes.set_delay(seconds)

    def clear_faults(self) -> None:
        self._faults.clear()

    def faults(self) -> list[Fault]:
        return self._faults.list()

    # ------------------------------------------------------------- ELB health

    def set_instance_health(
        self, elb_name: str, instance_id: str, state: str | None = "OutOfService"
    ) -> None:
        """Force what DescribeInstanceHealth reports for a registered instance; None clears."""
        if state is not None and state not in HEALTH_STATES:
            raise ValueError(f"state must be one of {HEALTH_STATES} or None, not {state!r}")
        with self._lock:
            if state is None:
                self._health.pop((elb_name, instance_id), None)
            else:
                self._health[(elb_name, instance_id)] = state

    def clear_instance_health(self) -> None:
        with self._lock:
            self._health.clear()
            self._target_health.clear()

    def set_target_health(self, target_group_arn: str, target_id: str,
                          state: str | None = "unhealthy") -> None:
        """Force what DescribeTargetHealth reports for a registered target; None clears."""
        if state is not None and state not in TARGET_STATES:
            raise ValueError(f"state must be one of {TARGET_STATES} or None, not {state!r}")
        with self._lock:
            if state is None:
                self._target_health.pop((target_group_arn, target_id), None)
            else:
                self._target_health[(target_group_arn, target_id)] = state

    def forced_target_health(self, target_group_arn: str, target_id: str) -> str | None:
        with self._lock:
            return self._target_health.get((target_group_arn, target_id))

    def forced_health(self, elb_name: str, instance_id: str) -> str | None:
        with self._lock:
            return self._health.get((elb_name, instance_id))

    # ------------------------------------------------------------------- calls

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -------------------------------------------------------------------- AMIs

    def register_ami(self, name: str, *, region: str, from_ami: str | None = None,
                     tags: list[dict[str, str]] | None = None) -> str:
        """Register a new AMI as a Packer build would; returns its id.

        With ``from_ami``: launch a builder instance from it, image it, then
        terminate the builder. Without: register an EBS-backed image directly.
        ``tags`` are set on the image (the sandbox records baked faults there).
        """
        image_id = self._build_ami(name, region=region, from_ami=from_ami)
        if tags:
            self.client("ec2", region, internal=True).create_tags(Resources=[image_id], Tags=tags)
        return image_id

    def _build_ami(self, name: str, *, region: str, from_ami: str | None) -> str:
        ec2 = self.client("ec2", region, internal=True)
        if from_ami is None:
            return ec2.register_image(
                Name=name,
                Description=f"{name} (sandbox build)",
                Architecture="x86_64",
                RootDeviceName="/dev/xvda",
                VirtualizationType="hvm",
                BlockDeviceMappings=[
                    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3"}}
                ],
            )["ImageId"]
        builder = ec2.run_instances(
            ImageId=from_ami, MinCount=1, MaxCount=1, InstanceType="t3.micro"
        )["Instances"][0]["InstanceId"]
        try:
            return ec2.create_image(InstanceId=builder, Name=name)["ImageId"]
        finally:
            ec2.terminate_instances(InstanceIds=[builder])

    def client(
        self, service: str, region: str, *, config: Any = None, internal: bool = False
    ) -> Any:
        """A boto3 client pointed at this emulator (dummy credentials, optional botocore Config)."""
        import boto3

        client = boto3.client(
            service, region_name=region, endpoint_url=self.url, config=config, **DUMMY_CREDENTIALS
        )
        if internal:
            client.meta.events.register_first(
                "before-sign.*.*", lambda request, **_: request.headers.__setitem__(INTERNAL_HEADER, "1")
            )
        return client

    # -------------------------------------------------------------------- WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return control_endpoints.handle(self, environ, start_response)

        self.wait_ready()
        body = _read_body(environ)
        operation = identify(environ, body)
        if not environ.get(_INTERNAL_ENVIRON):
            if operation is not None:
                name = str(operation)
                with self._lock:
                    self._calls[name] += 1
                decision = self._faults.decide(name)
                if decision.delay:
                    self._sleep(decision.delay)
                fault = decision.fault
                if fault is not None:
                    if fault.applied:
                        self._serve_moto(environ, lambda *_: None, operation)
                    status = fault.status or default_status(fault.code)
                    message = fault.message or f"Injected fault {fault.code} on {name}"
                    status, headers, payload = error_response(
                        operation.service, operation.protocol, fault.code, message, status
                    )
                    start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
                    return [payload]

        return self._serve_moto(environ, start_response, operation)

    def _serve_moto(self, environ: dict[str, Any], start_response: Callable,
                    operation: Any) -> list[bytes]:
        token = serving.set(self)
        try:
            # moto renders the whole response inside this call (no streaming). Its backends
            # are not made for concurrent changes; under load, the provider retried creates
            # that had been stored and failed on its own resources (InvalidSubnet.Conflict,
            # DuplicateLoadBalancerName). One request at a time.
            with _MOTO_LOCK:
                if self.before_serving is not None:
                    self.before_serving()
                result = list(self._moto_app(environ, start_response))
        finally:
            serving.reset(token)
        if self._observers:
            if environ.get("PATH_INFO", "").startswith("/moto-api/reset"):
                self._notify("reset")
            else:
                self._notify(None if operation is None else str(operation))
        return result


_MOTO_LOCK = threading.Lock()  # per process, like moto's state


def _quiet(handler: type) -> type:
    class QuietHandler(handler):  # type: ignore[misc, valid-type]
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # one line per AWS call drowns test output

    return QuietHandler


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body once and put it back for moto."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body = stream.read(length)
    elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = stream.read()
        environ["CONTENT_LENGTH"] = str(len(body))
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body
