"""End to end: the `rotate` command against a sandbox of its own, in a copy of the project.

The copy holds prd-cn and the prd-sg pair, the edge roots, the shipped policies and a
few fast test policies; the edge target groups drain for 2 s instead of 10 so a rotation
takes about a minute. The sandbox is started once for the session and stopped after it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ROTATE = str(Path(sys.executable).parent / "rotate")
GROUPS = ("prd-cn", "prd-sg-master", "prd-sg-slave")
TTL = 10  # the records' TTL in the sandbox's environment (clients cache answers this long)

FAST_POLICIES = {
    "fast": """
name: fast
steps:
  - weight: 100
gate: {consecutive_successes: 2, no_data: 30s}
deadlines: {provision: 5m, deploy: 2m, verify: 2m, shift: 2m, retire: 5m}
retain_stable: 0s
retire: {quiet_for: 5s, max_wait: 3m}
""",
    "slow-verify": """
name: slow-verify
steps:
  - weight: 100
gate: {consecutive_successes: 8, failure_threshold: 1, no_data: 30s}
deadlines: {provision: 5m, deploy: 2m, verify: 2m, shift: 2m, retire: 5m}
retire: {quiet_for: 5s, max_wait: 3m}
""",
    "bake-watch": """
name: bake-watch
steps:
  - weight: 100
gate: {consecutive_successes: 1, no_data: 30s}
deadlines: {provision: 5m, deploy: 2m, verify: 2m, shift: 2m, retire: 5m}
retain_stable: 25s
retire: {quiet_for: 5s, max_wait: 3m}
""",
    "canary-fast": """
name: canary-fast
steps:
  - weight: 5
  - pause: 6s
  - weight: 25
  - approve: {}
  - weight: 100
gate: {consecutive_successes: 1, no_data: 30s}
deadlines: {provision: 5m, deploy: 2m, verify: 2m, shift: 2m, retire: 5m}
retain_stable: 6s
retire: {quiet_for: 5s, max_wait: 3m}
""",
    # the shipped canary's analysis, with pauses a test can wait out
    "canary-metrics": """
name: canary-metrics
steps:
  - weight: 5
  - pause: 40s
  - weight: 25
  - approve: {}
  - weight: 100
gate:
  consecutive_successes: 1
  no_data: 30s
  metrics: {window: 30s, min_requests: 10, max_error_ratio: 0.02,
            max_error_ratio_over_stable: 0.005, failure_limit: 1}
deadlines: {provision: 5m, deploy: 2m, verify: 2m, shift: 2m, retire: 5m}
retain_stable: 6s
retire: {quiet_for: 5s, max_wait: 3m}
""",
}


class Sandbox:
    def __init__(self, root: Path):
        self.root = root
        self.env = {**os.environ, "ROTATOR_ROOT": str(root)}
        self.env.pop("ROTATOR_ENV", None)

    # -- the command -------------------------------------------------------
    def rotate(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """The command to its end; one still running after ``timeout`` (less than a test's
        300 s) fails the test with its output and where it, and the world, were stuck."""
        proc = subprocess.Popen([ROTATE, *args], cwd=self.root, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(self.stuck(proc, args, timeout)) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def stuck(self, proc: subprocess.Popen, args: tuple[str, ...], timeout: float) -> str:
        """What a command that did not finish was doing: every thread's stack (`kill -USR1`),
        its own then the world's, and their output. The command is killed."""
        proc.send_signal(signal.SIGUSR1)
        folder = self.root / ".rotator/sandbox"
        if (folder / "world.json").exists():
            os.kill(json.loads((folder / "world.json").read_text())["pid"], signal.SIGUSR1)
        time.sleep(3)  # the dumps are written by signal handlers, in their own time
        proc.kill()
        out, err = proc.communicate()
        world_log = folder / "world.log"
        log = world_log.read_text().splitlines()[-400:] if world_log.exists() else []
        return (f"`rotate {' '.join(args)}` still ran after {timeout:.0f}s\n--- its stdout\n"
                f"{out[-4000:]}\n--- its stderr (stacks last)\n{err[-12000:]}\n"
                "--- the world's log (stacks last)\n" + "\n".join(log))

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([ROTATE, *args], cwd=self.root, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

    # -- what the sandbox knows ----------------------------------------------
    @property
    def info(self) -> dict:
        return json.loads((self.root / ".rotator/sandbox/world.json").read_text())

    def bake(self, group: str = "prd-cn") -> str:
        out = self.rotate("sandbox", "bake", "--group", group)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def record(self, group: str = "prd-cn") -> dict | None:
        path = self.root / ".rotator/state-sandbox" / group / "current.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def client(self, service: str, region: str = "cn-north-1"):
        return boto3.client(service, region_name=region, endpoint_url=self.info["aws"],
                            aws_access_key_id="test", aws_secret_access_key="test")

    def edge_name(self, group: str, region: str = "cn-north-1") -> str:
        """The DNS name of the group's edge load balancer."""
        name = self._edges()[group]["load_balancer"]
        return self.client("elbv2", region).describe_load_balancers(
            Names=[name])["LoadBalancers"][0]["DNSName"]

    def load(self, name: str = "www.rotator-demo.cn", *, rps: int = 40, clients: int = 20,
             ttl_ignoring: float = 0.0, duration: str = "10m",
             report_dir: Path | None = None) -> Load:
        """`rotate sandbox load NAME` beside the test, until ``Load.stop``."""
        return Load(self, name, rps=rps, clients=clients, ttl_ignoring=ttl_ignoring,
                    duration=duration, report_dir=report_dir)

    def control(self):
        """The AWS emulator's controls (faults, Route53 propagation), over HTTP."""
        from rotator.sandbox.aws.control_client import AwsEmulatorControl

        return AwsEmulatorControl(self.info["aws"])

    def marathon(self, url: str, path: str, body: dict) -> None:
        """Drive a slot Marathon's sandbox controls, through the sandbox's proxy."""
        proxy = self.info["marathon_proxy"]
        session = requests.Session()
        session.trust_env = False
        resp = session.post(url.rstrip("/") + path, json=body,
                            proxies={"http": proxy}, timeout=10)
        resp.raise_for_status()

    def set_app_health(self, group: str, slot: str, app: str, mode: str) -> None:
        url = self.record(group)["slots"][slot]["marathon_url"]
        self.marathon(url, f"/_sandbox/apps/{app.strip('/')}/health", {"mode": mode})

    def snapshot(self, group: str = "prd-cn", region: str = "cn-north-1") -> dict:
        """The world as the emulator holds it: instances, ELB members, records, workspaces."""
        ec2 = self.client("ec2", region)
        instances: dict[str, int] = {}
        for res in ec2.describe_instances(Filters=[
                {"Name": "tag:group", "Values": [group]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]:
            for inst in res["Instances"]:
                tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                instances[tags.get("slot", "?")] = instances.get(tags.get("slot", "?"), 0) + 1
        elb = self.client("elb", region)
        members = {d["LoadBalancerName"]: sorted(i["InstanceId"] for i in d["Instances"])
                   for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]
                   if d["LoadBalancerName"].startswith(group)}
        edge_targets, edge_weights = self.edge(group, region)
        r53 = self.client("route53", region)
        records = {}
        for zone in r53.list_hosted_zones()["HostedZones"]:
            for rr in r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]:
                if rr.get("SetIdentifier", "").startswith(group):
                    records[(rr["Name"], rr["SetIdentifier"])] = rr.get("Weight")
        s3 = self.client("s3", region)
        workspaces = set()
        bucket = f"rotator-tfstate-{region}"
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            m = re.match(rf"env:/(\w+)/groups/{group}\.tfstate$", obj["Key"])
            if m:
                state = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                if state.get("resources"):
                    workspaces.add(m.group(1))
        return {"instances": instances, "elb_members": members, "records": records,
                "workspaces": sorted(workspaces), "edge_targets": edge_targets,
                "edge_weights": edge_weights}

    def _edges(self) -> dict[str, dict]:
        """Each group's traffic.edge, read once (tests break group.yaml on purpose)."""
        if not hasattr(self, "_edge_specs"):
            import yaml

            self._edge_specs = {
                path.parent.name: (yaml.safe_load(path.read_text()).get("traffic") or {}).get("edge")
                for path in (self.root / "groups").glob("*/group.yaml")}
        return self._edge_specs

    def edge(self, group: str, region: str) -> tuple[dict, dict]:
        """The group's target groups in the edge: slot -> registered IPs (draining included),
        and slot -> weight on the edge listener (empty for a group without an edge)."""
        edge = self._edges().get(group)
        if not edge:
            return {}, {}
        elbv2 = self.client("elbv2", region)
        arns = {slot: elbv2.describe_target_groups(Names=[name])["TargetGroups"][0][
            "TargetGroupArn"] for slot, name in edge["target_groups"].items()}
        targets = {slot: sorted(d["Target"]["Id"] for d in elbv2.describe_target_health(
            TargetGroupArn=arn)["TargetHealthDescriptions"]
            if d["TargetHealth"]["State"] != "unused") for slot, arn in arns.items()}
        lb = elbv2.describe_load_balancers(Names=[edge["load_balancer"]])["LoadBalancers"][0]
        listener = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]
        by_arn = {t["TargetGroupArn"]: t["Weight"]
                  for t in listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]}
        return targets, {slot: by_arn.get(arn, 0) for slot, arn in arns.items()}

    def live_slot(self, group: str = "prd-cn") -> str:
        snap = self.snapshot(group)
        live = {ident.rsplit("-", 1)[1] for (_, ident), w in snap["records"].items() if w}
        assert len(live) == 1, snap
        return live.pop()


class Load:
    """A load generator running beside a test: loopback only, bounded in time and rate."""

    def __init__(self, box: Sandbox, name: str, *, rps: int, clients: int, ttl_ignoring: float,
                 duration: str, report_dir: Path | None = None):
        self.name = name
        args = [ROTATE, "sandbox", "load", name, "--rps", str(rps), "--clients", str(clients),
                "--ttl-ignoring", str(ttl_ignoring), "--duration", duration, "--output", "json"]
        if report_dir is not None:
            args += ["--report", str(report_dir)]
        self.proc = subprocess.Popen(args, cwd=box.root, env=box.env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)

    def stop(self) -> dict:
        """Stop it now; its report (what it sent, what failed and why, who served it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finished()

    def finished(self, timeout: float = 120) -> dict:
        """Its report once it ends (by its duration, or stopped)."""
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        return json.loads(out)

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def prepare_project(root: Path, *, draining: int | None = 2) -> None:
    """A copy of the project's groups, edge roots and policies, with the fast test policies;
    the edge target groups drain for ``draining`` seconds (None: as group.yaml says)."""
    (root / "groups").mkdir(parents=True)
    for name in (*GROUPS, "_modules"):
        shutil.copytree(ROOT / "groups" / name, root / "groups" / name,
                        ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copytree(ROOT / "edge", root / "edge",
                    ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copytree(ROOT / "policies", root / "policies")
    for name, text in FAST_POLICIES.items():
        (root / "policies" / f"{name}.yaml").write_text(text.lstrip())
    if draining is None:
        return
    for conf in (root / "groups").glob("*/group.yaml"):  # short draining: faster retires
        conf.write_text(re.sub(r"deregistration_delay: \d+", f"deregistration_delay: {draining}",
                               conf.read_text()))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    prepare_project(root)
    box = Sandbox(root)
    started = time.monotonic()
    up = box.rotate("sandbox", "up", "--step-seconds", "0.3", timeout=600)
    if up.returncode != 0:
        box.rotate("sandbox", "down")
        pytest.fail(f"sandbox up failed:\n{up.stdout}\n{up.stderr}")
    print(f"\nsandbox up in {time.monotonic() - started:.0f}s")
    box._edges()  # read the groups' edges while their files are whole
    yield box
    box.rotate("sandbox", "down", timeout=120)
    pid_file = root / ".rotator/sandbox/world.pid"
    if pid_file.exists():  # pragma: no cover - down failed: do not leak the world
        os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def wait_for(predicate, timeout: float = 180, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s")
