"""A real DNS server for the sandbox, answering from the AWS emulator's hosted zones."""

from .answers import LB_TTL, ZoneAnswers, choose_weighted
from .server import SandboxDns
from .zones import MotoHostedZones, RecordSet, StaticZones, ZoneMatch, ZoneSource

__all__ = ["LB_TTL", "MotoHostedZones", "RecordSet", "SandboxDns", "StaticZones", "ZoneAnswers",
           "ZoneMatch", "ZoneSource", "choose_weighted"]
