"""What a slot's load balancers served, read from CloudWatch (the ``Metrics`` port).

A slot is reached two ways: through its weighted records, at its own classic ELB
(``AWS/ELB``, dimension ``LoadBalancerName``: ``RequestCount``, ``HTTPCode_Backend_5XX``,
``Latency``), and through the edge, at its target group (``AWS/ApplicationELB``, dimensions
``LoadBalancer`` and ``TargetGroup``: ``RequestCount``, ``HTTPCode_Target_5XX_Count``,
``TargetResponseTime``). Counts are summed over both; the p99 is the higher of the two
(percentiles of two populations cannot be merged, the worse one stands).

Facts (Elastic Load Balancing CloudWatch metrics guides): metrics are published per
period (60 s), only when requests flow for counts of a classic ELB ("Reporting criteria:
There is a nonzero value"), so no data point is zero requests; ``Sum`` is the useful
statistic of counts, percentiles (``p99``) of latencies. Only whole periods are asked for:
a period still running has not been published yet.
"""

from __future__ import annotations

import math
from typing import Any

from rotator.ports import SlotLoad, SlotOutputs
from rotator.traffic.calls import AwsCalls


class CloudWatchMetrics:
    def __init__(self, cloudwatch: Any, *, edge: Any | None = None, period: float = 60.0,
                 calls: AwsCalls | None = None):
        self.cloudwatch = cloudwatch
        self.edge = edge  # EdgeRouter: where the slot's target group is
        self.period = float(period)
        self.calls = calls or AwsCalls()

    def _queries(self, slot: str, outputs: SlotOutputs, span: int) -> list[dict[str, Any]]:
        def metric(qid: str, namespace: str, name: str, dims: dict[str, str], stat: str,
                   period: int) -> dict[str, Any]:
            return {"Id": qid, "ReturnData": True, "MetricStat": {
                "Metric": {"Namespace": namespace, "MetricName": name,
                           "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]},
                "Period": period, "Stat": stat}}

        step = int(self.period)
        elb = {"LoadBalancerName": outputs.elb_name}
        queries = [
            metric("elb_requests", "AWS/ELB", "RequestCount", elb, "Sum", step),
            metric("elb_errors", "AWS/ELB", "HTTPCode_Backend_5XX", elb, "Sum", step),
            metric("elb_p99", "AWS/ELB", "Latency", elb, "p99", span),
        ]
        if self.edge is not None:
            dims = self.edge.metric_dimensions(slot)
            queries += [
                metric("tg_requests", "AWS/ApplicationELB", "RequestCount", dims, "Sum", step),
                metric("tg_errors", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", dims,
                       "Sum", step),
                metric("tg_p99", "AWS/ApplicationELB", "TargetResponseTime", dims, "p99", span),
            ]
        return queries

    def window(self, start: float, end: float) -> tuple[int, int]:
        """[start, end) on the period grid, whole periods only."""
        step = self.period
        return int(math.ceil(start / step) * step), int(math.floor(end / step) * step)

    def load(self, slot: str, outputs: SlotOutputs, start: float, end: float) -> SlotLoad | None:
        first, last = self.window(start, end)
        if last <= first:
            return SlotLoad(0, 0)  # not one whole period yet: nothing to count
        answer = self.calls(
            self.cloudwatch, "get_metric_data",
            MetricDataQueries=self._queries(slot, outputs, last - first),
            StartTime=first, EndTime=last,
        )
        values = {r["Id"]: list(r.get("Values", [])) for r in answer["MetricDataResults"]}
        requests = sum(values.get("elb_requests", [])) + sum(values.get("tg_requests", []))
        errors = sum(values.get("elb_errors", [])) + sum(values.get("tg_errors", []))
        latencies = [v for k in ("elb_p99", "tg_p99") for v in values.get(k, [])]
        return SlotLoad(requests, errors, max(latencies) if latencies else None)
