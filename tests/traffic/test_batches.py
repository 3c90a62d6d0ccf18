"""Change batches stay inside Route53's limits and never split one record's changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.ports import SlotOutputs
from rotator.traffic.batches import MAX_ELEMENTS, MAX_VALUE_CHARS, change_cost, split_batches
from rotator.traffic.route53 import weighted_record_set
from rotator.traffic.spec import RecordSpec


def record_changes(i: int, value_len: int = 60) -> list[dict]:
    spec = RecordSpec(zone="big.example.", name=f"r{i:05d}")
    changes = []
    for slot, weight in (("blue", 40), ("green", 60)):
        dns = (f"{slot}-{i}-" + "x" * value_len)[:value_len] + ".elb.example"
        outputs = SlotOutputs(marathon_url="", elb_name=f"{slot}-elb", elb_dns=dns)
        rrset = weighted_record_set(spec, f"g-{slot}", weight, outputs, lambda _: "Z1")
        changes.append({"Action": "UPSERT", "ResourceRecordSet": rrset})
    return changes


def cost(batch: list[dict]) -> tuple[int, int]:
    elements = chars = 0
    for change in batch:
        e, c = change_cost(change)
        elements += e
        chars += c
    return elements, chars


def test_small_group_is_one_batch():
    assert len(split_batches([record_changes(i) for i in range(50)])) == 1


def test_upsert_counts_twice_toward_the_element_limit():
    groups = [record_changes(i, value_len=10) for i in range(600)]  # 1,200 UPSERTs = 2,400
    batches = split_batches(groups)
    assert [len(b) for b in batches] == [500, 500, 200]
    assert all(cost(b)[0] <= MAX_ELEMENTS for b in batches)


def test_value_characters_limit_splits_long_values():
    groups = [record_changes(i, value_len=250) for i in range(100)]  # ~1,048 chars per record
    batches = split_batches(groups)
    assert len(batches) == 4
    assert all(cost(b)[1] <= MAX_VALUE_CHARS for b in batches)
    assert sum(len(b) for b in batches) == 200


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=700))
def test_batches_within_limits_in_order_with_records_whole(value_lengths):
    groups = [record_changes(i, n) for i, n in enumerate(value_lengths)]
    batches = split_batches(groups)
    flat = [c for b in batches for c in b]
    assert flat == [c for g in groups for c in g]
    for batch in batches:
        elements, chars = cost(batch)
        assert elements <= MAX_ELEMENTS and chars <= MAX_VALUE_CHARS
        names = [c["ResourceRecordSet"]["Name"] for c in batch]
        # both slots of every record travel together
        assert all(names.count(n) == 2 for n in names)
