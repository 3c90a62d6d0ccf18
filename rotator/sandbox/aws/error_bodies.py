"""Error responses shaped exactly as each AWS protocol sends them.

SDKs classify errors (retryable throttling, transient 5xx, terminal client
errors) from the HTTP status plus the code they parse out of the body, so
both must match real AWS for an injected fault to be handled like a real one.
"""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape

# HTTP status real AWS sends with these codes; anything else is a 400 client error.
_STATUS_BY_CODE = {
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
    "Unavailable": 503,
    "SlowDown": 503,
    "InternalError": 500,
    "InternalFailure": 500,
    "InternalServerError": 500,
    "RequestTimeout": 400,
    "NoSuchHostedZone": 404,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchChange": 404,
    "AccessDenied": 403,
    "UnauthorizedOperation": 403,
    "AuthFailure": 401,
    "PreconditionFailed": 412,
    "ConflictingDomainExists": 400,
    "TooManyRequestsException": 400,
}

# XML namespaces of the query-protocol services we emulate.
_QUERY_NAMESPACES = {
    "elb": "http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/",
    "elbv2": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "autoscaling": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
}
_ROUTE53_NAMESPACE = "https://route53.amazonaws.com/doc/2013-04-01/"


def default_status(code: str) -> int:
    return _STATUS_BY_CODE.get(code, 400)


def error_response(
    service: str, protocol: str, code: str, message: str, status: int
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of an AWS error for ``service`` speaking ``protocol``."""
    request_id = str(uuid.uuid4())
    fault_type = "Receiver" if status >= 500 else "Sender"
    code_x, message_x = escape(code), escape(message)
    headers = [("x-amzn-RequestId", request_id)]
    if protocol in ("json", "rest-json"):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers += [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-ErrorType", code),
            ("Content-Length", str(len(body))),
        ]
        return status, headers, body
    if protocol == "ec2":
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code_x}</Code><Message>{message_x}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    elif service == "s3":
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code_x}</Code><Message>{message_x}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        )
        headers.append(("x-amz-request-id", request_id))
    else:
        namespace = _ROUTE53_NAMESPACE if service == "route53" else _QUERY_NAMESPACES.get(
            service, f"https://{service}.amazonaws.com/doc/"
        )
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<ErrorResponse xmlns="{namespace}"><Error><Type>{fault_type}</Type>'
            f"<Code>{code_x}</Code><Message>{message_x}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    body = text.encode()
    headers += [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))]
    return status, headers, body
