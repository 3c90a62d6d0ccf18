"""The embedded world: one background process hosting every emulator on loopback.

- AWS: moto behind the project's fault/gap layer (``rotator.sandbox.aws``);
- Terraform: the CLI configuration and one long-lived provider per region;
- Consul: one emulator serving both regions' datacenters;
- Marathon: one emulator per group slot, created when its Marathon instance
  (an EC2 instance tagged ``role=marathon``) is first addressed. Slot
  Marathons are reached at their private VPC address *through* the fleet,
  which acts as an HTTP proxy: no packet ever leaves loopback. Their tasks run
  on the slot's ``mesos-agent`` instances and register in Consul with the
  slot's tag, as registrator would; a slot whose Marathon instance is gone
  loses its tasks and its Consul services.
- DNS: a real DNS server (UDP and TCP) answering from the hosted zones, with
  their weights and TTLs; load balancer names resolve to their loopback
  addresses (``World.lb_address``).
- the data plane (``rotator.sandbox.dataplane``): every task a real HTTP
  endpoint, every proxy instance and load balancer a real proxy, with real
  health checks and CloudWatch metrics; one time scale (``--time-scale``)
  shortens every health-check interval and metric period.

``python -m rotator.sandbox.world --dir .rotator/sandbox`` runs it until
SIGTERM; ``world.json`` in that folder says where everything listens.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rotator.diagnostics import dump_stacks_on
from rotator.sandbox.aws import AwsEmulator
from rotator.sandbox.consul import ConsulCore, ConsulServer
from rotator.sandbox.consul.durations import format_duration
from rotator.sandbox.dataplane import DEFAULT_TIME_SCALE, DataPlane, parse_time_scale
from rotator.sandbox.dns import MotoHostedZones, SandboxDns
from rotator.sandbox.dns.answers import EvenDraws
from rotator.sandbox.ec2_view import Ec2View
from rotator.sandbox.heap import keep_collections_short
from rotator.sandbox.marathon import Agent, MarathonEmulator, MarathonFleet, ServerThread, TaskInfo
from rotator.sandbox.terraform_runtime import TOOL_ENV, TerraformRuntime, emulator_backend

log = logging.getLogger("rotator.sandbox.world")

REGIONS = ("cn-north-1", "ap-southeast-1")
SANDBOX_RECORD_TTL = 10
# How long a thread that wants the GIL waits before the holder must let go (Python's
# default: 5 ms). The data plane's event loop gives the GIL up at every socket call; with
# moto busy serving Terraform in another thread, each call cost it up to 5 ms and requests
# queued behind them. Threads only switch this often when one of them waits.
SWITCH_INTERVAL = 0.0005
# What a proxy instance's /health reflects: "backends" (a healthy task behind it), as a
# marathon-lb style proxy does, so a slot's ELB lags its apps by its health checks (rotator
# waits for it before moving weight); "proxy" (the proxy process alone) for experiments.
PROXY_HEALTH = "backends"


class Registrator:
    """Registers a slot's tasks in Consul with an HTTP (or TCP) check of the task itself.

    It knows a task only by what its app definition says, as the registrars of a real
    cluster do: gliderlabs/registrator reads ``SERVICE_NAME``, ``SERVICE_TAGS`` and
    ``SERVICE_CHECK_HTTP``/``SERVICE_CHECK_TCP``/``SERVICE_CHECK_INTERVAL``/
    ``SERVICE_CHECK_TIMEOUT`` from the container's environment or labels;
    allegro/marathon-consul registers apps labelled ``consul`` (its value, when set, is the
    service name) and turns every label whose value is ``tag`` into a tag. Without a
    ``SERVICE_CHECK_*`` setting the check is the app's first Marathon health check.
    Consul's own check runner probes the task's private address, which the sandbox's
    address book maps to the task's loopback endpoint; intervals and timeouts are
    multiplied by the sandbox's time scale.
    """

    def __init__(self, consul: ConsulCore, datacenter: str, group: str, slot: str,
                 time_scale: float = 1.0):
        self.dc = consul.dc(datacenter)
        self.group, self.slot = group, slot  # of the node (from its EC2 tags), not the tasks
        self.time_scale = time_scale
        self.tasks: dict[str, str] = {}  # task id -> node

    @staticmethod
    def _meta(task: TaskInfo, key: str) -> str:
        return task.env.get(key) or task.labels.get(key) or ""

    @classmethod
    def service_name(cls, task: TaskInfo) -> str:
        return (cls._meta(task, "SERVICE_NAME") or task.labels.get("consul")
                or task.app_id.strip("/").rsplit("/", 1)[-1])

    @classmethod
    def tags(cls, task: TaskInfo) -> list[str]:
        tags = [t.strip() for t in cls._meta(task, "SERVICE_TAGS").split(",") if t.strip()]
        if "consul" in task.labels:
            tags += [k for k, v in task.labels.items() if v == "tag" and k not in tags]
        return tags

    def _scaled(self, seconds: float) -> str:
        return format_duration(max(0.001, seconds * self.time_scale))

    def check(self, task: TaskInfo) -> dict[str, Any] | None:
        from rotator.sandbox.consul.durations import parse_duration

        port = task.ports[0] if task.ports else 0
        http, tcp = self._meta(task, "SERVICE_CHECK_HTTP"), self._meta(task, "SERVICE_CHECK_TCP")
        interval = parse_duration(self._meta(task, "SERVICE_CHECK_INTERVAL") or "10s")
        timeout = parse_duration(self._meta(task, "SERVICE_CHECK_TIMEOUT") or "0s") or None
        if not http and not tcp and task.health_checks:
            hc = task.health_checks[0]
            protocol = str(hc.get("protocol", "HTTP")).upper().removeprefix("MESOS_")
            index = int(hc.get("portIndex") or 0)
            port = task.ports[index] if index < len(task.ports) else port
            interval = float(hc.get("intervalSeconds", 10))
            timeout = float(hc.get("timeoutSeconds", 5))
            if protocol == "TCP":
                tcp = "true"
            else:
                http = hc.get("path") or "/" if protocol != "COMMAND" else "/health"
        if not http and not tcp:
            return None
        check: dict[str, Any] = {"CheckID": f"service:{task.task_id}", "Name": "service check",
                                 "Interval": self._scaled(interval)}
        if timeout:
            check["Timeout"] = self._scaled(timeout)
        if http:
            check["HTTP"] = f"http://{task.host}:{port}{http if http.startswith('/') else '/' + http}"
        else:
            check["TCP"] = f"{task.host}:{port}"
        return check

    def task_started(self, task: TaskInfo) -> None:
        self.dc.register_node(task.host, task.host, meta={"group": self.group, "slot": self.slot})
        definition: dict[str, Any] = {
            "ID": task.task_id,
            "Name": self.service_name(task),
            "Tags": self.tags(task),
            "Address": task.host,
            "Port": task.ports[0] if task.ports else 0,
            "Meta": {"marathon_app": task.app_id},
        }
        check = self.check(task)
        if check is not None:
            definition["Check"] = check
        self.dc.register_service(definition, node=task.host)
        self.tasks[task.task_id] = task.host

    def task_health_changed(self, task: TaskInfo, alive: bool) -> None:
        pass  # Consul runs its own check of the task

    def task_killed(self, task: TaskInfo) -> None:
        node = self.tasks.pop(task.task_id, None)
        if node is not None:
            self.dc.deregister_service(task.task_id, node=node)

    def forget_all(self) -> None:
        for task_id, node in list(self.tasks.items()):
            self.dc.deregister_service(task_id, node=node)
        self.tasks.clear()


class SlotMarathons:
    """Finds (and creates) the Marathon emulator behind a slot's Marathon address.

    What it knows of EC2 comes from the world's :class:`Ec2View`: a slot's agents are
    read again only after an instance changed, and ``sweep`` runs after such a change.
    """

    def __init__(self, aws: AwsEmulator, consul: ConsulCore, step_seconds: float,
                 dataplane: DataPlane | None = None, time_scale: float = 1.0,
                 ec2: Ec2View | None = None):
        self.aws = aws
        self.consul = consul
        self.step_seconds = step_seconds
        self.dataplane = dataplane
        self.time_scale = time_scale
        self.ec2 = ec2 or Ec2View(aws)
        self.by_ip: dict[str, tuple[MarathonEmulator, Registrator, str, str]] = {}
        # (region, group, slot) -> Marathon; read without the lock (the data plane's
        # proxies ask on every change of their tasks and must not wait for EC2 reads)
        self.by_slot: dict[tuple[str, str, str], MarathonEmulator] = {}
        self.lock = threading.Lock()

    def _agents(self, region: str, group: str, slot: str):
        def agents() -> list[Agent]:
            return [Agent(i.id, i.private_ip or i.id)
                    for i in self.ec2.find(region, role="mesos-agent", group=group, slot=slot)]
        return agents

    def resolve(self, host_port: str) -> MarathonEmulator | None:
        ip = host_port.rsplit(":", 1)[0]
        with self.lock:
            if ip in self.by_ip:
                return self.by_ip[ip][0]
            inst = self.ec2.at(ip, REGIONS, role="marathon")
            if inst is None:
                return None
            region = inst.region
            group, slot = inst.tag("group") or "?", inst.tag("slot") or "?"
            registrator = Registrator(self.consul, region, group, slot, self.time_scale)
            runtime = (None if self.dataplane is None
                       else self.dataplane.slot_tasks(region, inst.vpc_id or ""))
            emulator = MarathonEmulator(agents=self._agents(region, group, slot),
                                        step_seconds=self.step_seconds,
                                        listener=registrator, leader=host_port,
                                        runtime=runtime, time_scale=self.time_scale)
            self.by_ip[ip] = (emulator, registrator, region, inst.id)
            self.by_slot[(region, group, slot)] = emulator
            log.info("Marathon for %s/%s at %s", group, slot, host_port)
            return emulator

    def for_slot(self, region: str, group: str, slot: str) -> MarathonEmulator | None:
        """The Marathon of a slot, once it has been addressed (a slot's proxies ask)."""
        return self.by_slot.get((region, group, slot))

    def emulators(self) -> list[MarathonEmulator]:
        with self.lock:
            return [e for e, _, _, _ in self.by_ip.values()]

    def sweep(self) -> None:
        """Forget the Marathons (and their Consul services) of destroyed slots."""
        with self.lock:
            entries = list(self.by_ip.items())
        for ip, (_, registrator, region, instance_id) in entries:
            if not self.ec2.alive(region, instance_id):
                registrator.forget_all()
                emulator = self.by_ip.get(ip, (None,))[0]
                runtime = getattr(emulator, "runtime", None)
                if runtime is not None:
                    runtime.close()
                with self.lock:
                    self.by_ip.pop(ip, None)
                    key = (region, registrator.group, registrator.slot)
                    if self.by_slot.get(key) is emulator:
                        del self.by_slot[key]
                log.info("slot %s-%s is gone: its Marathon and services too",
                         registrator.group, registrator.slot)


class World:
    def __init__(self, folder: Path, *, step_seconds: float = 0.5, reattach: bool = True,
                 time_scale: float = DEFAULT_TIME_SCALE, proxy_health: str = PROXY_HEALTH):
        self.folder = folder
        self.step_seconds = step_seconds
        self.reattach = reattach
        self.time_scale = time_scale
        self.proxy_health = proxy_health
        self._stop = threading.Event()
        self._instances_changed = threading.Event()

    def start(self) -> dict[str, Any]:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.aws = AwsEmulator().start()
        self.aws.warm(*REGIONS)
        self.dataplane = DataPlane(self.aws, time_scale=self.time_scale,
                                   marathons=lambda *slot: self.marathons.for_slot(*slot),
                                   proxy_health=self.proxy_health)
        self.consul = ConsulCore(list(REGIONS), probe_target=self._consul_probe_target)
        self.consul_server = ConsulServer(self.consul, port=0)
        self.consul_server.start()
        self.ec2 = Ec2View(self.aws)
        self.ec2.on_change(self._instances_changed.set)
        self.marathons = SlotMarathons(self.aws, self.consul, self.step_seconds,
                                       self.dataplane, self.time_scale, self.ec2)
        self.dataplane.start()
        self.fleet_server = ServerThread(MarathonFleet(self.marathons.resolve,
                                                       self.marathons.emulators))
        self.fleet_server.start()
        self.terraform = TerraformRuntime(endpoint_url=self.aws.url,
                                          state_dir=self.folder / "terraform",
                                          reattach=self.reattach).start(REGIONS)
        self.dns = SandboxDns(MotoHostedZones(), self.lb_address, rng=EvenDraws()).start()
        reattach = {}
        for region in REGIONS:
            daemon = self.terraform.daemon(region)
            if daemon is not None:
                reattach[region] = daemon.reattach_env()["TF_REATTACH_PROVIDERS"]
        self.info = {
            "pid": os.getpid(),
            "aws": self.aws.url,
            "consul": self.consul_server.address,
            "marathon_proxy": self.fleet_server.url,
            "dns": self.dns.address,
            "terraform": self.terraform.terraform,
            "cli_config": str(self.terraform.cli_config),
            "reattach": reattach,
            "lb_port": self.dataplane.lb_port,
            "addresses": self.dataplane.lookup.url,
            "time_scale": self.time_scale,
            "proxy_health": self.proxy_health,
            "metric_period": self.dataplane.metric_period,
            "started_at": time.time(),
        }
        threading.Thread(target=self._sweeper, name="sweeper", daemon=True).start()
        return self.info

    def lb_address(self, dns_name: str) -> str | None:
        """The loopback address the load balancer named ``dns_name`` listens at."""
        return self.dataplane.lb_address(dns_name)

    def _sweeper(self) -> None:
        """Sweeps after every change of an instance, never on a timer."""
        while True:
            self._instances_changed.wait()
            if self._stop.is_set():
                return
            self._instances_changed.clear()
            try:
                self.marathons.sweep()
            except Exception:  # the sweeper must outlive a failed EC2 read
                log.exception("sweep failed")

    def _consul_probe_target(self, datacenter: str, kind: str, target: str) -> str | None:
        """Consul's checks of a task's private address go to its loopback endpoint."""
        from urllib.parse import urlsplit

        if kind == "http":
            parts = urlsplit(target)
            host, port = parts.hostname or "", parts.port or 80
        else:
            host, _, port_text = target.rpartition(":")
            port = int(port_text) if port_text.isdigit() else 0
        endpoint = self.dataplane.book.lookup(host, port, region=datacenter)
        if endpoint is None:
            return None
        if kind == "http":
            return parts._replace(netloc=f"{endpoint.host}:{endpoint.port}").geturl()
        return f"{endpoint.host}:{endpoint.port}"

    def stop(self) -> None:
        self._stop.set()
        self._instances_changed.set()
        for part in (self.terraform.stop, self.dns.stop, self.fleet_server.stop,
                     self.consul_server.stop, self.consul.close, self.ec2.close,
                     self.dataplane.stop, self.aws.stop):
            try:
                part()
            except Exception:
                log.exception("stopping %s failed", part)


def environment_document(info: dict[str, Any], state_path: str) -> dict[str, Any]:
    """The environment file that points rotator (and Terraform) at this world."""
    return {
        "name": "sandbox",
        "pid": info["pid"],
        "aws": {"endpoint_url": info["aws"],
                "credentials": {"access_key_id": "test", "secret_access_key": "test"}},
        "terraform": {
            "binary": info["terraform"],
            "cli_config_file": info["cli_config"],
            "reattach_providers_by_region": info["reattach"],
            "backend_config": emulator_backend(info["aws"]),
            "extra_env": {"AWS_EC2_METADATA_DISABLED": "true", **TOOL_ENV},
        },
        "marathon": {"proxy": info["marathon_proxy"], "anonymous": True},
        "consul": {"address": info["consul"], "anonymous": True},
        # the data plane publishes each period as it ends
        "cloudwatch": {"period": info["metric_period"], "delay": 1.0},
        # records are written with a short TTL here, so that retires wait seconds, not a
        # minute (every wait still counts from the TTL, whatever it is)
        "traffic": {"record_ttl": SANDBOX_RECORD_TTL},
        "state": {"backend": "file", "path": state_path},
        "sandbox_control": info["aws"],
        # `rotate serve`'s traffic charts: one point per period the world publishes
        "serve": {"chart_period": int(info.get("metric_period", 60))},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rotator.sandbox.world")
    parser.add_argument("--dir", default=".rotator/sandbox")
    parser.add_argument("--step-seconds", type=float, default=0.5,
                        help="how long each Marathon deployment step takes")
    parser.add_argument("--no-reattach", action="store_true")
    parser.add_argument("--proxy-health", choices=("proxy", "backends"), default=PROXY_HEALTH,
                        help="what a proxy instance's /health reflects")
    parser.add_argument("--time-scale", type=parse_time_scale, default=DEFAULT_TIME_SCALE,
                        help="sandbox seconds per AWS second for health checks and metric "
                             "periods (default 1/6: a 60 s period lasts 10 s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dump_stacks_on(signal.SIGUSR1)  # into world.log: what a stuck world is doing
    folder = Path(args.dir).resolve()
    world = World(folder, step_seconds=args.step_seconds, reattach=not args.no_reattach,
                  time_scale=args.time_scale, proxy_health=args.proxy_health)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        info = world.start()
        world.aws.wait_ready()
        keep_collections_short()  # moto is loaded: what stays for the world's lifetime
        sys.setswitchinterval(SWITCH_INTERVAL)
        tmp = folder / "world.json.tmp"
        tmp.write_text(json.dumps(info, indent=1))
        tmp.replace(folder / "world.json")
        log.info("sandbox up: %s", info)
        stop.wait()
    finally:
        world.stop()
        (folder / "world.json").unlink(missing_ok=True)
        log.info("sandbox stopped")


if __name__ == "__main__":
    main()
