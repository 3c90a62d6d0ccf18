"""A Route53 change is only in effect once INSYNC (Route53 API reference, GetChange: PENDING
"indicates that the changes in this request have not propagated to all Amazon Route 53 DNS
servers"). Change ids are written down before they are waited for, so a process killed while
waiting leaves them to the next one, which waits for them too."""

from __future__ import annotations

import time

import pytest

from rotator.errors import StepFailed


class Crash(BaseException):
    pass


class Journal:
    """What the engine keeps in the step's record, durable across the crash."""

    def __init__(self, crash_on_submit: bool = False):
        self.ids: list[str] = []
        self.crash_on_submit = crash_on_submit
        self.synced = 0

    def pending(self):
        return list(self.ids)

    def submitted(self, change_ids):
        self.ids = list(dict.fromkeys([*self.ids, *change_ids]))
        if self.crash_on_submit:
            self.crash_on_submit = False
            raise Crash()  # kill -9 right after the ids were written down

    def in_sync(self):
        self.ids = []
        self.synced += 1


@pytest.fixture
def slow_propagation(prd_cn):
    w = prd_cn[0]
    w.emulator.route53_changes.clock = w.clock
    w.emulator.set_route53_propagation(40)
    yield prd_cn
    w.emulator.set_route53_propagation(0)
    w.emulator.route53_changes.clock = time.monotonic


def test_a_restarted_step_waits_for_the_changes_its_predecessor_submitted(slow_propagation):
    w, router, slots, _, _ = slow_propagation
    journal = Journal(crash_on_submit=True)
    with pytest.raises(Crash):
        router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100}, journal=journal)
    assert journal.pending(), "the change ids were written down before the wait"
    submitted_at = w.clock()
    # the next process: the world already holds 75/25, nothing is left to change...
    w.emulator.reset_calls()
    router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100}, journal=journal)
    # ...but it did not return before the earlier change was INSYNC
    assert w.clock() - submitted_at >= 40
    assert journal.synced == 1 and journal.pending() == []
    assert w.emulator.calls().get("route53:ChangeResourceRecordSets", 0) == 0
    assert w.emulator.calls()["route53:GetChange"] >= 2


def test_without_its_change_ids_the_world_would_look_settled(slow_propagation):
    """What the journal prevents: a fresh router sees nothing to change and waits for nothing."""
    w, router, slots, _, _ = slow_propagation
    with pytest.raises(Crash):
        router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100},
                           journal=Journal(crash_on_submit=True))
    before = w.clock()
    router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100})
    assert w.clock() == before  # returned at once, the change still PENDING


def test_a_pending_change_past_its_deadline_fails_the_step(slow_propagation):
    w, router, slots, _, _ = slow_propagation
    router.dns.change_timeout = 10
    with pytest.raises(StepFailed, match="not INSYNC after 10 s"):
        router.set_weights({"blue": 75, "green": 25}, slots, {"blue": 100}, journal=Journal())


def test_a_retried_delete_that_had_been_applied_counts_as_done(prd_cn):
    """Route53 answers a DELETE of a set that no longer exists with InvalidChangeBatch
    ("Tried to delete resource record set ... but it was not found"). When the first
    attempt was applied but its answer lost (a 500 on the way back), the retry meets that:
    the sets are gone, as wanted."""
    w, router, slots, zones, records = prd_cn
    router.set_weights({"blue": 0, "green": 100}, slots, {"blue": 100})
    w.emulator.add_fault("route53:ChangeResourceRecordSets", "InternalError", status=500,
                         applied=True)
    assert router.dns.remove_slot("blue", slots["blue"]) == 0.0
    assert router.calls.retries["route53:ChangeResourceRecordSets"] == 1
    for zone, spec in zip([zones["demo"], zones["demo"], zones["internal"]], records,
                          strict=True):
        assert w.weights(zone, spec.fqdn, spec.type) == {"prd-cn-green": 100}
