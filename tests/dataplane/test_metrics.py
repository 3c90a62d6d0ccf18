"""Item 5: load balancers publish their metrics into the emulator's CloudWatch as AWS
names them, and percentiles work as CloudWatch computes them.

Facts: CloudWatch "needs raw data points to calculate percentile statistics"; a
statistic set gives percentiles only when its SampleCount is 1 or Min equals Max
(GetMetricStatistics API reference). ``Values``/``Counts`` publish raw values with
their counts (PutMetricData API reference). Classic ``RequestCount``, ``Latency`` and
``HTTPCode_Backend_*`` are reported when nonzero; ALB ``RequestCount`` is "always
reported", ``HTTPCode_Target_5XX_Count`` and ``TargetResponseTime`` when nonzero,
``HealthyHostCount`` when health checks are enabled (ELB guides, CloudWatch metrics).
"""

from __future__ import annotations

import datetime as dt
import uuid

from rotator.sandbox.dataplane.faults import ReleaseFault
from tests.dataplane import balancer_setup as setup
from tests.dataplane.conftest import app, deploy, http, wait_for

VHOST = "www.example.test"


def _window():
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)


def test_percentiles_from_raw_values(world):
    cw = world.client("cloudwatch")
    ns, name = f"Test/{uuid.uuid4().hex[:6]}", "Latency"
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # 100 samples: 1..100 ms, published as values with counts (two data points)
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": name, "Timestamp": at, "Unit": "Seconds",
         "Values": [i / 1000 for i in range(1, 51)], "Counts": [1.0] * 50},
        {"MetricName": name, "Timestamp": at, "Unit": "Seconds",
         "Values": [i / 1000 for i in range(51, 101)], "Counts": [1.0] * 50}])
    start, end = _window()
    stats = cw.get_metric_statistics(Namespace=ns, MetricName=name, StartTime=start,
                                     EndTime=end, Period=7200, Statistics=["SampleCount", "Sum"],
                                     ExtendedStatistics=["p99", "p50"])["Datapoints"]
    assert len(stats) == 1
    point = stats[0]
    assert point["SampleCount"] == 100 and abs(point["Sum"] - 5.05) < 1e-9
    assert point["ExtendedStatistics"] == {"p99": 0.099, "p50": 0.05}
    queries = [{"Id": f"q{i}", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": name},
                                               "Period": 7200, "Stat": stat}}
               for i, stat in enumerate(["Sum", "SampleCount", "p99"])]
    found = cw.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
    values = {r["Id"]: r["Values"] for r in found["MetricDataResults"]}
    assert values["q1"] == [100.0] and abs(values["q0"][0] - 5.05) < 1e-9
    assert values["q2"] == [0.099]


def test_a_direct_put_reads_back_as_a_put_over_http(world):
    """The data plane writes its metrics into moto in-process; what CloudWatch answers is
    what it answers for the same data sent with boto3."""
    cw = world.client("cloudwatch")
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    data = [{"MetricName": "Latency", "Timestamp": at, "Unit": "Seconds",
             "Dimensions": [{"Name": "LoadBalancerName", "Value": "lb"}],
             "Values": [0.001, 0.002, 0.009], "Counts": [5.0, 3.0, 1.0]},
            {"MetricName": "HealthyHostCount", "Timestamp": at, "Unit": "Count",
             "Dimensions": [{"Name": "LoadBalancerName", "Value": "lb"}],
             "StatisticValues": {"SampleCount": 2.0, "Sum": 4.0, "Minimum": 2.0, "Maximum": 2.0}},
            {"MetricName": "RequestCount", "Timestamp": at, "Unit": "Count",
             "Dimensions": [{"Name": "LoadBalancerName", "Value": "lb"}], "Value": 9.0}]
    over_http, direct = f"Test/{uuid.uuid4().hex[:6]}", f"Test/{uuid.uuid4().hex[:6]}"
    cw.put_metric_data(Namespace=over_http, MetricData=data)
    world.aws.put_metric_data("cn-north-1", direct, data)
    start, end = _window()

    def read(ns: str) -> list:
        return [cw.get_metric_statistics(
            Namespace=ns, MetricName=d["MetricName"], Dimensions=d["Dimensions"],
            StartTime=start, EndTime=end, Period=60,
            Statistics=["SampleCount", "Sum", "Minimum", "Maximum"],
            ExtendedStatistics=["p50", "p99"])["Datapoints"] for d in data]

    assert read(direct) == read(over_http)
    assert read(direct)[0][0]["ExtendedStatistics"] == {"p50": 0.001, "p99": 0.009}


def test_a_statistic_set_has_no_percentile(world):
    cw = world.client("cloudwatch")
    ns = f"Test/{uuid.uuid4().hex[:6]}"
    cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "M", "StatisticValues": {
        "SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4}}])
    start, end = _window()
    point = cw.get_metric_statistics(Namespace=ns, MetricName="M", StartTime=start, EndTime=end,
                                     Period=7200, Statistics=["Sum"],
                                     ExtendedStatistics=["p99"])["Datapoints"][0]
    assert point["Sum"] == 10 and not point.get("ExtendedStatistics")


def test_an_alb_publishes_requests_errors_latency_and_healthy_hosts(world):
    ami = world.bake(ReleaseFault.of("5xx", rate=0.2).tags())
    slot = world.slot("blue", agents=1, cidr="10.85.0.0/16", ami=ami)
    deploy(slot, app("/web", instances=1, labels={"HAPROXY_0_VHOST": VHOST}))
    vpc, lb = setup.edge(world, slot, cidr="10.95.0.0/16")
    tg = setup.target_group(world, vpc)
    setup.register_proxies(world, tg, slot)
    setup.listener(world, lb["LoadBalancerArn"], {tg: 1})
    wait_for(lambda: set(setup.target_states(world, tg).values()) == {"healthy"})
    url = f"http://{world.plane.lb_address(lb['DNSName'])}:{world.plane.lb_port}/"
    session = http()
    codes = [session.get(url, headers={"Host": VHOST}, timeout=5).status_code
             for _ in range(50)]
    assert codes.count(500) == 10
    period_start = dt.datetime.now(dt.UTC).replace(microsecond=0).timestamp()
    world.plane.publisher.publish(period_start)  # the period's end, without waiting for it
    cw = world.client("cloudwatch")
    full_lb = lb["LoadBalancerArn"].split(":loadbalancer/")[1]
    full_tg = tg.split(":", 5)[5]
    start, end = _window()

    def stat(metric, statistic, dims):
        points = cw.get_metric_statistics(
            Namespace="AWS/ApplicationELB", MetricName=metric, StartTime=start, EndTime=end,
            Period=7200, Statistics=[statistic],
            Dimensions=[{"Name": k, "Value": v} for k, v in dims])["Datapoints"]
        return sum(p[statistic] for p in points)

    lb_dims = [("LoadBalancer", full_lb)]
    tg_dims = [("LoadBalancer", full_lb), ("TargetGroup", full_tg)]
    assert full_lb.startswith("app/") and full_tg.startswith("targetgroup/")
    assert stat("RequestCount", "Sum", lb_dims) == 50
    assert stat("RequestCount", "Sum", tg_dims) == 50
    assert stat("HTTPCode_Target_5XX_Count", "Sum", lb_dims) == 10
    assert stat("HTTPCode_Target_2XX_Count", "Sum", tg_dims) == 40
    assert stat("TargetResponseTime", "SampleCount", lb_dims) == 50
    assert stat("HealthyHostCount", "Maximum", tg_dims) == 1
    found = cw.get_metric_data(StartTime=start, EndTime=end, MetricDataQueries=[{
        "Id": "p99", "MetricStat": {"Period": 7200, "Stat": "p99", "Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime",
            "Dimensions": [{"Name": "LoadBalancer", "Value": full_lb}]}}}])
    p99 = found["MetricDataResults"][0]["Values"]
    assert len(p99) == 1 and 0 < p99[0] < 1.0
    # a period without requests: the ALB still reports RequestCount (zero)
    world.plane.publisher.publish(period_start + 3600)
    later = cw.get_metric_statistics(
        Namespace="AWS/ApplicationELB", MetricName="RequestCount",
        StartTime=dt.datetime.fromtimestamp(period_start + 3600, dt.UTC),
        EndTime=dt.datetime.fromtimestamp(period_start + 3601, dt.UTC), Period=60,
        Statistics=["Sum"], Dimensions=[{"Name": "LoadBalancer", "Value": full_lb}])
    assert [p["Sum"] for p in later["Datapoints"]] == [0.0]


def test_a_classic_elb_reports_nothing_for_a_period_without_requests(world):
    slot = world.slot("blue", agents=1, cidr="10.86.0.0/16")
    deploy(slot, app("/web", instances=1, labels={"HAPROXY_0_VHOST": VHOST}))
    name = setup.classic(world, slot)
    world.client("elb").register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": slot.proxies[0]["InstanceId"]}])
    wait_for(lambda: setup.instance_states(world, name)[slot.proxies[0]["InstanceId"]][0]
             == "InService")
    dns = world.client("elb").describe_load_balancers(
        LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]["DNSName"]
    url = f"http://{world.plane.lb_address(dns)}:{world.plane.lb_port}/"
    for _ in range(7):
        assert http().get(url, headers={"Host": VHOST}, timeout=5).status_code == 200
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0).timestamp() + 7200
    world.plane.publisher.publish(t0)
    world.plane.publisher.publish(t0 + 60)  # nothing flowed in this one
    cw = world.client("cloudwatch")

    def points(metric, at):
        return cw.get_metric_statistics(
            Namespace="AWS/ELB", MetricName=metric,
            StartTime=dt.datetime.fromtimestamp(at, dt.UTC),
            EndTime=dt.datetime.fromtimestamp(at + 60, dt.UTC), Period=60,
            Statistics=["Sum", "Maximum"],
            Dimensions=[{"Name": "LoadBalancerName", "Value": name}])["Datapoints"]

    assert [p["Sum"] for p in points("RequestCount", t0)] == [7.0]
    assert [p["Sum"] for p in points("HTTPCode_Backend_2XX", t0)] == [7.0]
    assert points("RequestCount", t0 + 60) == []
    assert [p["Maximum"] for p in points("HealthyHostCount", t0 + 60)] == [1.0]
