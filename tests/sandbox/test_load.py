"""The load generator against stand-in balancers on 127.0.0.1: counting, failure causes,
DNS caching per client, and the loopback-only rule."""

from __future__ import annotations

import asyncio

import pytest

from rotator.sandbox.dns import RecordSet, SandboxDns, StaticZones
from rotator.sandbox.load.generator import LoadSettings, SimulatedClient, run_load
from rotator.sandbox.load.loopback import NotLoopback, require_loopback
from rotator.sandbox.load.resolving import ClientCache, Resolved, SandboxResolver

from .standins import Behaviour, EvenDraws, FakeClock, StandInBalancers

BLUE, GREEN = "127.0.0.21", "127.0.0.22"
ZONE = "rotator-test.cn"
NAME = f"www.{ZONE}"
LBS = {"blue-lb.us-east-1.elb.amazonaws.com": BLUE, "green-lb.us-east-1.elb.amazonaws.com": GREEN}


def weighted(blue: int, green: int, ttl: int) -> list[RecordSet]:
    return [RecordSet(NAME, "CNAME", ttl, ("blue-lb.us-east-1.elb.amazonaws.com",), "g-blue", blue),
            RecordSet(NAME, "CNAME", ttl, ("green-lb.us-east-1.elb.amazonaws.com",), "g-green", green)]


@pytest.fixture
def balancers():
    with StandInBalancers({
        BLUE: Behaviour(slot="blue", ami="ami-blue"),
        GREEN: Behaviour(slot="green", ami="ami-green"),
    }) as lbs:
        yield lbs


class FixedLookup:
    """A DNS stand-in whose answer the test changes."""

    def __init__(self, address: str, ttl: float = 10.0):
        self.answer = Resolved((address,), ttl)
        self.calls = 0

    async def __call__(self, name: str) -> Resolved:
        self.calls += 1
        return self.answer


async def one_client(lookup, port: int, *, clock=None, overstay: float = 0.0, **settings):
    clock = clock or FakeClock()
    client = SimulatedClient(NAME, ClientCache(lookup, clock, overstay),
                             LoadSettings(lb_port=port, **settings), clock, clock())
    return client


def test_requests_are_counted_by_the_slot_and_ami_that_served_them(balancers):
    zones = StaticZones({ZONE: weighted(50, 50, ttl=0)})  # TTL 0: every request asks again
    with SandboxDns(zones, LBS.get, rng=EvenDraws()) as dns_server:
        result = asyncio.run(run_load(NAME, LoadSettings(rps=200, duration=0.5, clients=5,
                                                         ttl_ignoring=0, lb_port=balancers.port),
                                      SandboxResolver("127.0.0.1", dns_server.port)))
    total = result.tally.total.summary()
    assert total["failed"] == 0 and total["requests"] > 0
    assert total["by_slot"] == {"blue": balancers.hits[BLUE], "green": balancers.hits[GREEN]}
    assert total["by_ami"] == {"ami-blue": balancers.hits[BLUE], "ami-green": balancers.hits[GREEN]}
    assert total["by_slot"]["blue"] > 0 and total["by_slot"]["green"] > 0
    assert result.dns_lookups == total["requests"]


def test_a_run_ends_when_it_is_told_to_stop(balancers):
    async def go():
        stop = asyncio.Event()

        def count(outcome) -> None:
            seen.append(outcome)
            if len(seen) == 10:
                stop.set()

        return await run_load(NAME, LoadSettings(rps=200, duration=600, clients=5,
                                                 lb_port=balancers.port),
                              FixedLookup(BLUE), observers=(count,), stop=stop)

    seen: list = []
    result = asyncio.run(go())
    # every client sends nothing after the stop; those in flight finish
    assert 10 <= result.tally.total.requests == len(seen) <= 10 + 5 - 1
    assert result.tally.total.failed == 0 and result.elapsed < 600


@pytest.mark.parametrize(("behaviour", "cause"), [
    ("refused", "refused"), ("reset", "reset"), ("silent", "timeout"), ("5xx", "5xx")])
def test_failed_requests_are_sorted_by_cause(behaviour, cause):
    serving = {"127.0.0.31": Behaviour()}
    if behaviour != "refused":  # refused: nothing listens at that address and port
        serving["127.0.0.32"] = Behaviour(kind=behaviour)

    async def go(port):
        client = await one_client(FixedLookup("127.0.0.32"), port, read_timeout=0.3)
        async with client:
            return [await client.request_once() for _ in range(2)]

    with StandInBalancers(serving) as lbs:
        outcomes = asyncio.run(go(lbs.port))
    assert [o.cause for o in outcomes] == [cause, cause]
    assert all(o.address == "127.0.0.32" for o in outcomes)


def test_keep_alive_connections_are_reused(balancers):
    async def go():
        client = await one_client(FixedLookup(BLUE), balancers.port)
        async with client:
            return [await client.request_once() for _ in range(5)]

    assert [o.slot for o in asyncio.run(go())] == ["blue"] * 5
    assert balancers.connections[BLUE] == 1


def test_a_ttl_honouring_client_moves_when_its_answer_expires(balancers):
    clock, lookup = FakeClock(), FixedLookup(BLUE, ttl=10)

    async def go():
        client = await one_client(lookup, balancers.port, clock=clock)
        async with client:
            seen = [(await client.request_once()).slot]
            lookup.answer = Resolved((GREEN,), 10)  # the weights moved
            clock.advance(9.9)
            seen.append((await client.request_once()).slot)
            clock.advance(0.2)
            seen.append((await client.request_once()).slot)
            return seen

    assert asyncio.run(go()) == ["blue", "blue", "green"]
    assert lookup.calls == 2


def test_a_ttl_ignoring_client_moves_overstay_seconds_later(balancers):
    clock, lookup = FakeClock(), FixedLookup(BLUE, ttl=10)

    async def go():
        client = await one_client(lookup, balancers.port, clock=clock, overstay=30)
        async with client:
            seen = [(await client.request_once()).slot]
            lookup.answer = Resolved((GREEN,), 10)
            clock.advance(10.1)
            seen.append((await client.request_once()).slot)  # a TTL-honouring one moved here
            clock.advance(29.8)
            seen.append((await client.request_once()).slot)
            clock.advance(0.2)
            seen.append((await client.request_once()).slot)
            return seen

    assert asyncio.run(go()) == ["blue", "blue", "blue", "green"]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.255.0.9"])
def test_loopback_addresses_pass(address):
    assert require_loopback(address) == address


@pytest.mark.parametrize("address", ["10.0.3.7", "192.168.1.1", "8.8.8.8", "::1", "localhost",
                                     "0.0.0.0"])
def test_anything_else_is_refused(address):
    with pytest.raises(NotLoopback, match="outside 127.0.0.0/8"):
        require_loopback(address)


class RecordingLoop(asyncio.SelectorEventLoop):
    """Notes every TCP connection the code under test opens."""

    def __init__(self):
        super().__init__()
        self.connected: list[str] = []

    async def sock_connect(self, sock, address):
        self.connected.append(address[0])  # aiohttp connects its sockets here
        return await super().sock_connect(sock, address)

    async def create_connection(self, protocol_factory, host=None, port=None, **kwargs):
        if host is not None:
            self.connected.append(host)
        return await super().create_connection(protocol_factory, host, port, **kwargs)


def test_a_private_vpc_address_in_an_answer_stops_the_run_before_anything_is_sent(balancers):
    # The record points at a proxy instance's private address instead of a balancer.
    zones = StaticZones({ZONE: [RecordSet(NAME, "A", 60, ("10.0.3.7",))]})
    loop = RecordingLoop()
    with SandboxDns(zones, LBS.get) as dns_server:
        run = run_load(NAME, LoadSettings(rps=50, duration=2, clients=5, lb_port=balancers.port),
                       SandboxResolver("127.0.0.1", dns_server.port))
        with pytest.raises(NotLoopback, match="10.0.3.7"):
            loop.run_until_complete(run)
    loop.close()
    assert loop.connected == []
    assert balancers.hits == {}


def test_a_run_that_meets_a_private_address_midway_stops_and_never_contacts_it(balancers):
    zones = StaticZones({ZONE: [RecordSet(NAME, "A", 0, (BLUE,))]})
    loop = RecordingLoop()

    def switch(outcome):
        if outcome.ok:
            zones.set(ZONE, [RecordSet(NAME, "A", 0, ("10.0.3.7",))])

    with SandboxDns(zones, LBS.get) as dns_server:
        run = run_load(NAME, LoadSettings(rps=50, duration=5, clients=2, lb_port=balancers.port),
                       SandboxResolver("127.0.0.1", dns_server.port), observers=(switch,))
        with pytest.raises(NotLoopback):
            loop.run_until_complete(run)
    loop.close()
    assert loop.connected and set(loop.connected) == {BLUE}


def test_the_sandbox_resolver_itself_must_be_on_loopback():
    with pytest.raises(NotLoopback):
        SandboxResolver("10.0.0.2", 53)


def test_a_canary_at_25_percent_reaches_a_quarter_of_ttl_honouring_clients(balancers):
    """Weights move from 100/0 to 75/25 during the run; once every TTL-honouring client's
    cached answer has turned over, about a quarter of their requests reach green, while
    the TTL-ignoring clients are all still on blue."""
    ttl = 1
    zones = StaticZones({ZONE: weighted(100, 0, ttl)})
    moved: dict[str, float] = {}
    after: dict[bool, list[str]] = {True: [], False: []}

    def watch(outcome):
        if "at" not in moved and outcome.started >= 0.5:
            zones.set(ZONE, weighted(75, 25, ttl))
            moved["at"] = outcome.started
        elif "at" in moved and outcome.ok and outcome.started >= moved["at"] + ttl + 0.1:
            after[outcome.honours_ttl].append(outcome.slot)

    settings = LoadSettings(rps=240, duration=4.5, clients=48, ttl_ignoring=0.25,
                            lb_port=balancers.port)
    with SandboxDns(zones, LBS.get, rng=EvenDraws()) as dns_server:
        result = asyncio.run(run_load(NAME, settings, SandboxResolver("127.0.0.1", dns_server.port),
                                      observers=(watch,)))
    assert result.tally.total.failed == 0
    honouring = after[True]
    assert len(honouring) >= 300, "too few requests after the turnover to judge"
    share = honouring.count("green") / len(honouring)
    print(f"green share {share:.3f} of {len(honouring)} requests")
    assert 0.20 <= share <= 0.30, share
    assert after[False] and set(after[False]) == {"blue"}


def test_the_live_line_tells_the_last_seconds_split_and_the_failures_so_far():
    import io

    from rotator.sandbox.load.live import LiveLine
    from rotator.sandbox.load.outcomes import Outcome

    line = LiveLine(io.StringIO(), duration=60)
    for slot in ("blue", "blue", "blue", "green"):
        line(Outcome(1.0, 0.002, True, slot=slot))
    line(Outcome(1.0, 0.5, True, cause="reset"))
    text = line.line(12.0)
    assert "12/60s" in text and "5 requests" in text and "failed 1" in text
    assert "blue 75%  green 25%" in text
