"""DESIGN §4's promises, judged from what the fakes recorded (``FakeWorld.effects``): every
change to the world, with the rotation record written last before it and the traffic
before and after it. The fakes enforce nothing, so a broken engine, router or guard shows
here.
"""

from __future__ import annotations

from typing import Any

from tests.fakes import Effect, FakeWorld

# which steps may cause which changes (and so must be recorded as acting before them)
CAUSES = {
    "provision": {"provision"},
    "deploy": {"deploy"},
    "cancel": {"deploy"},  # at the deploy step's deadline, from its check
    "destroy": {"retire-destroy", "rollback-destroy"},
    "elbv2:RegisterTargets": {"shift", "rollback-weights"},
    "elbv2:ModifyListener": {"shift", "rollback-weights"},
    "route53:ChangeResourceRecordSets": {"shift", "rollback-weights", "retire-traffic",
                                         "rollback-traffic"},
    "elbv2:DeregisterTargets": {"retire-traffic", "rollback-traffic"},
}
OUT_OF_TRAFFIC = {"retire-traffic", "rollback-traffic"}


def violations(world: FakeWorld) -> list[str]:
    out: list[str] = []
    for n, effect in enumerate(world.effects):
        where = f"#{n} {effect.label} {effect.detail!r} at {effect.at - world.effects[0].at:.1f}s"
        out += [f"{where}: {v}" for v in recorded_before(effect)]
        out += [f"{where}: {v}" for v in weights_whole(effect)]
        out += [f"{where}: {v}" for v in weight_only_on_capacity(effect)]
        out += [f"{where}: {v}" for v in nothing_reachable_taken_away(effect)]
        out += [f"{where}: {v}" for v in quiet_before_destroy(effect, world.effects[:n])]
    return out


def recorded_before(effect: Effect) -> list[str]:
    """Promise 3: the record says which step acts, written before its side effect."""
    record = effect.record
    if record is None:
        return ["no rotation record was written before it"]
    steps = record["rollback_steps"] or record["steps"]
    step = steps[record["cursor"]] if record["cursor"] < len(steps) else None
    if step is None or step["kind"] not in CAUSES[effect.label]:
        return [f"the record written before it names step {step and step['name']!r}"]
    if effect.label == "cancel" or step["acting"]:
        return []
    return [f"step {step['name']!r} was not recorded as acting before it"]


def weights_whole(effect: Effect) -> list[str]:
    """Promise 1: every record's weights, and the listener's, add up to the total."""
    out = []
    for key, weights in effect.after["dns"].items():
        if effect.before["dns"].get(key) != weights and sum(weights.values()) != 100:
            out.append(f"record {key} weights add up to {sum(weights.values())}: {weights}")
    edge = effect.after["edge"]
    if edge != effect.before["edge"] and sum(edge.values()) != 100:
        out.append(f"the edge listener's weights add up to {sum(edge.values())}: {edge}")
    return out


def weight_only_on_capacity(effect: Effect) -> list[str]:
    """Promise 1: weight is only added where it can be served: the slot's services pass and
    its own ELB has it InService (DNS), its target group has healthy targets (edge)."""
    out = []
    for key, weights in effect.after["dns"].items():
        for slot, weight in weights.items():
            if weight > effect.before["dns"].get(key, {}).get(slot, 0) \
                    and not effect.before["serving"].get(slot):
                out.append(f"weight {weight} put on {slot} in {key}, which cannot serve")
    for slot, weight in effect.after["edge"].items():
        healthy = [ip for ip, s in effect.before["targets"][slot].items() if s == "healthy"]
        if weight > effect.before["edge"].get(slot, 0) and not healthy:
            out.append(f"edge weight {weight} put on {slot}, whose targets are not healthy "
                       f"({effect.before['targets'][slot]})")
    return out


def _carries(traffic: dict[str, Any], slot: str) -> list[str]:
    where = [f"{key}={w[slot]}" for key, w in traffic["dns"].items() if w.get(slot, 0) > 0]
    if traffic["edge"].get(slot, 0) > 0:
        where.append(f"edge={traffic['edge'][slot]}")
    return where


def nothing_reachable_taken_away(effect: Effect) -> list[str]:
    """Promise 2: a slot that carries weight is never deregistered or destroyed, nor its
    records deleted; the edge's last healthy targets are never deregistered; a slot with
    targets registered or draining is never destroyed."""
    before = effect.before
    if effect.label == "destroy":
        slot = effect.detail
        out = [f"destroyed {slot}, which carries weight ({', '.join(w)})"
               for w in [_carries(before, slot)] if w]
        if before["targets"].get(slot):
            out.append(f"destroyed {slot} with targets still registered or draining "
                       f"({before['targets'][slot]})")
        return out
    if effect.label == "elbv2:DeregisterTargets":
        slot = effect.detail["slot"]
        if before["edge"].get(slot, 0) > 0:
            return [f"deregistered {slot}'s targets while its target group carries weight"]
        others = [s for s, ts in before["targets"].items()
                  if s != slot and before["edge"].get(s, 0) > 0
                  and "healthy" in ts.values()]
        if "healthy" in before["targets"].get(slot, {}).values() and not others:
            return [f"deregistered {slot}'s targets, the last healthy ones of the edge"]
        return []
    if effect.label == "route53:ChangeResourceRecordSets":
        return [f"deleted the set {c['ResourceRecordSet']['SetIdentifier']} of "
                f"{c['ResourceRecordSet']['Name']} while it carries weight "
                f"{c['ResourceRecordSet'].get('Weight')}"
                for c in effect.detail["changes"]
                if c["Action"] == "DELETE" and c["ResourceRecordSet"].get("Weight", 0) > 0]
    return []


def quiet_before_destroy(effect: Effect, earlier: list[Effect]) -> list[str]:
    """Promise 8: a slot is destroyed only once no client can reach it: the change taking
    its DNS weight to 0 was INSYNC a TTL ago (cached answers have expired)."""
    if effect.label != "destroy":
        return []
    slot = effect.detail
    last_off = None
    for e in earlier:
        if e.label == "route53:ChangeResourceRecordSets" and any(
                w.get(slot, 0) > 0 for w in e.before["dns"].values()) and not any(
                w.get(slot, 0) > 0 for w in e.after["dns"].values()):
            last_off = e
    if last_off is None:
        return []
    safe_at = last_off.detail["insync_at"] + last_off.before["ttl"]
    if effect.at < safe_at:
        return [f"destroyed {slot} {safe_at - effect.at:.1f}s before cached DNS answers "
                "leading to it had expired"]
    return []


def nothing_orphaned(world: FakeWorld) -> list[str]:
    """Promise 3's end: only the slot that serves has resources, records and targets."""
    traffic = world.traffic()
    serving = world.serving()
    live = [serving] if serving else []
    out = []
    if traffic["slots"] != live:
        out.append(f"slots with resources {traffic['slots']}, serving {live}")
    for key, weights in traffic["dns"].items():
        if set(weights) - set(live):
            out.append(f"record {key} has sets of {sorted(set(weights) - set(live))}")
    if {s for s, t in traffic["targets"].items() if t} != set(live):
        out.append(f"edge targets left: {traffic['targets']}")
    if {s for s, w in traffic["edge"].items() if w} != set(live):
        out.append(f"edge weights: {traffic['edge']}")
    return out
