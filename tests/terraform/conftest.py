"""One sandbox for the Terraform tests: the AWS emulator, the real hashicorp/aws provider
running long-lived per region, and helpers that build adapters on the groups' folders."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from rotator.config import Project
from rotator.infra.terraform import TerraformInfrastructure, TerraformRoot
from rotator.sandbox.aws import AwsEmulator
from rotator.sandbox.terraform_runtime import REGION_OF_GROUP, TerraformRuntime
from rotator.sandbox.tf_install import find_provider_mirror

REPO = Path(__file__).resolve().parents[2]
GROUPS = REPO / "groups"
EDGE = REPO / "edge"
REGIONS = ("cn-north-1", "ap-southeast-1")
EDGE_REGION = {"cn": "cn-north-1", "sg": "ap-southeast-1"}


class Delays:
    """What the emulator's injected delays wait with: real time, or, while the test holds
    them (``hold``), until it releases them (``release``): a call is then slow for exactly
    as long as the test needs, however loaded the machine."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def __call__(self, seconds: float) -> None:
        if self._open.is_set():
            time.sleep(seconds)
        else:
            assert self._open.wait(timeout=300), "a held delay was never released"


@dataclass
class TfWorld:
    emulator: AwsEmulator
    runtime: TerraformRuntime
    amis: dict[str, str]  # region -> registered AMI id
    scratch: Path
    delays: Delays

    def ami(self, group: str) -> str:
        return self.amis[REGION_OF_GROUP[group]]

    def group(self, name: str, folder: Path | None = None, **settings) -> TerraformInfrastructure:
        """An adapter on groups/<name> (or a copy of it), with its own data dir and state key,
        and the variables its group.yaml gives."""
        key = f"tests/{name}-{uuid.uuid4().hex[:8]}/terraform.tfstate"
        data_dir = self.scratch / f"data-{uuid.uuid4().hex[:8]}"
        settings.setdefault("variables", dict(Project(REPO).group(name).terraform.vars))
        return TerraformInfrastructure(
            folder or GROUPS / name,
            group=name,
            settings=self.runtime.settings(
                name, REGION_OF_GROUP[name], key=key, data_dir=data_dir, **settings
            ),
        )

    edges: dict[str, dict] = None  # edge name -> its outputs, applied once per session

    def edge(self, name: str) -> TerraformRoot:
        region = EDGE_REGION[name]
        return TerraformRoot(
            EDGE / name,
            name=f"edge-{name}",
            settings=self.runtime.settings(
                "edge",
                region,
                key=f"tests/edge-{name}/terraform.tfstate",
                data_dir=self.scratch / f"data-edge-{name}",
            ),
        )

    def copy_group(self, name: str) -> Path:
        """A private copy of the group folder, next to a copy of the shared modules."""
        root = self.scratch / f"copy-{uuid.uuid4().hex[:8]}"
        shutil.copytree(GROUPS / "_modules", root / "_modules")
        shutil.copytree(GROUPS / name, root / name, ignore=shutil.ignore_patterns(".terraform*"))
        return root / name

    def running_instance_ids(self, region: str, group: str, slot: str) -> set[str]:
        """Running instances of a group's slot. moto's state is per process, and other
        tests in this process may hold live slots: compare snapshots, not totals."""
        ec2 = self.emulator.client("ec2", region, internal=True)
        found = set()
        for r in ec2.describe_instances(
            Filters=[
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
                {"Name": "tag:group", "Values": [group]},
                {"Name": "tag:slot", "Values": [slot]},
            ]
        )["Reservations"]:
            found |= {i["InstanceId"] for i in r["Instances"]}
        return found

    def instance_states(self, region: str, ids: list[str]) -> set[str]:
        ec2 = self.emulator.client("ec2", region, internal=True)
        found = ec2.describe_instances(InstanceIds=list(ids))["Reservations"]
        return {i["State"]["Name"] for r in found for i in r["Instances"]}


@pytest.fixture(scope="session")
def tf_world(tmp_path_factory):
    if find_provider_mirror() is None:
        pytest.skip("no filesystem mirror of hashicorp/aws on this machine")
    scratch = tmp_path_factory.mktemp("tf")
    delays = Delays()
    emulator = AwsEmulator(ami_validation=True, sleep=delays).start()
    emulator.warm(*REGIONS)
    runtime = TerraformRuntime(endpoint_url=emulator.url, state_dir=scratch / "state")
    try:
        runtime.start(REGIONS)
        amis = {r: emulator.register_ami("rotator-base", region=r) for r in REGIONS}
        world = TfWorld(emulator, runtime, amis, scratch, delays)
        # The regions' edges are long-lived and every slot peers with its region's: apply
        # them once (in parallel: the provider waits about a minute for each load balancer).
        with ThreadPoolExecutor(len(EDGE_REGION)) as pool:
            applied = {e: pool.submit(world.edge(e).apply) for e in EDGE_REGION}
            world.edges = {e: f.result() for e, f in applied.items()}
        yield world
        for e in EDGE_REGION:
            root = world.edge(e)
            root.destroy_root()
            assert root.resources("default") == [], "an edge root destroys cleanly"
    finally:
        runtime.stop()
        emulator.stop()
