"""The sandbox's data plane: tasks, proxies and load balancers that carry real requests
on loopback, with real health checks and CloudWatch metrics (see :mod:`.plane`)."""

from .plane import DataPlane
from .timescale import DEFAULT_TIME_SCALE, parse_time_scale

__all__ = ["DEFAULT_TIME_SCALE", "DataPlane", "parse_time_scale"]
