"""The load report's counts: failures by client kind and when they started and stopped."""

from __future__ import annotations

from rotator.sandbox.load.outcomes import Outcome
from rotator.sandbox.load.tally import Tally


def test_failures_are_counted_by_client_kind_with_their_first_and_last_moment():
    tally = Tally()
    tally.add(Outcome(started=0.5, latency=0.01, honours_ttl=True, slot="blue"))
    tally.add(Outcome(started=3.25, latency=0.01, honours_ttl=False, cause="refused"))
    tally.add(Outcome(started=1.75, latency=0.01, honours_ttl=False, cause="reset"))
    tally.add(Outcome(started=2.0, latency=0.01, honours_ttl=True, cause="5xx"))
    total = tally.total.summary()
    assert total["failed_by_client_kind"] == {"ttl-honouring": 1, "ttl-ignoring": 2}
    assert total["failed_between_s"] == [1.75, 3.25]
    assert tally.timeline()[0]["failed_between_s"] is None  # second 0: nothing failed


def test_a_run_without_failures_says_so():
    tally = Tally()
    tally.add(Outcome(started=0.1, latency=0.01, honours_ttl=True, slot="green"))
    total = tally.total.summary()
    assert total["failed_by_client_kind"] == {"ttl-honouring": 0, "ttl-ignoring": 0}
    assert total["failed_between_s"] is None
