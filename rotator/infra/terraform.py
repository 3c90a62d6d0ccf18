"""The Terraform adapter: one group folder, one workspace per slot (``blue`` / ``green``).

Drives Terraform through python-terraform, whose argv building is kept but whose process
handling is replaced: python-terraform 0.10.1 only passes ``os.environ`` to Terraform,
logs commands and errors verbatim, prompts on apply, passes ``-force`` to destroy and a
positional directory that Terraform 1.x rejects. Here each command gets its own
environment (the group's credentials go to that group's processes only), never prompts,
and every word Terraform prints is redacted before it reaches a log or an error.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import python_terraform

from rotator.errors import InputError
from rotator.infra.stale_lock import left_by_dead_run
from rotator.infra.tf_errors import (
    Diagnostic,
    TerraformApplyError,
    TerraformConfigError,
    TerraformError,
    TerraformLocked,
    classify,
    errors_of,
    json_messages,
    parse_json_diagnostics,
    parse_text_diagnostics,
    redact,
)
from rotator.ports import OutputsIncomplete, PlanSummary, SlotOutputs

log = logging.getLogger(__name__)

SLOTS = ("blue", "green")
DEFAULT_WORKSPACE = "default"
# Names a local filesystem mirror of hashicorp/aws (for machines without the registry).
PROVIDER_MIRROR_SETTING = "ROTATOR_TF_PROVIDER_MIRROR"

# Inherited variables that would change what a command does behind the adapter's back.
_SCRUBBED_ENV = ("TF_WORKSPACE", "TF_DATA_DIR", "TF_REATTACH_PROVIDERS", "TF_LOG", "TF_LOG_PATH")
# Inherited AWS identity: a group's Terraform runs with the credentials its settings
# give, never with whatever the shell holds (a China group must not get global keys).
_SCRUBBED_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
)
_SECRET_ENV_HINTS = ("SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY")
# A placeholder that passes the groups' validation: destroy needs every variable set.
_PLACEHOLDER_AMI = "ami-00000000"


@dataclass(frozen=True)
class TerraformRun:
    """How to run one group's Terraform. Built by the caller per group."""

    terraform: str = "terraform"
    # Added to the environment of this group's Terraform processes only (credentials,
    # AWS_REGION, AWS_ENDPOINT_URL, TF_CLI_CONFIG_FILE, TF_REATTACH_PROVIDERS ...).
    env: Mapping[str, str] = field(default_factory=dict)
    backend_config: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    secret_variables: tuple[str, ...] = ()  # never shown: redacted from all output
    var_files: tuple[str, ...] = ()
    lock_timeout: float = 0.0  # seconds to wait for a held state lock
    data_dir: Path | None = None  # TF_DATA_DIR; default: <group>/.terraform
    parallelism: int | None = None
    inherit_env: bool = True  # start from os.environ (minus TF_* that change behaviour)

    def secrets(self) -> list[str]:
        values = [v for k, v in self.env.items() if any(h in k.upper() for h in _SECRET_ENV_HINTS)]
        values += [str(v) for k, v in self.variables.items()
                   if k in self.secret_variables or any(h in k.upper() for h in _SECRET_ENV_HINTS)]
        values += [
            str(v)
            for k, v in self.backend_config.items()
            if any(h.lower() in k.lower() for h in ("secret", "token", "access_key", "password"))
        ]
        return values


@dataclass(frozen=True)
class RunResult:
    rc: int
    out: str
    err: str


class _Terraform(python_terraform.Terraform):
    """python-terraform with its own process handling: per-command env, no logging."""

    def __init__(self, working_dir: str, binary: str, env: dict[str, str]):
        super().__init__(working_dir=working_dir, terraform_bin_path=binary)
        self._env = env

    def read_state_file(self, file_path=None):  # noqa: ARG002 - .terraform/terraform.tfstate is backend config
        self.tfstate = None

    def cmd(self, cmd, *args, **kwargs):
        kwargs.pop("capture_output", None)
        kwargs.pop("raise_on_error", None)
        kwargs.pop("synchronous", None)
        argv = self.generate_cmd_string(cmd, *args, **kwargs)
        try:
            return run_detached(argv, cwd=self.working_dir, env=self._env)
        finally:
            self.temp_var_files.clean_up()


def run_detached(argv: list[str], *, cwd: str, env: dict[str, str],
                 interrupt_grace: float = 120.0) -> tuple[int, str, str]:
    """Run Terraform so that it always finishes on its own terms.

    It gets a session of its own and writes to unlinked temporary files, not pipes: when
    ``rotate`` is killed, Terraform is neither signalled with it nor killed by SIGPIPE at
    its next line of output. It completes the apply, saves its state and releases its lock,
    and ``rotate resume`` finds a consistent workspace (it waits for the lock meanwhile).
    Interrupted here (Ctrl-C), Terraform is asked to stop gracefully, which also saves state.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)
        try:
            rc = _wait(proc)
        except BaseException:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(interrupt_grace)
            except subprocess.TimeoutExpired:
                pass  # it keeps its state lock until it is done; resume waits for it
            raise
        out.seek(0)
        err.seek(0)
        return (rc, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def _wait(proc: subprocess.Popen) -> int:
    # Short waits: a Ctrl-C caught by another thread is acted on within a moment.
    while True:
        try:
            return proc.wait(0.2)
        except subprocess.TimeoutExpired:
            continue


class TerraformInfrastructure:
    """``Infrastructure`` (rotator.ports) over one group's Terraform folder."""

    def __init__(self, group_dir: Path, *, group: str, settings: TerraformRun):
        self.group_dir = Path(group_dir).resolve()
        self.group = group
        self.settings = settings
        if not self.group_dir.is_dir():
            raise InputError("group folder not found", file=str(group_dir))
        self._data_dir = Path(settings.data_dir) if settings.data_dir else self.group_dir / ".terraform"
        self._init_lock = threading.Lock()
        self._initialised: str | None = None
        self._secrets = settings.secrets()
        self._known_workspaces: set[str] = set()  # workspaces are never deleted here

    # -- Infrastructure ----------------------------------------------------

    def provision(self, slot: str, ami: str) -> SlotOutputs:
        self._ensure_workspace(slot)
        out = self._apply(slot, self._variables(slot, ami))
        outputs = parse_apply_outputs(out)
        if outputs is None:  # an older Terraform without the outputs message
            outputs = self.read_outputs(slot)
        if outputs is None:
            raise TerraformError(f"{self.group}/{slot}: apply left no outputs")
        return outputs

    def read_outputs(self, slot: str) -> SlotOutputs | None:
        if slot not in self._workspaces(slot_check=slot) or not self.resources(slot):
            return None
        try:
            return parse_outputs(json.dumps(self._raw_outputs(slot)))
        except TerraformError as exc:  # Terraform leaves out outputs it never computed
            raise OutputsIncomplete(f"{self.group}/{slot}: {exc} in its state (an apply that "
                                    "did not finish)") from None

    def destroy(self, slot: str) -> None:
        if slot not in self._workspaces(slot_check=slot) or not self.resources(slot):
            return
        # Every variable needs a value, but the AMI does not matter to a destroy.
        self._apply(slot, self._variables(slot, _PLACEHOLDER_AMI), destroy=True)

    def plan(self, slot: str, ami: str) -> PlanSummary:
        """What an apply into ``slot`` would do; changes nothing, not even a workspace."""
        if slot in self._workspaces(slot_check=slot):
            return self._plan(slot, self._variables(slot, ami))
        return self._plan_new_slot(slot, self._variables(slot, ami))

    def _plan_new_slot(self, slot: str, variables: Mapping[str, Any]) -> PlanSummary:
        """Plan a slot that has no workspace yet against an empty local state: selecting
        the workspace in the real backend would create it. The root is copied beside the
        group's folder (its relative module paths still hold) with a local backend."""
        with tempfile.TemporaryDirectory(prefix=f".plan-{self.group}-",
                                         dir=self.group_dir.parent) as tmp:
            copy = Path(tmp)
            for tf in self.group_dir.glob("*.tf"):
                (copy / tf.name).write_bytes(tf.read_bytes())
            (copy / "rotator_plan_override.tf").write_text(
                'terraform {\n  backend "local" {}\n}\n')
            settings = dataclasses.replace(self.settings, backend_config={},
                                           data_dir=copy / ".terraform")
            scratch = TerraformInfrastructure(copy, group=self.group, settings=settings)
            return scratch._plan(slot, variables)

    def validate(self) -> None:
        """Refuse an invalid configuration (file:line) before any workspace or state changes.

        The verdict depends only on the files and settings that make the init fingerprint,
        so a configuration once found valid is not validated again (it costs seconds)."""
        marker = self._data_dir / "rotator-validated"
        fingerprint = self._fingerprint()
        if marker.exists() and marker.read_text() == fingerprint:
            return
        res = self._run(None, "validate")
        if res.rc != 0:
            self._raise_for(None, "validate", res)
        marker.write_text(fingerprint)

    def slots_with_resources(self) -> list[str]:
        existing = self._workspaces()
        return [s for s in SLOTS if s in existing and self.resources(s)]

    # -- more ----------------------------------------------------------------

    def resources(self, workspace: str) -> list[str]:
        """Resource addresses in a workspace's state (data sources excluded)."""
        if workspace != DEFAULT_WORKSPACE:
            _check_slot(workspace)
        res = self._run(workspace, "state list")
        if res.rc != 0:
            if "No state file was found" in res.err:
                return []
            self._raise_for(workspace, "state list", res)
        return [a for a in res.out.split() if not _is_data_source(a)]

    def init(self) -> None:
        """Run ``terraform init`` with the backend configuration (cached across calls)."""
        self._ensure_init(force=True)

    # -- internals -----------------------------------------------------------

    def _apply(self, workspace: str, variables: Mapping[str, Any], destroy: bool = False) -> str:
        """Apply (or destroy); return Terraform's ``-json`` lines.

        A lock left by a run of ours that was killed mid-apply is released once, so that
        resuming a crashed rotation does not wait for a holder that no longer exists."""
        try:
            return self._apply_once(workspace, variables, destroy)
        except TerraformLocked as exc:
            if not exc.lock.id or not left_by_dead_run(exc.lock.who, workspace, self.group_dir,
                                                           self._data_dir):
                raise
            log.warning("%s/%s: releasing state lock %s left by a dead run", self.group,
                        workspace, exc.lock.id)
            res = self._run(workspace, "force-unlock", "-force", exc.lock.id)
            if res.rc != 0:
                raise
            return self._apply_once(workspace, variables, destroy)

    def _apply_once(self, workspace: str, variables: Mapping[str, Any], destroy: bool) -> str:
        args = ("-destroy",) if destroy else ()
        res = self._run(
            workspace,
            "apply",
            *args,
            auto_approve=python_terraform.IsFlagged,  # never prompt
            input=False,
            json=python_terraform.IsFlagged,
            var=dict(variables) or None,
            **self._common_options(),
        )
        if res.rc != 0:
            self._raise_for(workspace, "destroy" if destroy else "apply", res, after_change=True)
        return res.out

    def _plan(self, workspace: str, variables: Mapping[str, Any]) -> PlanSummary:
        opts = self._common_options()
        opts.pop("parallelism", None)
        res = self._run(
            workspace,
            "plan",
            input=False,
            json=python_terraform.IsFlagged,
            detailed_exitcode=python_terraform.IsFlagged,
            var=dict(variables) or None,
            **opts,
        )
        if res.rc not in (0, 2):  # -detailed-exitcode: 2 means "there are changes"
            self._raise_for(workspace, "plan", res)
        return parse_plan(res.out)

    def _variables(self, slot: str, ami: str) -> dict[str, Any]:
        variables = dict(self.settings.variables)
        variables.update({"group": self.group, "slot": slot, "ami": ami})
        return variables

    def _common_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"lock_timeout": f"{int(self.settings.lock_timeout)}s"}
        if self.settings.var_files:
            opts["var_file"] = list(self.settings.var_files)
        if self.settings.parallelism:
            opts["parallelism"] = self.settings.parallelism
        return opts

    def _env(self, slot: str | None) -> dict[str, str]:
        env = dict(os.environ) if self.settings.inherit_env else {"PATH": os.environ.get("PATH", "")}
        for key in list(env):
            if (
                key in _SCRUBBED_ENV
                or key in _SCRUBBED_AWS_ENV
                or key.startswith(("TF_CLI_ARGS", "AWS_ENDPOINT_URL_"))
            ):
                del env[key]
        env.update(
            {
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
                "CHECKPOINT_DISABLE": "1",  # no version check calls home
                "TF_DATA_DIR": str(self._data_dir),
            }
        )
        env.update(self.settings.env)
        if slot is not None:
            env["TF_WORKSPACE"] = slot
        return env

    def _run(self, slot: str | None, command: str, *args: str, **options: Any) -> RunResult:
        if command != "init":
            self._ensure_init()
        tf = _Terraform(str(self.group_dir), self.settings.terraform, self._env(slot))
        rc, out, err = tf.cmd(command, *args, no_color=python_terraform.IsFlagged, **options)
        log.debug("terraform %s (%s/%s) -> rc %s", command, self.group, slot or "-", rc)
        return RunResult(rc, redact(out, self._secrets), redact(err, self._secrets))

    def _fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps(dict(self.settings.backend_config), sort_keys=True, default=str).encode())
        h.update(self.settings.terraform.encode())
        for tf in sorted(self.group_dir.glob("*.tf")):
            h.update(tf.name.encode() + tf.read_bytes())
        return h.hexdigest()

    def _ensure_init(self, force: bool = False) -> None:
        fingerprint = self._fingerprint()
        if self._initialised == fingerprint and not force:
            return
        with self._init_lock:
            if self._initialised == fingerprint and not force:
                return
            self._data_dir.mkdir(parents=True, exist_ok=True)
            marker = self._data_dir / "rotator-init"
            # Another process may be initialising the same folder: take turns.
            with open(self._data_dir / "rotator-init.lock", "w") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    done = marker.read_text() if marker.exists() else ""
                    if force or done != fingerprint:
                        self._init(fingerprint, marker)
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
            self._initialised = fingerprint

    def _init(self, fingerprint: str, marker: Path) -> None:
        tf = _Terraform(str(self.group_dir), self.settings.terraform, self._env(None))
        # Unmanaged (reattached) providers are not installed: init runs like a normal one.
        tf._env.pop("TF_REATTACH_PROVIDERS", None)
        backend = {k: _hcl_value(v) for k, v in self.settings.backend_config.items()}
        rc, out, err = tf.init(
            backend_config=backend or None,
            reconfigure=python_terraform.IsFlagged,
            no_color=python_terraform.IsFlagged,
            input=False,
        )
        if rc != 0:
            res = RunResult(rc, redact(out, self._secrets), redact(err, self._secrets))
            self._raise_init(res)
        marker.write_text(fingerprint)

    def _raise_init(self, res: RunResult) -> None:
        diags = [
            d
            for d in errors_of(parse_text_diagnostics(res.err) + parse_text_diagnostics(res.out))
            if not d.summary.startswith("Terraform encountered problems during initiali")
        ]
        text = "; ".join(d.render() for d in diags) or _tail(res.err or res.out)
        lowered = text.lower()
        if "hashicorp/aws" in lowered and (
            "failed to query available provider packages" in lowered
            or "failed to install provider" in lowered
            or "could not connect to registry" in lowered
        ):
            raise InputError(
                f"terraform init could not install the AWS provider ({text}); point "
                f"{PROVIDER_MIRROR_SETTING} at a filesystem mirror holding hashicorp/aws",
                field=PROVIDER_MIRROR_SETTING,
            )
        cls = classify(diags)
        if cls.kind == "config":
            raise TerraformConfigError(f"{self.group}: invalid Terraform: {text}", cls.diagnostics)
        raise TerraformError(f"{self.group}: terraform init failed: {text}", diags)

    def _workspaces(self, slot_check: str | None = None) -> set[str]:
        if slot_check is not None:
            _check_slot(slot_check)
        res = self._run(None, "workspace list")
        if res.rc != 0:
            self._raise_for(None, "workspace list", res)
        found = {line.strip(" *") for line in res.out.splitlines() if line.strip(" *")}
        self._known_workspaces |= found
        return found

    def _ensure_workspace(self, slot: str) -> None:
        """Create the slot's workspace explicitly: TF_WORKSPACE alone would create any
        name silently, so only the two slot names ever get here."""
        _check_slot(slot)
        if slot in self._known_workspaces or slot in self._workspaces():
            return
        res = self._run(None, "workspace new", slot)
        if res.rc != 0 and "already exists" not in (res.out + res.err):
            self._raise_for(None, "workspace new", res)
        self._known_workspaces.add(slot)

    def _raw_outputs(self, slot: str) -> dict[str, Any]:
        res = self._run(slot, "output", json=python_terraform.IsFlagged)
        if res.rc != 0:
            self._raise_for(slot, "output", res)
        return json.loads(res.out or "{}")

    def _raise_for(self, slot: str | None, what: str, res: RunResult, after_change: bool = False):
        diags = parse_json_diagnostics(res.out)
        if not errors_of(diags):
            diags = parse_text_diagnostics(res.err) + parse_text_diagnostics(res.out)
        cls = classify(diags, res.err + res.out)
        where = f"{self.group}/{slot}" if slot else self.group
        text = "; ".join(d.render() for d in cls.diagnostics) or _tail(res.err or res.out)
        if cls.kind == "locked":
            raise TerraformLocked(self.group, slot or "default", cls.lock)
        if cls.kind == "config":
            raise TerraformConfigError(f"{where}: invalid Terraform: {text}", cls.diagnostics)
        if after_change:
            try:
                created = self.resources(slot) if slot else []
            except TerraformError:
                created = []
            raise TerraformApplyError(
                f"{where}: terraform {what} failed: {_friendly(text, cls.diagnostics)}",
                created=created,
                diagnostics=cls.diagnostics,
            )
        raise TerraformError(f"{where}: terraform {what} failed: {text}", cls.diagnostics)


# --------------------------------------------------------------------------
# Parsing Terraform's machine-readable output


def parse_outputs(text: str) -> SlotOutputs:
    """``terraform output -json`` -> SlotOutputs (typed; missing outputs are an error)."""
    data = json.loads(text or "{}")

    def value(name: str, default: Any = None) -> Any:
        if name in data:
            return data[name].get("value")
        if default is not None:
            return default
        raise TerraformError(f"the group defines no output {name!r}")

    instances = value("instance_ids", {}) or {}
    addresses = value("private_ips", {}) or {}
    return SlotOutputs(
        marathon_url=str(value("marathon_url")),
        elb_name=str(value("elb_name")),
        elb_dns=str(value("elb_dns_name")),
        instances={str(role): [str(i) for i in ids] for role, ids in instances.items()},
        ami=str(value("ami", "")),
        private_ips={str(role): [str(i) for i in ips] for role, ips in addresses.items()},
    )


def parse_apply_outputs(text: str) -> SlotOutputs | None:
    """The outputs message of ``apply -json`` -> SlotOutputs, None when there is none."""
    found = None
    for msg in json_messages(text):
        if msg.get("type") == "outputs":
            found = msg.get("outputs")
    return parse_outputs(json.dumps(found)) if found else None


def parse_plan(text: str) -> PlanSummary:
    """``plan -json`` lines -> counts and ``+ address`` style resource lines."""
    add = change = destroy = 0
    lines: list[str] = []
    for msg in json_messages(text):
        kind = msg.get("type")
        if kind == "planned_change":
            ch = msg.get("change", {})
            action = ch.get("action", "")
            addr = ch.get("resource", {}).get("addr", "")
            sign = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "read": "<="}.get(
                action, action
            )
            lines.append(f"{sign} {addr}")
        elif kind == "change_summary":
            c = msg.get("changes", {})
            add, change, destroy = int(c.get("add", 0)), int(c.get("change", 0)), int(c.get("remove", 0))
    return PlanSummary(add=add, change=change, destroy=destroy, resources=lines)


def _check_slot(slot: str) -> None:
    if slot not in SLOTS:
        raise InputError(f"unknown slot {slot!r}: a slot is one of {', '.join(SLOTS)}", field="slot")


def _is_data_source(address: str) -> bool:
    return address.startswith("data.") or ".data." in address


def _hcl_value(value: Any) -> str:
    """A ``-backend-config=key=value`` value: maps in HCL syntax, booleans lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        inner = ",".join(f"{k}={json.dumps(str(v))}" for k, v in value.items())
        return "{" + inner + "}"
    return str(value)


def _tail(text: str, lines: int = 8) -> str:
    return " ".join(text.strip().splitlines()[-lines:])


def _friendly(text: str, diags: list[Diagnostic]) -> str:
    """Lead with the cause a user can act on when the cloud names one."""
    for d in diags:
        blob = f"{d.summary} {d.detail}"
        if "InvalidAMIID" in blob:
            return f"AMI not found in the group's region ({d.address or 'instance'}): {text}"
    return text


class TerraformRoot(TerraformInfrastructure):
    """A long-lived root in the default workspace (the edge: hosted zone, edge ELBs)."""

    def __init__(self, root_dir: Path, *, name: str, settings: TerraformRun):
        super().__init__(root_dir, group=name, settings=settings)

    def apply(self, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Apply; return the outputs as plain values."""
        self._apply(DEFAULT_WORKSPACE, {**self.settings.variables, **(variables or {})})
        return self.outputs()

    def outputs(self) -> dict[str, Any]:
        return {k: v.get("value") for k, v in self._raw_outputs(DEFAULT_WORKSPACE).items()}

    def plan_root(self, variables: Mapping[str, Any] | None = None) -> PlanSummary:
        return self._plan(DEFAULT_WORKSPACE, {**self.settings.variables, **(variables or {})})

    def destroy_root(self, variables: Mapping[str, Any] | None = None) -> None:
        if self.resources(DEFAULT_WORKSPACE):
            self._apply(DEFAULT_WORKSPACE, {**self.settings.variables, **(variables or {})}, destroy=True)
