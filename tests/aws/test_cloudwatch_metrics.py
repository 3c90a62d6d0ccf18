"""The slots' load as rotator reads it from CloudWatch (GetMetricData), published as the load
balancers publish it: per period, counts as sums, latencies as raw values so that
percentiles can be computed ("CloudWatch needs raw data points to calculate percentile
statistics", GetMetricStatistics API reference)."""

from __future__ import annotations

import datetime as dt

from rotator.health.cloudwatch import CloudWatchMetrics
from rotator.ports import SlotOutputs

PERIOD = 60


class Edge:
    def metric_dimensions(self, slot):
        return {"LoadBalancer": f"app/edge/{slot}0001",
                "TargetGroup": f"targetgroup/prd-cn-{slot}/{slot}0002"}


def _publish(cw, namespace, dims, start, counts, errors_name, errors, latency_name, latencies):
    at = dt.datetime.fromtimestamp(start, dt.UTC)
    dimensions = [{"Name": k, "Value": v} for k, v in dims.items()]
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "RequestCount", "Dimensions": dimensions, "Timestamp": at,
         "Value": counts, "Unit": "Count"},
        {"MetricName": errors_name, "Dimensions": dimensions, "Timestamp": at,
         "Value": errors, "Unit": "Count"},
        {"MetricName": latency_name, "Dimensions": dimensions, "Timestamp": at,
         "Values": [v for v, _ in latencies], "Counts": [c for _, c in latencies],
         "Unit": "Seconds"},
    ])


def test_a_slots_load_sums_both_load_balancers_and_takes_the_worse_p99(client, unique):
    cw = client("cloudwatch", retries={"total_max_attempts": 1})
    elb = unique("prd-cn-green")
    start = (int(dt.datetime.now(dt.UTC).timestamp()) // PERIOD - 5) * PERIOD
    _publish(cw, "AWS/ELB", {"LoadBalancerName": elb}, start, 90, "HTTPCode_Backend_5XX", 9,
             "Latency", [(0.01, 89), (0.5, 1)])
    _publish(cw, "AWS/ApplicationELB", Edge().metric_dimensions("green"), start + PERIOD, 10,
             "HTTPCode_Target_5XX_Count", 1, "TargetResponseTime", [(0.02, 9), (0.9, 1)])
    metrics = CloudWatchMetrics(client("cloudwatch", **{"retries": {"total_max_attempts": 1}}),
                                edge=Edge(), period=PERIOD)
    outputs = SlotOutputs(marathon_url="", elb_name=elb, elb_dns="")
    load = metrics.load("green", outputs, start, start + 3 * PERIOD)
    assert load.requests == 100 and load.errors == 10
    assert load.error_ratio == 0.1
    assert load.p99 is not None and 0.5 <= load.p99 <= 0.9
    # a window that holds no whole period yet has nothing to count
    assert metrics.load("green", outputs, start + 10, start + 50).requests == 0
    # nothing published for a slot: no data points, which is no request
    quiet = metrics.load("blue", SlotOutputs("", unique("prd-cn-blue"), ""), start,
                         start + 3 * PERIOD)
    assert quiet.requests == 0 and quiet.p99 is None
