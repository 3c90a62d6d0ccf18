"""Route53 weighted records: one weighted record set per slot, shifted in one batch per zone.

Each record of a group has one weighted record set per slot, SetIdentifier
``<group>-<slot>``, pointing at that slot's ELB. A step UPSERTs both slots'
sets of every record in one ``ChangeResourceRecordSets`` batch per hosted zone
(split only above the API's limits, see ``batches``), waits for INSYNC, reads
the records back and verifies the weights.

Weights: the rotation speaks integer percentages that must sum to 100; they
are written to Route53 unchanged (Route53 accepts 0-255 and routes by
weight / sum), so no rounding ever happens and a slot's share is exactly its
percentage. Anything else (fractions, negatives, a sum other than 100) is
refused. A weight-0 set stays in place until its slot is retired
(``remove_slot``).

Listing never pages with StartRecordIdentifier (moto ignores it and loops):
a window starting at the group's first record name/type is read and filtered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rotator.errors import Refused, StepFailed
from rotator.ports import ChangeJournal, SlotOutputs, TrafficState
from rotator.traffic import elb_reads
from rotator.traffic.batches import split_batches
from rotator.traffic.calls import AwsCalls, AwsError
from rotator.traffic.spec import RecordSpec, normalize_name, set_identifier

RecordKey = tuple[str, str]  # (fqdn, type)
ALIAS_TTL = 60  # the TTL of an ELB's own DNS records, which an alias answers with
LIST_PAGE = "300"  # the API's maximum; a weighted set never exceeds 100 per name/type


def validate_weights(weights: dict[str, int]) -> None:
    bad = {s: w for s, w in weights.items() if not isinstance(w, int) or isinstance(w, bool)
           or not 0 <= w <= 100}
    if bad:
        raise Refused(f"weights must be integer percentages 0-100, got {bad}")
    if sum(weights.values()) != 100:
        raise Refused(f"weights must add up to 100, got {weights} (sum {sum(weights.values())})")


def weights_of(sets: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """record key -> slot (or SetIdentifier) -> weight, from the record sets themselves."""
    return {key: {who: int(r.get("Weight", 0)) for who, r in by.items()}
            for key, by in sets.items()}


def route53_sort_key(name: str, rtype: str) -> tuple[str, str]:
    """Route53 lists record sets by name with its labels reversed, then by type."""
    labels = normalize_name(name).rstrip(".").split(".")
    return ".".join(reversed(labels)), rtype


def comparable(rrset: dict[str, Any]) -> tuple:
    """What matters of a weighted record set when deciding whether it must change."""
    alias = rrset.get("AliasTarget")
    target = (
        ("alias", alias["DNSName"].lower().rstrip("."), alias["HostedZoneId"])
        if alias
        else tuple(sorted(r["Value"].lower().rstrip(".") for r in rrset.get("ResourceRecords", [])))
    )
    return rrset.get("Weight"), rrset.get("TTL"), target


class ZoneDirectory:
    """Hosted zone ids by name, looked up once each."""

    def __init__(self, route53: Any, calls: AwsCalls):
        self.route53 = route53
        self.calls = calls
        self._ids: dict[str, str] = {}

    def zone_id(self, zone_name: str) -> str:
        zone_name = normalize_name(zone_name)
        if zone_name not in self._ids:
            answer = self.calls(
                self.route53, "list_hosted_zones_by_name", DNSName=zone_name, MaxItems="1"
            )
            zones = [z for z in answer["HostedZones"] if normalize_name(z["Name"]) == zone_name]
            if not zones:
                raise StepFailed(f"hosted zone {zone_name} not found")
            self._ids[zone_name] = zones[0]["Id"].split("/")[-1]
        return self._ids[zone_name]


def read_record_sets(
    calls: AwsCalls, route53: Any, zone_id: str, wanted: Iterable[RecordKey]
) -> dict[RecordKey, dict[str, dict[str, Any]]]:
    """The record sets of the wanted names/types: (fqdn, type) -> SetIdentifier -> record set.

    One window from the first wanted name/type, paged by name/type only, until
    past the last wanted one.
    """
    wanted = {(normalize_name(n), t) for n, t in wanted}
    found: dict[RecordKey, dict[str, dict[str, Any]]] = {k: {} for k in wanted}
    if not wanted:
        return found
    ordered = sorted(wanted, key=lambda k: route53_sort_key(*k))
    last = route53_sort_key(*ordered[-1])
    start = ordered[0]
    while True:
        page = calls(
            route53,
            "list_resource_record_sets",
            HostedZoneId=zone_id,
            StartRecordName=start[0],
            StartRecordType=start[1],
            MaxItems=LIST_PAGE,
        )
        past_last = False
        for rrset in page["ResourceRecordSets"]:
            key = (normalize_name(rrset["Name"]), rrset["Type"])
            if key in found:
                found[key][rrset.get("SetIdentifier", "")] = rrset
            if route53_sort_key(*key) > last:
                past_last = True
                break
        if past_last or not page.get("IsTruncated"):
            return found
        following = (normalize_name(page["NextRecordName"]), page["NextRecordType"])
        if following == start:
            raise StepFailed(
                f"record set {start[0]} {start[1]} is larger than one listing page; "
                "refusing to page by identifier"
            )
        start = following


def submit(calls: AwsCalls, route53: Any, zone_id: str, changes: list[list[dict]], comment: str
           ) -> list[str]:
    """Send the changes (grouped per record) in as few batches as allowed; the change ids."""
    ids = []
    for batch in split_batches(changes):
        answer = calls(
            route53,
            "change_resource_record_sets",
            HostedZoneId=zone_id,
            ChangeBatch={"Comment": comment, "Changes": batch},
        )
        ids.append(answer["ChangeInfo"]["Id"])
    return ids


def pending_changes(calls: AwsCalls, route53: Any, change_ids: Iterable[str]) -> list[str]:
    pending = []
    for change_id in dict.fromkeys(change_ids):
        status = calls(route53, "get_change", Id=change_id)["ChangeInfo"]["Status"]
        if status != "INSYNC":
            pending.append(change_id)
    return pending


def wait_insync(
    calls: AwsCalls,
    route53: Any,
    change_ids: list[str],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    timeout: float,
    poll: float,
) -> None:
    deadline = clock() + timeout
    pending = list(change_ids)
    while True:
        pending = pending_changes(calls, route53, pending)
        if not pending:
            return
        if clock() >= deadline:
            raise StepFailed(f"Route53 changes {pending} not INSYNC after {timeout:.0f} s")
        sleep(min(poll, max(0.0, deadline - clock())))


class AliasZones:
    """Canonical hosted zone ids of slot ELBs (for A aliases), cached per ELB name."""

    def __init__(self, elb: Any | None, calls: AwsCalls):
        self.elb = elb
        self.calls = calls
        self._ids: dict[str, str] = {}

    def __call__(self, elb_name: str) -> str:
        if elb_name not in self._ids:
            if self.elb is None:
                raise ValueError("A alias records need an ELB client to find the ELB's zone id")
            self._ids[elb_name] = elb_reads.canonical_zone_id(self.calls, self.elb, elb_name)
        return self._ids[elb_name]


def weighted_record_set(
    spec: RecordSpec, set_id: str, weight: int, outputs: SlotOutputs, alias_zone: Callable[[str], str]
) -> dict[str, Any]:
    rrset: dict[str, Any] = {
        "Name": spec.fqdn,
        "Type": spec.type,
        "SetIdentifier": set_id,
        "Weight": weight,
    }
    if spec.type == "A":
        # Weights, not Route53's target health, decide where traffic goes: the guard
        # checks health before any weight moves.
        rrset["AliasTarget"] = {
            "HostedZoneId": alias_zone(outputs.elb_name),
            "DNSName": outputs.elb_dns,
            "EvaluateTargetHealth": False,
        }
    else:
        rrset["TTL"] = spec.ttl
        rrset["ResourceRecords"] = [{"Value": outputs.elb_dns}]
    return rrset


class Route53Router:
    """Weighted record sets of one group (a ``TrafficRouter`` for DNS only)."""

    def __init__(
        self,
        group: str,
        records: list[RecordSpec],
        route53: Any,
        *,
        elb: Any | None = None,
        guard: Any | None = None,
        calls: AwsCalls | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        change_timeout: float = 300.0,
        poll_interval: float = 2.0,
    ):
        self.group = group
        self.records = list(records)
        self.route53 = route53
        self.guard = guard
        self.calls = calls or AwsCalls(sleep=sleep)
        self.clock = clock
        self.sleep = sleep
        self.change_timeout = change_timeout
        self.poll_interval = poll_interval
        self.zones = ZoneDirectory(route53, self.calls)
        self.alias_zone = AliasZones(elb, self.calls)

    # -- reading ----------------------------------------------------------

    def _prefix(self) -> str:
        return set_identifier(self.group, "")

    def _slot_of(self, set_id: str) -> str | None:
        prefix = self._prefix()
        slot = set_id[len(prefix):] if set_id.startswith(prefix) else ""
        # "prd-sg-blue" is not a slot of group "prd": slot names hold no hyphen
        return slot if slot and "-" not in slot else None

    def read_all_sets(self) -> dict[str, dict[str, dict[str, Any]]]:
        """record key -> SetIdentifier -> every record set of the group's records."""
        result: dict[str, dict[str, dict[str, Any]]] = {}
        for zone_name, specs in self._by_zone().items():
            found = read_record_sets(
                self.calls, self.route53, self.zones.zone_id(zone_name),
                [(s.fqdn, s.type) for s in specs],
            )
            for spec in specs:
                result[spec.key] = found[(spec.fqdn, spec.type)]
        return result

    def _own(self, all_sets: dict[str, dict[str, dict[str, Any]]]
             ) -> dict[str, dict[str, dict[str, Any]]]:
        return {key: {slot: rrset for set_id, rrset in sets.items()
                      if (slot := self._slot_of(set_id)) is not None}
                for key, sets in all_sets.items()}

    def read_sets(self) -> dict[str, dict[str, dict[str, Any]]]:
        """record key -> slot -> the group's weighted record set as Route53 holds it."""
        return self._own(self.read_all_sets())

    def read(self) -> TrafficState:
        every = self.read_all_sets()
        return TrafficState(
            weights=weights_of(self._own(every)),
            # an alias to a load balancer answers with the balancer's own record, 60 s
            ttls={key: max((int(r.get("TTL", ALIAS_TTL)) for r in sets.values()), default=0)
                  for key, sets in every.items()},
            others=weights_of({key: {i: r for i, r in sets.items()
                                     if i and self._slot_of(i) is None}
                               for key, sets in every.items()}),
        )

    def _by_zone(self) -> dict[str, list[RecordSpec]]:
        zones: dict[str, list[RecordSpec]] = {}
        for spec in self.records:
            zones.setdefault(spec.zone_name, []).append(spec)
        return zones

    # -- changing ---------------------------------------------------------

    def check_expected(
        self, current: dict[str, dict[str, int]], weights: dict[str, int],
        expected: dict[str, int] | None,
    ) -> None:
        """Refuse (StepFailed) when a record differs from what the rotation last set.

        A record already at the target weights passes (a step interrupted after its
        change and before it was recorded is simply finished)."""
        if expected is None:
            return
        for spec in self.records:
            found = current.get(spec.key, {})
            slots = set(expected) | set(weights) | set(found)
            seen = {s: found.get(s, 0) for s in slots}
            if seen == {s: expected.get(s, 0) for s in slots}:
                continue
            if seen == {s: weights.get(s, 0) for s in slots}:
                continue
            raise StepFailed(
                f"record {spec.key} was changed outside the rotation: expected weights "
                f"{dict(sorted(expected.items()))}, found {dict(sorted(found.items()))}; "
                "not overwriting it"
            )

    def guard_increases(
        self, current: dict[str, dict[str, int]], weights: dict[str, int],
        slots: dict[str, SlotOutputs], checked: frozenset[str] = frozenset(),
    ) -> frozenset[str]:
        """Guard every slot whose weight grows (but those in ``checked``); return them all."""
        grown = set()
        for slot, weight in weights.items():
            now = max((w.get(slot, 0) for w in current.values()), default=0)
            if weight > now:
                grown.add(slot)
                if slot in checked:
                    continue
                if self.guard is None:
                    raise Refused(f"no traffic guard configured: refusing to add weight to {slot!r}")
                self.guard.check_weight(slot, slots.get(slot))
        return frozenset(grown)

    def set_weights(
        self,
        weights: dict[str, int],
        slots: dict[str, SlotOutputs],
        expected: dict[str, int] | None = None,
        *,
        checked: frozenset[str] = frozenset(),
        journal: ChangeJournal | None = None,
        fence: bool = False,
    ) -> None:
        """``checked``: slots the caller has just passed through the traffic guard;
        ``fence``: see ``TrafficRouter.set_weights``."""
        validate_weights(weights)
        self.wait_journal(journal)
        missing = [s for s, w in weights.items() if w > 0 and s not in slots]
        if missing:
            raise Refused(f"refusing to put weight on slot(s) {missing} without outputs")
        every = self.read_all_sets()
        current = weights_of(self._own(every))
        self.check_expected(current, weights, expected)
        self.guard_increases(current, weights, slots, checked)
        # a slot never built has nothing to point at (weight 0)
        desired = {spec.key: {set_identifier(self.group, slot): weighted_record_set(
            spec, set_identifier(self.group, slot), weight, slots[slot], self.alias_zone)
            for slot, weight in weights.items() if slot in slots} for spec in self.records}
        self.write(desired, every, f"rotator {self.group}: {dict(sorted(weights.items()))}",
                   journal, fence=fence)

    def move_all(self, slot: str, outputs: SlotOutputs, among: set[str], *,
                 journal: ChangeJournal | None = None
                 ) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        """All weight of the records on ``slot`` of this group, every other set among
        ``among`` (SetIdentifiers: a master/slave pair's) at 0; the weights of those sets
        before and after, by SetIdentifier. The caller has checked the target's health."""
        self.wait_journal(journal)
        live = set_identifier(self.group, slot)

        def pair(every: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict]]:
            return {key: {i: r for i, r in sets.items() if i in among}
                    for key, sets in every.items()}

        before = pair(self.read_all_sets())
        desired = {}
        for spec in self.records:
            sets = {i: {**r, "Weight": 0} for i, r in before.get(spec.key, {}).items()
                    if i != live}
            sets[live] = weighted_record_set(spec, live, 100, outputs, self.alias_zone)
            desired[spec.key] = sets
        after = self.write(desired, before, f"rotator: all traffic to {live}", journal)
        return weights_of(before), weights_of(pair(after))

    def write(self, desired: dict[str, dict[str, dict[str, Any]]],
              current: dict[str, dict[str, dict[str, Any]]], comment: str,
              journal: ChangeJournal | None, *, fence: bool = False
              ) -> dict[str, dict[str, dict[str, Any]]]:
        """UPSERT the ``desired`` sets (record key -> SetIdentifier -> record set) of every
        record that differs from ``current`` (every record, with ``fence``), one batch per
        hosted zone; wait INSYNC (the changes noted in ``journal``), read back and verify
        the weights; what was read."""
        change_ids = []
        for zone_name, specs in self._by_zone().items():
            groups = []
            for spec in specs:
                want, now = desired.get(spec.key, {}), current.get(spec.key, {})
                if not fence and all(i in now and comparable(now[i]) == comparable(r)
                                     for i, r in want.items()):
                    continue  # already as wanted (e.g. a resumed step)
                # every set of a record goes together: a partial change could leave its
                # weights summing to anything
                groups.append([{"Action": "UPSERT", "ResourceRecordSet": r}
                               for _, r in sorted(want.items())])
            if groups:
                change_ids += submit(self.calls, self.route53, self.zones.zone_id(zone_name),
                                     groups, comment)
        self.wait_changes(change_ids, journal)
        return self.verify(weights_of(desired))

    def wait_journal(self, journal: ChangeJournal | None) -> None:
        """Changes an earlier attempt submitted (a process that died waiting) are waited
        for before anything else: the world already holds them, but not yet everywhere."""
        if journal is not None and journal.pending():
            self.wait_changes(journal.pending(), journal)

    def wait_changes(self, change_ids: list[str], journal: ChangeJournal | None) -> None:
        if not change_ids:
            return
        if journal is not None:
            journal.submitted(change_ids)
        wait_insync(
            self.calls, self.route53, change_ids, clock=self.clock, sleep=self.sleep,
            timeout=self.change_timeout, poll=self.poll_interval,
        )
        if journal is not None:
            journal.in_sync()

    def verify(self, want: dict[str, dict[str, int]]) -> dict[str, dict[str, dict[str, Any]]]:
        """Read back and compare (record key -> SetIdentifier -> weight): StepFailed naming
        every record that differs; the sets read."""
        every = self.read_all_sets()
        found = weights_of(every)
        wrong = [f"{key}: want {sets}, found {got}" for key, sets in sorted(want.items())
                 if (got := {i: found.get(key, {}).get(i) for i in sets}) != sets]
        if wrong:
            raise StepFailed("Route53 weights not as set after the change: " + "; ".join(wrong))
        return every

    def settled(self, weights: dict[str, int], slots: dict[str, SlotOutputs], wait: float) -> bool:
        return True  # set_weights returns once its changes are INSYNC

    def remove_slot(self, slot: str, outputs: SlotOutputs | None, *,
                    journal: ChangeJournal | None = None) -> float:
        """Delete the slot's record sets (refused while any carries weight)."""
        self.wait_journal(journal)
        sets = self.read_sets()
        weights = weights_of(sets)
        if self.guard is not None:
            self.guard.check_remove_records(slot, weights)
        else:
            carrying = [k for k, w in weights.items() if w.get(slot, 0) > 0]
            if carrying:
                raise Refused(f"refusing to remove slot {slot!r}: records carry weight: {carrying}")
        change_ids = []
        for zone_name, specs in self._by_zone().items():
            groups = [
                [{"Action": "DELETE", "ResourceRecordSet": sets[spec.key][slot]}]
                for spec in specs if slot in sets.get(spec.key, {})
            ]
            if groups:
                change_ids += self._delete(zone_name, groups, slot, {s.key for s in specs})
        self.wait_changes(change_ids, journal)
        return 0.0

    def _delete(self, zone_name: str, groups: list[list[dict]], slot: str,
                keys: set[str]) -> list[str]:
        """DELETE the slot's sets; a retry of a DELETE that had been applied (its answer was
        lost) is refused with InvalidChangeBatch "not found": gone is what was wanted."""
        try:
            return submit(self.calls, self.route53, self.zones.zone_id(zone_name), groups,
                          f"rotator {self.group}: retire {slot}")
        except AwsError as exc:
            if exc.code != "InvalidChangeBatch" or "not found" not in exc.aws_message:
                raise
        left = [key for key, by_slot in self.read_sets().items() if key in keys and slot in by_slot]
        if left:
            raise StepFailed(f"Route53 refused to delete the sets of {slot} ({left}) "
                             "although they exist")
        return []
