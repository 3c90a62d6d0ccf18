"""Traffic: Route53 weighted records and the edge listener's weights of a group."""

from rotator.traffic.calls import AwsCalls, client_config
from rotator.traffic.edge import EdgeRouter
from rotator.traffic.route53 import Route53Router
from rotator.traffic.router import GroupTrafficRouter, build_group_router
from rotator.traffic.spec import EdgeSpec, RecordSpec, set_identifier

__all__ = [
    "AwsCalls",
    "EdgeRouter",
    "EdgeSpec",
    "GroupTrafficRouter",
    "RecordSpec",
    "Route53Router",
    "build_group_router",
    "client_config",
    "set_identifier",
]
