"""The sandbox's one time setting: how many sandbox seconds one AWS second lasts.

It shortens every health-check interval and timeout (Marathon's, Consul's as the
registrator writes them, the load balancers') and the CloudWatch period. Draining
timeouts and deregistration delays are not scaled: the product waits them out as
configured, and a shorter drain would let it believe requests had time they had not.
"""

from __future__ import annotations

from fractions import Fraction

AWS_METRIC_PERIOD = 60  # seconds: ELB metrics are sent in 60-second intervals
# One AWS minute is ten sandbox seconds: ELB health checks of 10 s with a healthy
# threshold of 2 take ~3 s, and CloudWatch periods are 10 s.
DEFAULT_TIME_SCALE = 1 / 6


def parse_time_scale(text: str | float) -> float:
    """``"1/6"``, ``"0.1"`` or a number; must be > 0."""
    value = float(Fraction(str(text).strip())) if isinstance(text, str) else float(text)
    if not value > 0:
        raise ValueError(f"the time scale must be > 0, not {text!r}")
    return value


def metric_period(scale: float) -> int:
    """Whole seconds (CloudWatch periods are), at least 1."""
    return max(1, round(AWS_METRIC_PERIOD * scale))
