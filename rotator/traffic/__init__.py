"""Traffic: Route53 weighted records and classic edge ELB registrations of a group."""

from rotator.traffic.calls import AwsCalls, client_config
from rotator.traffic.elb import ElbRouter, registered_share
from rotator.traffic.route53 import Route53Router
from rotator.traffic.router import GroupTrafficRouter, build_group_router
from rotator.traffic.spec import ElbSpec, RecordSpec, set_identifier

__all__ = [
    "AwsCalls",
    "ElbRouter",
    "ElbSpec",
    "GroupTrafficRouter",
    "RecordSpec",
    "Route53Router",
    "build_group_router",
    "client_config",
    "registered_share",
    "set_identifier",
]
