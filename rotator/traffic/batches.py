"""Route53 change batches: build them and keep them inside the API's limits.

Limits (Route53 API reference, ChangeResourceRecordSets): at most 1,000
ResourceRecord elements and 32,000 characters of record values per request;
an UPSERT counts twice toward both. An alias record has no ResourceRecord
element; it is counted as one (and its DNS name as its value) to stay on the
safe side.

A batch is atomic; splitting loses that, so the changes of one record (its
blue and green weighted sets) always stay together in one batch: a record's
weights never add up to anything but the intended total, even mid-split.
"""

from __future__ import annotations

from typing import Any

MAX_ELEMENTS = 1000
MAX_VALUE_CHARS = 32000


def change_cost(change: dict[str, Any]) -> tuple[int, int]:
    """(ResourceRecord elements, value characters) a change counts for."""
    rrset = change["ResourceRecordSet"]
    factor = 2 if change["Action"] == "UPSERT" else 1
    if "AliasTarget" in rrset:
        return factor, factor * len(rrset["AliasTarget"]["DNSName"])
    values = [r["Value"] for r in rrset.get("ResourceRecords", [])]
    return factor * len(values), factor * sum(len(v) for v in values)


def split_batches(
    groups: list[list[dict[str, Any]]],
    max_elements: int = MAX_ELEMENTS,
    max_chars: int = MAX_VALUE_CHARS,
) -> list[list[dict[str, Any]]]:
    """Pack groups of changes (one group per record) into as few batches as the limits allow.

    Groups are kept whole and in order; one batch when everything fits.
    """
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    elements = chars = 0
    for group in groups:
        g_elements = g_chars = 0
        for change in group:
            e, c = change_cost(change)
            g_elements += e
            g_chars += c
        if g_elements > max_elements or g_chars > max_chars:
            raise ValueError(
                f"the changes of one record exceed Route53's batch limits "
                f"({g_elements} elements, {g_chars} characters)"
            )
        if current and (elements + g_elements > max_elements or chars + g_chars > max_chars):
            batches.append(current)
            current, elements, chars = [], 0, 0
        current.extend(group)
        elements += g_elements
        chars += g_chars
    if current:
        batches.append(current)
    return batches
