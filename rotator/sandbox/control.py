"""Starting, stopping and seeding the sandbox world from the `rotate` command.

``up`` starts the world process in the background, writes the environment
file that points rotator at it, applies the long-lived edge roots (hosted
zones, edge ELBs), bakes a base AMI per region and builds the ``blue`` slot
of every group through rotator's own engine, so the base world is exactly
what a first rotation leaves behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml

from rotator.config import Project
from rotator.errors import InputError, RotatorError
from rotator.sandbox.world import REGIONS, SANDBOX_RECORD_TTL, environment_document

EDGE_ROOTS = {"cn-north-1": "edge/cn", "ap-southeast-1": "edge/sg"}
BASE_AMI_NAME = "rotator-base"


class SandboxError(RotatorError):
    exit_code = 2


class Sandbox:
    def __init__(self, project: Project):
        self.project = project
        self.folder = project.root / ".rotator" / "sandbox"
        self.env_file = self.folder / "environment.yaml"
        self.world_file = self.folder / "world.json"
        self.pid_file = self.folder / "world.pid"
        self.log_file = self.folder / "world.log"
        self.seed_file = self.folder / "seed.json"

    # ------------------------------------------------------------------ process

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def info(self) -> dict[str, Any] | None:
        if self.pid() is None or not self.world_file.is_file():
            return None
        return json.loads(self.world_file.read_text())

    def start_world(self, step_seconds: float = 0.5, timeout: float = 120.0,
                    time_scale: str | None = None) -> dict[str, Any]:
        info = self.info()
        if info is not None:
            return info
        self.folder.mkdir(parents=True, exist_ok=True)
        self.world_file.unlink(missing_ok=True)
        log = open(self.log_file, "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rotator.sandbox.world", "--dir", str(self.folder),
             "--step-seconds", str(step_seconds),
             *(["--time-scale", str(time_scale)] if time_scale else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.project.root,
        )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while not self.world_file.is_file():
            if proc.poll() is not None:
                raise SandboxError("the sandbox world stopped while starting:\n"
                                   + self._log_tail())
            if time.monotonic() > deadline:
                raise SandboxError(f"the sandbox world did not start in {timeout:.0f}s:\n"
                                   + self._log_tail())
            time.sleep(0.1)
        info = json.loads(self.world_file.read_text())
        doc = environment_document(info, ".rotator/state-sandbox")
        self.env_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        return info

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        # the world's own error message, when it names a setting, is the useful part
        return "\n".join(text[-lines:])

    def stop_world(self, timeout: float = 30.0) -> bool:
        pid = self.pid()
        self.env_file.unlink(missing_ok=True)
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        self._stop_orphaned_providers()
        self.pid_file.unlink(missing_ok=True)
        self.world_file.unlink(missing_ok=True)
        self.seed_file.unlink(missing_ok=True)
        state = self.project.root / ".rotator" / "state-sandbox"
        if state.is_dir():
            import shutil

            shutil.rmtree(state)
        return True

    def _stop_orphaned_providers(self) -> None:
        """Providers run in sessions of their own: a world that had to be killed leaves
        them behind, so stop whatever its state folder still records."""
        from rotator.sandbox.tf_provider import ProviderDaemon

        for workdir in (self.folder / "terraform" / "providers").glob("*"):
            daemon = ProviderDaemon.attach(workdir)
            if daemon is not None:
                daemon.stop()

    # ------------------------------------------------------------------ seeding

    def control(self):
        from rotator.sandbox.aws.control_client import AwsEmulatorControl

        info = self.info()
        if info is None:
            raise SandboxError("the sandbox is not running: `rotate sandbox up` starts it")
        return AwsEmulatorControl(info["aws"])

    def bake(self, region: str, from_ami: str | None = None, name: str | None = None,
             fault: Any = None) -> str:
        """Register an AMI; with ``fault`` (a ``ReleaseFault``) its tasks misbehave."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self.control().register_ami(name or f"rotator-app-{stamp}-{time.time_ns() % 10**6}",
                                           region=region, from_ami=from_ami,
                                           tags=fault.tags() if fault is not None else None)

    def seed(self) -> dict[str, Any]:
        try:
            return json.loads(self.seed_file.read_text())
        except FileNotFoundError:
            return {}

    def apply_edges(self) -> None:
        from rotator.sandbox.edge import apply_edge

        info = self.info()
        with ThreadPoolExecutor(len(REGIONS)) as pool:
            for fut in [pool.submit(apply_edge, self.project.root / EDGE_ROOTS[r], r, info,
                                    self.folder) for r in REGIONS]:
                fut.result()

    def validate_groups(self) -> None:
        from rotator.session import Session

        for name in self.project.group_names():
            Session.open(self.project, name, None).infra.validate()

    def build_base(self, say) -> dict[str, Any]:
        """Bake base AMIs and build the blue slot of every group that has none yet."""
        from rotator.render import PlainRenderer
        from rotator.session import Session

        seed = self.seed()
        amis = seed.get("base_amis") or {r: self.bake(r, name=f"{BASE_AMI_NAME}-{r}")
                                         for r in REGIONS}
        self.seed_file.write_text(json.dumps({"base_amis": amis}))

        class Prefixed(PlainRenderer):
            def __call__(self, event):
                if event.kind in ("step-done", "finished", "step-failed", "rollback"):
                    super().__call__(event)

        def build(name: str) -> tuple[str, str]:
            session = Session.open(self.project, name, None)
            if session.store.load(name) and session.store.load(name)["status"] == "done":
                return name, "already built"
            session.preflight(amis[session.group.aws.region])
            record = session.engine(Prefixed()).start(amis[session.group.aws.region])
            if record.status.value == "rolled-back":
                # The first build is rolled back cleanly on an emulator hiccup: try once more.
                record = session.engine(Prefixed()).start(amis[session.group.aws.region])
            return name, record.status.value + (f": {record.reason}" if record.reason else "")

        def build_pair(names: list[str]) -> list[tuple[str, str]]:
            return [build(name) for name in names]  # a pair's two groups one after the other

        results = {}
        with ThreadPoolExecutor(5) as pool:
            for built in pool.map(build_pair, self._build_order()):
                for name, outcome in built:
                    results[name] = outcome
                    say(f"  {name}: {outcome}")
        bad = {n: o for n, o in results.items() if not o.startswith(("done", "already"))}
        if bad:
            raise SandboxError("the base world could not be built: " + "; ".join(
                f"{n}: {o}" for n, o in bad.items()))
        self._masters_take_traffic(say)
        return {"base_amis": amis, "groups": results}

    def _build_order(self) -> list[list[str]]:
        """The groups to build, a pair's two together (its standby second): the two share
        their records and edge, so their rotations run one at a time."""
        names = self.project.group_names()
        standby = {n: self.project.group(n).peer for n in names if self.project.group(n).standby}
        return [[n, *[s for s, peer in standby.items() if peer == n]]
                for n in names if n not in standby or standby[n] not in names]

    def _masters_take_traffic(self, say) -> None:
        """A pair's standby carries no weight until a failover."""
        from rotator.failover_runner import failover_between

        for name in self.project.group_names():
            group = self.project.group(name)
            if group.standby and group.peer:
                failover_between(self.project, name, group.peer, force=False, action="failback")
                say(f"  {group.peer}: serves the pair's records ({name} on standby)")

    def up(self, say, step_seconds: float = 0.5, time_scale: str | None = None) -> dict[str, Any]:
        started = time.monotonic()
        self.start_world(step_seconds, time_scale=time_scale)
        say(f"world running (pid {self.pid()}); environment in {self.env_file}")
        say(f"  records are written with a {SANDBOX_RECORD_TTL}s TTL here "
            "(environment: traffic.record_ttl), CloudWatch periods last "
            f"{self.info().get('metric_period', 60)}s")
        with ThreadPoolExecutor(1) as pool:
            # Terraform validates each group's configuration (seconds each, verdict cached)
            # while the edges are applied, so the base builds' preflights find it done.
            validated = pool.submit(self.validate_groups)
            self.apply_edges()
            validated.result()
        say("edge roots applied (hosted zones, edge VPCs and load balancers)")
        result = self.build_base(say)
        say(f"sandbox up in {time.monotonic() - started:.0f}s")
        return result


def require_project_env(project: Project) -> None:
    if not (project.root / ".rotator" / "sandbox" / "environment.yaml").is_file():
        raise InputError("the sandbox is not running: `rotate sandbox up` starts it")
