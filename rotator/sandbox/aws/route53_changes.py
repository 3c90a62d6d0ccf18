"""Route53 change ids and their propagation, as AWS reports them.

moto answers every ``ChangeResourceRecordSets`` with the same change id and ``GetChange``
with ``INSYNC`` for any id, even an unknown one. AWS gives each change its own id, reports
it ``PENDING`` until every authoritative server has it ("usually within 60 seconds") and
answers ``NoSuchChange`` (404) for an id it does not know (Route53 API reference,
GetChange). A client that waits for INSYNC, or resumes such a wait after a crash, is only
tested when the emulator does the same: each change gets an id, and stays PENDING for the
emulator's propagation delay (0 by default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.route53 import responses as r53_responses
from moto.route53.exceptions import Route53ClientError

from .route53_book import ChangeBook


class NoSuchChange(Route53ClientError):
    code = 404

    def __init__(self, change_id: str) -> None:
        super().__init__("NoSuchChange", f"Could not find resource with ID: {change_id}")


def _with_change(result: Any, change_id: str, status: str) -> Any:
    info = result.result["ChangeInfo"]
    info["Id"] = f"/change/{change_id}"
    info["Status"] = status
    return result


def submitted(original: Callable, context: Any, response: Any) -> Any:
    """A call that answers a ChangeInfo: the change gets its own id and propagates."""
    result = original(response)
    book: ChangeBook = context.route53_changes
    change_id = book.submit()
    return _with_change(result, change_id, book.status(change_id) or "PENDING")


# every operation whose answer carries a ChangeInfo
CHANGING = ("create_hosted_zone", "delete_hosted_zone", "associate_vpc_with_hosted_zone",
            "disassociate_vpc_from_hosted_zone", "change_resource_record_sets")


def get_change(original: Callable, context: Any, response: Any) -> Any:
    change_id = response._get_param("Id")
    status = context.route53_changes.status(change_id)
    if status is None:
        raise NoSuchChange(change_id)
    return _with_change(original(response), change_id.split("/")[-1], status)


def install(patch: Callable[[type, str, Callable], None]) -> None:
    for name in CHANGING:
        patch(r53_responses.Route53, name, submitted)
    patch(r53_responses.Route53, "get_change", get_change)
