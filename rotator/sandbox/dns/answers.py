"""Answers as Route53 gives them, from the emulator's zones and the sandbox's load balancers.

- Weighted record sets: one set per query, chosen with probability weight / sum.
  A set of weight 0 is never chosen unless every set of the name and type has
  weight 0, and then all are equally likely (Route53 API reference,
  ``ResourceRecordSet.Weight``; Developer Guide, "Weighted routing").
- CNAME answers carry the record's own TTL; the chain is followed through the
  zones, and a target that is a load balancer's DNS name gets an A record with
  the balancer's loopback address.
- Load balancer A records have a TTL of 60 s, as AWS's do (Route53 Developer
  Guide, "Values specific for weighted records": 60 seconds is "the TTL for load
  balancers"; Elastic Load Balancing guide, "Using Domain Names with Elastic Load
  Balancing"). Alias A records to a load balancer answer the same, under the
  alias's own name.
- A name outside every zone, or absent from its zone, is NXDOMAIN; an existing
  name without the asked type is NOERROR with no answer; both carry the zone's
  SOA, as an authoritative server's negative answers do.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dnslib import CNAME as CNAME_RDATA
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from .zones import RecordSet, ZoneSource, normal

LB_TTL = 60
MAX_CHAIN = 8

LbAddress = Callable[[str], "str | None"]


@dataclass
class Answer:
    records: list[RR] = field(default_factory=list)
    rcode: int = RCODE.NOERROR
    authority: list[RR] = field(default_factory=list)


class EvenDraws:
    """The source of the sandbox's weighted choices: draws evenly spread over [0, 1) (a
    golden-ratio sequence), so that over any run of consecutive queries each set's share is
    its weight within a few queries, as Route53's random choice is on average. A rotation's
    split is then seen in a short run, without statistical slack."""

    def __init__(self, start: float = 0.5):
        self.x = start
        self.lock = threading.Lock()

    def random(self) -> float:
        with self.lock:
            self.x = (self.x + 0.6180339887498949) % 1.0
            return self.x


def choose_weighted(sets: Sequence[RecordSet], rng: random.Random) -> list[RecordSet]:
    """The sets one query is answered with: one weighted set, or every plain one."""
    weighted = sorted((s for s in sets if s.weight is not None), key=lambda s: s.set_identifier or "")
    if not weighted:
        return list(sets)
    total = sum(s.weight or 0 for s in weighted)
    if total == 0:
        return [weighted[min(int(rng.random() * len(weighted)), len(weighted) - 1)]]
    point = rng.random() * total
    for s in weighted:
        point -= s.weight or 0
        if point < 0:
            return [s]
    return [next(s for s in reversed(weighted) if s.weight)]


class ZoneAnswers:
    """Builds the answer to one question; shared by every server thread."""

    def __init__(self, zones: ZoneSource, lb_address: LbAddress, rng: random.Random | None = None):
        self.zones = zones
        self.lb_address = lb_address
        self.rng = rng or random.Random()

    def answer(self, qname: str, qtype: str, depth: int = 0) -> Answer:
        name = normal(qname)
        if depth > MAX_CHAIN:
            return Answer(rcode=RCODE.SERVFAIL)
        match = self.zones.find(name)
        if match is None:
            return self._load_balancer(name, name, qtype)
        by_type: dict[str, list[RecordSet]] = {}
        for s in match.record_sets:
            by_type.setdefault(s.type, []).append(s)
        negative = [self._soa(match.soa)] if match.soa else []

        if "CNAME" in by_type and qtype != "CNAME":
            out = Answer()
            for s in choose_weighted(by_type["CNAME"], self.rng):
                for target in s.values[:1]:
                    out.records.append(RR(_fqdn(name), QTYPE.CNAME, rdata=CNAME_RDATA(_fqdn(target)),
                                          ttl=s.ttl or 0))
                    rest = self.answer(target, qtype, depth + 1)
                    out.records += rest.records
                    out.rcode, out.authority = rest.rcode, rest.authority
            return out

        types = list(by_type) if qtype == "ANY" else [qtype]
        out = Answer()
        for rtype in types:
            for s in choose_weighted(by_type.get(rtype, []), self.rng):
                if s.alias_target:
                    aliased = self._alias(name, s.alias_target, rtype, depth)
                    out.records += aliased.records
                else:
                    out.records += [_rr(name, rtype, s.ttl or 0, v) for v in s.values]
        if not out.records:
            out.rcode = RCODE.NOERROR if match.name_exists else RCODE.NXDOMAIN
            out.authority = negative
        return out

    def _alias(self, owner: str, target: str, rtype: str, depth: int) -> Answer:
        """An alias answers with its target's records, under the alias's own name."""
        if self.zones.find(target) is None:
            return self._load_balancer(owner, target, rtype)
        found = self.answer(target, rtype, depth + 1)
        for rr in found.records:
            if normal(str(rr.rname)) == target:
                rr.rname = _label(owner)
        return found

    def _load_balancer(self, owner: str, lb_name: str, qtype: str) -> Answer:
        address = self.lb_address(lb_name)
        if address is None:
            return Answer(rcode=RCODE.NXDOMAIN)
        if qtype not in ("A", "ANY"):
            return Answer()
        return Answer(records=[RR(_fqdn(owner), QTYPE.A, rdata=A(address), ttl=LB_TTL)])

    @staticmethod
    def _soa(soa: RecordSet) -> RR:
        return _rr(soa.name, "SOA", soa.ttl or 0, soa.values[0])


def reply_to(request: DNSRecord, answers: ZoneAnswers) -> DNSRecord:
    reply = request.reply()
    reply.header.ra = 0
    reply.header.ad = 0  # copied from the question by dnslib; nothing here is DNSSEC-validated
    question = request.q
    qtype = QTYPE.get(question.qtype, str(question.qtype))
    found = answers.answer(str(question.qname), qtype)
    for rr in found.records:
        reply.add_answer(rr)
    for rr in found.authority:
        reply.add_auth(rr)
    reply.header.rcode = found.rcode
    return reply


def _fqdn(name: str) -> str:
    return normal(name) + "."


def _label(name: str):
    from dnslib import DNSLabel

    return DNSLabel(_fqdn(name))


def _rr(name: str, rtype: str, ttl: int, value: str) -> RR:
    if rtype == "A":
        return RR(_fqdn(name), QTYPE.A, rdata=A(value), ttl=ttl)
    if rtype == "CNAME":
        return RR(_fqdn(name), QTYPE.CNAME, rdata=CNAME_RDATA(_fqdn(value)), ttl=ttl)
    # Route53 stores every other type in zone-file presentation form.
    return RR.fromZone(f"{_fqdn(name)} {ttl} IN {rtype} {value}", origin=".")[0]
