"""The sandbox's DNS server over UDP and TCP, answering from moto's hosted zones."""

from __future__ import annotations

import random
from collections import Counter

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from rotator.sandbox.dns import LB_TTL, MotoHostedZones, RecordSet, SandboxDns, choose_weighted

BLUE = "blue-elb-1.us-east-1.elb.amazonaws.com"
GREEN = "green-elb-2.us-east-1.elb.amazonaws.com"
ALB = "edge-alb-3.cn-north-1.elb.amazonaws.com.cn"


@pytest.fixture
def server(emulator, lbs):
    emulator.wait_ready()
    with SandboxDns(MotoHostedZones(), lbs, rng=random.Random(1313)) as srv:
        yield srv


def ask(server, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=server.port, timeout=5)


def answers(response: dns.message.Message) -> list[tuple[str, str, int, str]]:
    return [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, rdata.to_text())
            for rrset in response.answer for rdata in rrset]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_weighted_cname_chains_to_the_load_balancers_loopback_address(server, zone, tcp):
    zone.upsert(zone.weighted_cname("www", "g-blue", 1, BLUE, ttl=37),
                zone.weighted_cname("www", "g-green", 0, GREEN, ttl=37))
    response = ask(server, zone.fqdn("www"), tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert answers(response) == [
        (zone.fqdn("www") + ".", "CNAME", 37, BLUE + "."),  # the record's own TTL
        (BLUE + ".", "A", LB_TTL, "127.0.0.21"),
    ]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_names_outside_every_zone_or_missing_from_theirs_are_nxdomain(server, zone, tcp):
    missing = ask(server, zone.fqdn("nothing-here"), tcp=tcp)
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert [dns.rdatatype.to_text(r.rdtype) for r in missing.authority] == ["SOA"]
    assert ask(server, "www.not-a-sandbox-zone.example", tcp=tcp).rcode() == dns.rcode.NXDOMAIN


def test_an_existing_name_without_the_asked_type_is_an_empty_noerror(server, zone):
    zone.upsert({"Name": zone.fqdn("mail"), "Type": "TXT", "TTL": 300,
                 "ResourceRecords": [{"Value": '"v=spf1 -all"'}]})
    response = ask(server, zone.fqdn("mail"), "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert answers(ask(server, zone.fqdn("mail"), "TXT")) == [
        (zone.fqdn("mail") + ".", "TXT", 300, '"v=spf1 -all"')]


def test_the_zone_apex_answers_its_soa_and_ns_as_route53_creates_them(server, zone):
    soa = ask(server, zone.name, "SOA")
    assert [a[1] for a in answers(soa)] == ["SOA"]
    ns = answers(ask(server, zone.name, "NS", tcp=True))
    assert len(ns) == 4 and all(a[1] == "NS" for a in ns)


def test_a_load_balancer_name_resolves_by_itself_and_a_deleted_one_does_not(server, zone, lbs):
    assert answers(ask(server, ALB)) == [(ALB + ".", "A", LB_TTL, "127.0.0.23")]
    zone.upsert(zone.weighted_cname("gone", "g-blue", 100, "deleted-elb.us-east-1.elb.amazonaws.com"))
    response = ask(server, zone.fqdn("gone"))
    assert response.rcode() == dns.rcode.NXDOMAIN  # the chain ends at a name nobody serves
    assert [a[1] for a in answers(response)] == ["CNAME"]


def test_an_alias_a_record_answers_the_balancers_address_under_its_own_name(server, zone):
    zone.upsert({"Name": zone.fqdn("edge"), "Type": "A", "SetIdentifier": "g-blue", "Weight": 10,
                 "AliasTarget": {"HostedZoneId": "Z1GDH35T77C1KE", "DNSName": ALB + ".",
                                 "EvaluateTargetHealth": False}})
    assert answers(ask(server, zone.fqdn("edge"))) == [
        (zone.fqdn("edge") + ".", "A", LB_TTL, "127.0.0.23")]


def test_a_cname_chain_inside_the_zone_is_followed(server, zone):
    zone.upsert({"Name": zone.fqdn("shop"), "Type": "CNAME", "TTL": 120,
                 "ResourceRecords": [{"Value": zone.fqdn("www")}]},
                zone.weighted_cname("www", "g-blue", 5, BLUE, ttl=30))
    assert answers(ask(server, zone.fqdn("shop"))) == [
        (zone.fqdn("shop") + ".", "CNAME", 120, zone.fqdn("www") + "."),
        (zone.fqdn("www") + ".", "CNAME", 30, BLUE + "."),
        (BLUE + ".", "A", LB_TTL, "127.0.0.21"),
    ]


def test_a_change_is_answered_as_soon_as_route53_accepted_it(server, zone):
    zone.upsert(zone.weighted_cname("api", "g-blue", 100, BLUE),
                zone.weighted_cname("api", "g-green", 0, GREEN))
    assert answers(ask(server, zone.fqdn("api")))[-1][3] == "127.0.0.21"
    zone.upsert(zone.weighted_cname("api", "g-blue", 0, BLUE),
                zone.weighted_cname("api", "g-green", 100, GREEN))
    assert answers(ask(server, zone.fqdn("api")))[-1][3] == "127.0.0.22"


def test_private_zones_are_not_answered(server, emulator, route53):
    vpc = emulator.client("ec2", "cn-north-1").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    route53.create_hosted_zone(Name="private-only.rotator-test.cn", CallerReference="private-only",
                               HostedZoneConfig={"PrivateZone": True},
                               VPC={"VPCRegion": "cn-north-1", "VPCId": vpc})
    assert ask(server, "private-only.rotator-test.cn", "SOA").rcode() == dns.rcode.NXDOMAIN


# ------------------------------------------------------------------ weighted choice


@pytest.mark.parametrize(("blue", "green"), [(95, 5), (75, 25), (0, 100)])
def test_weighted_answers_follow_the_weights(server, zone, blue, green):
    zone.upsert(zone.weighted_cname("www", "g-blue", blue, BLUE),
                zone.weighted_cname("www", "g-green", green, GREEN))
    queries = 1000
    seen = Counter(answers(ask(server, zone.fqdn("www")))[-1][3] for _ in range(queries))
    share = seen["127.0.0.22"] / queries
    expected = green / (blue + green)
    # 4 standard deviations of a binomial share at 1,000 draws is under 5.5 points;
    # the injected seed makes the draw itself repeatable.
    assert abs(share - expected) <= 0.055, (seen, expected)
    if blue == 0:
        assert seen == {"127.0.0.22": queries}


def sets(*weights: int) -> list[RecordSet]:
    return [RecordSet(name="www", type="CNAME", ttl=60, values=(f"t{i}",),
                      set_identifier=f"s{i}", weight=w) for i, w in enumerate(weights)]


def test_a_zero_weight_set_gets_nothing_unless_all_weights_are_zero():
    rng = random.Random(7)
    picks = Counter(choose_weighted(sets(0, 3, 1), rng)[0].set_identifier for _ in range(4000))
    assert picks["s0"] == 0
    assert 0.70 <= picks["s1"] / 4000 <= 0.80
    all_zero = Counter(choose_weighted(sets(0, 0), rng)[0].set_identifier for _ in range(4000))
    assert set(all_zero) == {"s0", "s1"}
    assert 0.45 <= all_zero["s0"] / 4000 <= 0.55


def test_plain_record_sets_are_all_answered():
    plain = [RecordSet(name="ns", type="A", ttl=60, values=("127.0.0.9",))]
    assert choose_weighted(plain, random.Random(0)) == plain


def test_queries_answer_from_a_copy_while_a_slow_aws_request_holds_the_lock(emulator, zone):
    """The zones are copied under the lock only when they changed."""
    import threading

    class WatchedLock:
        def __init__(self):
            self.lock, self.wanted = threading.Lock(), threading.Event()

        def __enter__(self):
            self.wanted.set()
            self.lock.acquire()

        def __exit__(self, *exc):
            self.lock.release()

    watched = WatchedLock()
    zones = MotoHostedZones(watched)
    zone.upsert(zone.weighted_cname("www", "g-blue", 100, BLUE))
    assert zones.find(zone.fqdn("www")).record_sets[0].values == (BLUE,)

    def find_in_thread(out: list) -> threading.Thread:
        thread = threading.Thread(target=lambda: out.append(zones.find(zone.fqdn("www"))))
        thread.start()
        return thread

    with watched.lock:  # an AWS request in progress
        watched.wanted.clear()
        unchanged: list = []
        find_in_thread(unchanged).join(10)
        assert unchanged and unchanged[0].record_sets[0].values == (BLUE,)
        assert not watched.wanted.is_set()
        zone.upsert(zone.weighted_cname("www", "g-blue", 100, GREEN))
        changed: list = []
        waiting = find_in_thread(changed)
        assert watched.wanted.wait(10)  # a changed zone is copied under the lock
        assert changed == []
    waiting.join(10)
    assert changed[0].record_sets[0].values == (GREEN,)
