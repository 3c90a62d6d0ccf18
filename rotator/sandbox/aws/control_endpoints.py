"""JSON endpoints under ``/_sandbox/aws/`` to drive a running emulator from
another process (see :class:`~rotator.sandbox.aws.control_client.AwsEmulatorControl`).

    GET    ping                      {"ok": true}
    GET    faults                    [fault, ...]
    POST   faults                    {operation, code, count?, after?, delay?, status?, message?, applied?}
    DELETE faults                    clear all faults
    POST   instance-health           {elb_name, instance_id, state: "InService"|"OutOfService"|null}
    POST   target-health             {target_group_arn, target_id, state: "healthy"|"unhealthy"|...|null}
    GET    calls                     {"ec2:RunInstances": 3, ...}
    DELETE calls                     reset the counts
    POST   amis                      {name, region, from_ami?, tags?} -> {"image_id": "ami-..."}
    POST   reset                     wipe resources, faults, overrides and counts
    POST   route53-propagation       {seconds}: how long each change stays PENDING
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from .emulator import AwsEmulator

_FAULT_FIELDS = {"count", "after", "delay", "status", "message", "applied"}


class _BadRequest(Exception):
    pass


def handle(
    emulator: AwsEmulator, environ: dict[str, Any], start_response: Callable
) -> Iterable[bytes]:
    request = Request(environ)
    route = request.path.removeprefix("/_sandbox/aws/").strip("/")
    try:
        status, payload = _dispatch(emulator, request.method, route, request)
    except _BadRequest as exc:
        status, payload = 400, {"error": str(exc)}
    except (TypeError, ValueError) as exc:
        status, payload = 400, {"error": str(exc)}
    except Exception as exc:  # surfaced to the caller, e.g. InvalidAMIID.NotFound
        status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
    response = Response(json.dumps(payload), status=status, mimetype="application/json")
    return response(environ, start_response)


def _body(request: Request) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise _BadRequest("expected a JSON object")
    return data


def _require(data: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if n not in data]
    if missing:
        raise _BadRequest(f"missing field(s): {', '.join(missing)}")


def _dispatch(
    emulator: AwsEmulator, method: str, route: str, request: Request
) -> tuple[int, Any]:
    if (method, route) == ("GET", "ping"):
        return 200, {"ok": True}
    if route == "faults":
        if method == "GET":
            return 200, [f.to_dict() for f in emulator.faults()]
        if method == "DELETE":
            emulator.clear_faults()
            return 200, {"ok": True}
        if method == "POST":
            data = _body(request)
            _require(data, "operation", "code")
            unknown = set(data) - _FAULT_FIELDS - {"operation", "code"}
            if unknown:
                raise _BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
            options = {k: v for k, v in data.items() if k in _FAULT_FIELDS}
            emulator.add_fault(data["operation"], data["code"], **options)
            return 200, {"ok": True}
    if (method, route) == ("POST", "instance-health"):
        data = _body(request)
        _require(data, "elb_name", "instance_id")
        emulator.set_instance_health(data["elb_name"], data["instance_id"], data.get("state"))
        return 200, {"ok": True}
    if (method, route) == ("POST", "target-health"):
        data = _body(request)
        _require(data, "target_group_arn", "target_id")
        emulator.set_target_health(data["target_group_arn"], data["target_id"], data.get("state"))
        return 200, {"ok": True}
    if route == "calls":
        if method == "GET":
            return 200, emulator.calls()
        if method == "DELETE":
            emulator.reset_calls()
            return 200, {"ok": True}
    if (method, route) == ("POST", "amis"):
        data = _body(request)
        _require(data, "name", "region")
        image_id = emulator.register_ami(
            data["name"], region=data["region"], from_ami=data.get("from_ami"),
            tags=data.get("tags"),
        )
        return 200, {"image_id": image_id}
    if (method, route) == ("POST", "route53-propagation"):
        data = _body(request)
        _require(data, "seconds")
        emulator.set_route53_propagation(float(data["seconds"]))
        return 200, {"ok": True}
    if (method, route) == ("POST", "reset"):
        emulator.reset()
        return 200, {"ok": True}
    return 404, {"error": f"no control endpoint {method} /_sandbox/aws/{route}"}
