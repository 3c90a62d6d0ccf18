"""Item 3: every classic ELB and ALB is a real HTTP listener on its own loopback address.

Facts (AWS docs): classic ELB routes only to healthy instances, a new instance is
``OutOfService`` ("Instance registration is still in progress.") until HealthyThreshold
checks pass, an HTTP check passes on "200 OK" only (Classic guide, "Configure health
checks", DescribeInstanceHealth); ALB "routes requests only to the healthy targets", a
target "must pass one health check to be considered healthy" (ALB guide, "Health checks
for your target groups"); a forward action with several target groups "distributes
requests to individual target groups based on their weights" (ALB guide, listener
rules); "the load balancer stops sending requests to targets that are deregistering, but
uses connection draining to ensure that in-flight traffic completes" (DeregisterTargets
API); classic "While in-flight requests are being served, the load balancer reports the
state of a de-registering instance as InService: Instance deregistration currently in
progress" and "If a de-registering instance has no in-flight requests and no active
connections, Elastic Load Balancing immediately completes the deregistration process"
(Classic guide, "Configure connection draining").
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections import Counter

import pytest

from rotator.sandbox.dataplane.faults import ReleaseFault
from tests.dataplane import balancer_setup as setup
from tests.dataplane.conftest import app, deploy, http, wait_for

VHOST = "www.example.test"


def _site(world, name, cidr, ami=None, proxies=1, beside=None):
    slot = world.slot(name, proxies=proxies, agents=1, cidr=cidr, ami=ami, beside=beside)
    deploy(slot, app("/web", instances=1, labels={"HAPROXY_0_VHOST": VHOST}))
    return slot


def _url(world, dns_name):
    address = world.plane.lb_address(dns_name)
    assert address is not None and address.startswith("127.") and address != "127.0.0.1"
    return f"http://{address}:{world.plane.lb_port}/"


def _get(url, **kw):
    return http().get(url, headers={"Host": VHOST}, timeout=10, **kw)


def test_classic_elb_forwards_only_to_healthy_instances(world):
    slot = _site(world, "blue", "10.70.0.0/16")
    name = setup.classic(world, slot)
    proxy, agent = slot.proxies[0]["InstanceId"], slot.agents[0]["InstanceId"]
    world.client("elb").register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": proxy}, {"InstanceId": agent}])
    # in service after its first passing check (HealthyHostCount: "a newly registered
    # instance is considered healthy after it passes the first health check")
    assert setup.instance_states(world, name)[proxy] in (
        ("OutOfService", "Instance registration is still in progress."), ("InService", "N/A"))
    wait_for(lambda: setup.instance_states(world, name)[proxy][0] == "InService")
    # nothing listens on the agent's port 80: it fails its checks
    wait_for(lambda: setup.instance_states(world, name)[agent] == (
        "OutOfService", "Instance has failed at least the UnhealthyThreshold number of "
                        "health checks consecutively."))
    dns = world.client("elb").describe_load_balancers(
        LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]["DNSName"]
    url = _url(world, dns.upper() + ".")  # any case, trailing dot
    before = time.monotonic()
    answers = [_get(url) for _ in range(20)]
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["slot"] for a in answers} == {"blue"}
    assert world.plane.balancers.last_request >= before  # AWS requests now give way
    # the emulator's forced health still wins in what DescribeInstanceHealth says
    world.aws.set_instance_health(name, proxy, "OutOfService")
    assert setup.instance_states(world, name)[proxy][0] == "OutOfService"
    world.aws.set_instance_health(name, proxy, None)
    assert setup.instance_states(world, name)[proxy][0] == "InService"
    # no healthy backend: the proxy itself fails, the ELB answers 503
    slot.marathon.set_health("/web", "unhealthy")
    wait_for(lambda: setup.instance_states(world, name)[proxy][0] == "OutOfService")
    assert _get(url).status_code == 503
    # back in service after HealthyThreshold (2) consecutive passing checks
    slot.marathon.set_health("/web", "healthy")
    wait_for(lambda: setup.instance_states(world, name)[proxy][0] == "InService")
    assert _get(url).status_code == 200


def test_alb_splits_requests_by_listener_weights_across_target_groups(world):
    blue = _site(world, "blue", "10.71.0.0/16")
    green = _site(world, "green", "10.72.0.0/16")
    vpc, lb = setup.edge(world, blue, green, cidr="10.98.0.0/16")
    tg_blue, tg_green = setup.target_group(world, vpc), setup.target_group(world, vpc)
    setup.register_proxies(world, tg_blue, blue)
    setup.register_proxies(world, tg_green, green)
    setup.listener(world, lb["LoadBalancerArn"], {tg_blue: 75, tg_green: 25})
    ip_blue = blue.proxies[0]["PrivateIpAddress"]
    assert setup.target_states(world, tg_blue)[ip_blue] in ("initial", "healthy")
    wait_for(lambda: set(setup.target_states(world, tg_blue).values()) == {"healthy"}
             and set(setup.target_states(world, tg_green).values()) == {"healthy"})
    url = _url(world, lb["DNSName"])
    n = 400
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        slots = Counter(pool.map(lambda _: _get(url).json()["slot"], range(n)))
    # weights split per request; stated tolerance: within 5 points of 75 %
    assert abs(slots["blue"] / n - 0.75) <= 0.05, slots
    assert slots["blue"] + slots["green"] == n


def _slow_and_fast(world, cidr_slow, cidr_fast, same_vpc=False):
    slow_ami = world.bake(ReleaseFault("slow", 1.0, 0.0, 3.0).tags())
    slow = _site(world, "blue", cidr_slow, ami=slow_ami)
    fast = _site(world, "green", cidr_fast, beside=slow if same_vpc else None)
    return slow, fast


def _one_in_flight_at_slow(url):
    """Two requests at once: round robin sends one to each target; the fast one returns,
    the slow one stays in flight."""
    pool = concurrent.futures.ThreadPoolExecutor(2)
    futures = [pool.submit(_get, url) for _ in range(2)]
    done, pending = concurrent.futures.wait(futures, timeout=10,
                                            return_when=concurrent.futures.FIRST_COMPLETED)
    assert len(done) == 1 and len(pending) == 1
    assert next(iter(done)).result().json()["slot"] == "green"
    return pool, next(iter(pending))


def test_alb_deregistration_drains_in_flight_requests_and_sends_new_ones_elsewhere(world):
    slow, fast = _slow_and_fast(world, "10.73.0.0/16", "10.74.0.0/16")
    vpc, lb = setup.edge(world, slow, fast, cidr="10.97.0.0/16")
    tg = setup.target_group(world, vpc, delay=20)
    setup.register_proxies(world, tg, slow, fast)
    setup.listener(world, lb["LoadBalancerArn"], {tg: 1})
    wait_for(lambda: set(setup.target_states(world, tg).values()) == {"healthy"}
             and len(setup.target_states(world, tg)) == 2)
    url = _url(world, lb["DNSName"])
    pool, in_flight = _one_in_flight_at_slow(url)
    slow_ip = slow.proxies[0]["PrivateIpAddress"]
    world.client("elbv2").deregister_targets(TargetGroupArn=tg, Targets=[
        {"Id": slow_ip, "Port": 80}])
    health = world.client("elbv2").describe_target_health(TargetGroupArn=tg)
    draining = {d["Target"]["Id"]: d["TargetHealth"] for d in health["TargetHealthDescriptions"]}
    assert draining[slow_ip]["State"] == "draining"
    assert draining[slow_ip]["Reason"] == "Target.DeregistrationInProgress"
    # new requests all go to the remaining target while the old one drains
    assert {_get(url).json()["slot"] for _ in range(6)} == {"green"}
    finished = in_flight.result(timeout=10)
    assert finished.status_code == 200 and finished.json()["slot"] == "blue"
    # nothing in flight any more: the deregistration completes before the delay
    wait_for(lambda: slow_ip not in setup.target_states(world, tg), timeout=5)
    pool.shutdown()


def test_classic_connection_draining_lets_in_flight_requests_finish(world):
    # a classic ELB registers instances of its own VPC only (RegisterInstancesWithLoadBalancer)
    slow, fast = _slow_and_fast(world, "10.75.0.0/16", "10.76.0.0/16", same_vpc=True)
    name = setup.classic(world, slow, draining=20)
    slow_proxy, fast_proxy = slow.proxies[0]["InstanceId"], fast.proxies[0]["InstanceId"]
    world.client("elb").register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": slow_proxy}, {"InstanceId": fast_proxy}])
    wait_for(lambda: {s for s, _ in setup.instance_states(world, name).values()} == {"InService"})
    dns = world.client("elb").describe_load_balancers(
        LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]["DNSName"]
    url = _url(world, dns)
    pool, in_flight = _one_in_flight_at_slow(url)
    world.client("elb").deregister_instances_from_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": slow_proxy}])
    asked = world.client("elb").describe_instance_health(
        LoadBalancerName=name, Instances=[{"InstanceId": slow_proxy}])["InstanceStates"][0]
    assert (asked["State"], asked["Description"]) == (
        "InService", "Instance deregistration currently in progress.")
    assert {_get(url).json()["slot"] for _ in range(6)} == {"green"}
    finished = in_flight.result(timeout=10)
    assert finished.status_code == 200 and finished.json()["slot"] == "blue"
    pool.shutdown()


@pytest.mark.parametrize("kind", ["classic", "alb"])
def test_a_deleted_load_balancer_refuses_connections(world, kind):
    slot = _site(world, "blue", "10.77.0.0/16" if kind == "classic" else "10.78.0.0/16")
    if kind == "classic":
        name = setup.classic(world, slot)
        dns = world.client("elb").describe_load_balancers(
            LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]["DNSName"]
    else:
        vpc, lb = setup.edge(world, slot, cidr="10.96.0.0/16")
        setup.listener(world, lb["LoadBalancerArn"], {setup.target_group(world, vpc): 1})
        dns = lb["DNSName"]
    address = world.plane.lb_address(dns)
    with socket.create_connection((address, world.plane.lb_port), timeout=5):
        pass
    if kind == "classic":
        world.client("elb").delete_load_balancer(LoadBalancerName=name)
    else:
        world.client("elbv2").delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    assert world.plane.lb_address(dns) is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, world.plane.lb_port), timeout=5)


def test_a_proxy_answers_health_by_its_backends_or_by_itself(world):
    """``backends``: 200 only with a healthy task behind it; ``proxy``: 200 while it runs."""
    from rotator.sandbox.dataplane.addresses import AddressBook
    from rotator.sandbox.dataplane.inventory import Instance
    from rotator.sandbox.dataplane.proxies import ProxyInstance

    slot = world.slot("blue", agents=1, cidr="10.79.0.0/16")  # nothing deployed
    proxy_ip = slot.proxies[0]["PrivateIpAddress"]
    wait_for(lambda: world.endpoint(slot, proxy_ip, 80))
    plain = world.endpoint(slot, proxy_ip, 80)
    assert http().get(plain.url + "/health", timeout=5).status_code == 503
    assert _get(plain.url + "/").status_code == 503
    instance = Instance("i-self", "cn-north-1", "running", proxy_ip, slot.vpc, slot.ami,
                        (("group", slot.group), ("slot", "blue"), ("role", "proxy")))
    own = ProxyInstance(instance, AddressBook(), lambda *key: None, lambda: None, "proxy")
    world.plane.loop.run(own.start())
    try:
        assert http().get(own.server.endpoint.url + "/health", timeout=5).status_code == 200
    finally:
        world.plane.loop.call_soon(own.close)
