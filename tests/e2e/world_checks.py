"""Checks shared by the end-to-end tests: what the emulated world holds."""

from __future__ import annotations

OTHER = {"blue": "green", "green": "blue"}


def assert_only_live(box, slot: str, group: str = "prd-cn", region: str = "cn-north-1"):
    """Nothing orphaned: only ``slot`` has instances, records weight, edge targets and weight,
    state."""
    snap = box.snapshot(group, region)
    assert set(snap["instances"]) == {slot}, snap
    assert snap["workspaces"] == [slot], snap
    weights = {ident.rsplit("-", 1)[1]: w for (_, ident), w in snap["records"].items()}
    assert weights.get(slot) == 100 and not weights.get(OTHER[slot]), snap
    record = box.record(group)
    assert sorted(snap["edge_targets"][slot]) == sorted(
        record["slots"][slot]["private_ips"]["proxy"]), snap
    assert snap["edge_targets"][OTHER[slot]] == [], snap
    assert snap["edge_weights"] == {slot: 100, OTHER[slot]: 0}, snap
