"""rotator: immutable infrastructure rotations on AWS."""

__version__ = "0.1.0"
