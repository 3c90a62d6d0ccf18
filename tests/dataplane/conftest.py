"""A small world in one process: the AWS emulator followed by a data plane, a Consul, and
slots (a VPC, agent and proxy instances, a Marathon whose tasks run for real).

The time scale is 1/20: Marathon's 10 s check interval is 0.5 s, an ELB's 10 s interval
0.5 s, a CloudWatch period 3 s. Every wait polls a condition with a deadline."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests

from rotator.sandbox.aws import AwsEmulator
from rotator.sandbox.consul import ConsulCore
from rotator.sandbox.dataplane import DataPlane
from rotator.sandbox.marathon import Agent, MarathonEmulator
from rotator.sandbox.world import Registrator

REGION = "cn-north-1"
SCALE = 0.05


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        time.sleep(interval)


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only, never a proxy from the environment
    return session


@dataclass
class Slot:
    group: str
    name: str
    vpc: str
    subnet: str
    ami: str
    agents: list[dict[str, Any]]
    proxies: list[dict[str, Any]]
    marathon: MarathonEmulator
    registrator: Registrator

    @property
    def key(self) -> tuple[str, str, str]:
        return REGION, self.group, self.name


@dataclass
class World:
    aws: AwsEmulator
    plane: DataPlane
    consul: ConsulCore
    slots: dict[tuple[str, str, str], Slot] = field(default_factory=dict)

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.aws.url,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def bake(self, tags: list[dict[str, str]] | None = None) -> str:
        return self.aws.register_ami(f"test-{uuid.uuid4().hex[:8]}", region=REGION, tags=tags)

    def slot(self, name: str = "blue", *, agents: int = 2, proxies: int = 1,
             ami: str | None = None, cidr: str = "10.60.0.0/16",
             beside: Slot | None = None) -> Slot:
        """A slot in a VPC of its own (``cidr``), or in ``beside``'s VPC (a subnet of it)."""
        ec2 = self.client("ec2")
        group = f"g{uuid.uuid4().hex[:6]}"
        ami = ami or self.bake()
        if beside is None:
            vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
            subnet_cidr = cidr.replace("0.0/16", "1.0/24")
        else:
            vpc = beside.vpc
            block = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"]
            subnet_cidr = block.replace("0.0/16", "2.0/24")
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=subnet_cidr)
        subnet_id = subnet["Subnet"]["SubnetId"]

        def run(role: str, count: int) -> list[dict[str, Any]]:
            if not count:
                return []
            return ec2.run_instances(
                ImageId=ami, MinCount=count, MaxCount=count, InstanceType="t3.micro",
                SubnetId=subnet_id, TagSpecifications=[{"ResourceType": "instance", "Tags": [
                    {"Key": "group", "Value": group}, {"Key": "slot", "Value": name},
                    {"Key": "role", "Value": role}]}])["Instances"]

        agent_list, proxy_list = run("mesos-agent", agents), run("proxy", proxies)
        registrator = Registrator(self.consul, REGION, group, name, SCALE)
        marathon = MarathonEmulator(
            agents=[Agent(i["InstanceId"], i["PrivateIpAddress"]) for i in agent_list],
            step_seconds=0.05, listener=registrator, time_scale=SCALE,
            runtime=self.plane.slot_tasks(REGION, vpc))
        slot = Slot(group, name, vpc, subnet_id, ami, agent_list, proxy_list, marathon,
                    registrator)
        self.slots[slot.key] = slot
        return slot

    def endpoint(self, slot: Slot, host: str, port: int):
        return self.plane.book.lookup(host, port, region=REGION, networks=[slot.vpc])


def _ticker(world: World):
    import threading

    stop = threading.Event()

    def run():
        while not stop.wait(0.02):
            for slot in list(world.slots.values()):
                slot.marathon.advance()

    threading.Thread(target=run, daemon=True, name="marathon-ticker").start()
    return stop


@pytest.fixture(scope="module")
def world():
    aws = AwsEmulator(ami_validation=False).start()
    aws.warm(REGION)
    holder: dict[str, World] = {}

    def marathons(region: str, group: str, slot: str):
        return holder["w"].slots.get((region, group, slot), None) and \
            holder["w"].slots[(region, group, slot)].marathon

    plane = DataPlane(aws, time_scale=SCALE, marathons=marathons)

    def probe_target(dc: str, kind: str, target: str):
        from urllib.parse import urlsplit

        parts = urlsplit(target if kind == "http" else f"tcp://{target}")
        endpoint = plane.book.lookup(parts.hostname or "", parts.port or 80, region=dc)
        if endpoint is None:
            return None
        if kind == "http":
            return parts._replace(netloc=f"{endpoint.host}:{endpoint.port}").geturl()
        return f"{endpoint.host}:{endpoint.port}"

    consul = ConsulCore([REGION], probe_target=probe_target)
    plane.start()
    w = holder["w"] = World(aws, plane, consul)
    stop = _ticker(w)
    yield w
    stop.set()
    plane.stop()
    consul.close()
    aws.stop()


def app(app_id: str = "/web", instances: int = 2, **extra: Any) -> dict[str, Any]:
    body = {"id": app_id, "cmd": "serve", "instances": instances,
            "portDefinitions": [{"port": 0, "name": "http"}],
            "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                              "gracePeriodSeconds": 60, "intervalSeconds": 10,
                              "timeoutSeconds": 5, "maxConsecutiveFailures": 3}]}
    body.update(extra)
    return body


def deploy(slot: Slot, *apps: dict[str, Any]) -> None:
    for body in apps:
        slot.marathon.create_app(body)
    wait_for(lambda: not slot.marathon.list_deployments(), timeout=20)
