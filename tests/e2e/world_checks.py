"""Checks shared by the end-to-end tests: what the emulated world holds."""

from __future__ import annotations

OTHER = {"blue": "green", "green": "blue"}


def assert_only_live(box, slot: str, group: str = "prd-cn", region: str = "cn-north-1"):
    """Nothing orphaned: only ``slot`` has instances, records weight, ELB members, state."""
    snap = box.snapshot(group, region)
    assert set(snap["instances"]) == {slot}, snap
    assert snap["workspaces"] == [slot], snap
    weights = {ident.rsplit("-", 1)[1]: w for (_, ident), w in snap["records"].items()}
    assert weights.get(slot) == 100 and not weights.get(OTHER[slot]), snap
    record = box.record(group)
    edge = snap["elb_members"][f"{group}-edge"]
    assert sorted(edge) == sorted(record["slots"][slot]["instances"]["proxy"]), snap
