"""A long-lived hashicorp/aws provider that Terraform reattaches to.

Terraform normally launches the provider 3-5 times per command (schema reads, then the
working instance); the real provider takes seconds to start. Started once with `-debug`,
it prints `TF_REATTACH_PROVIDERS`; every Terraform command given that variable talks to
the running process instead of launching one.

One daemon serves one set of credentials and one region family: commands configure the
provider per run, and concurrent runs share the process, so groups with different regions
or credentials need different daemons.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from rotator.errors import RotatorError
from rotator.identity import pid_alive

REATTACH_VAR = "TF_REATTACH_PROVIDERS"
STATE_FILE = "provider.json"

# The provider breaks on its second configuration in one process when a custom CA
# bundle is set ("unable to add custom RootCAs HTTPClient"); the emulator is plain HTTP.
_DROPPED_ENV = ("AWS_CA_BUNDLE", REATTACH_VAR, "TF_LOG", "TF_LOG_PATH")


class ProviderDaemonError(RotatorError):
    pass


class ProviderDaemon:
    """``ProviderDaemon(binary, env, workdir).start()``, then ``reattach_env()`` for every
    Terraform command, and ``stop()`` at the end. ``attach(workdir)`` finds one that
    another process started."""

    def __init__(self, binary: Path | str, env: Mapping[str, str], workdir: Path | str,
                 niceness: int = 0):
        self.binary = Path(binary)
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.niceness = niceness  # a lower CPU priority, through nice(1) where there is one
        self.pid: int | None = None
        self.reattach: dict | None = None
        self._proc: subprocess.Popen | None = None

    # -- life cycle --------------------------------------------------------

    def start(self, timeout: float = 60.0) -> ProviderDaemon:
        self.workdir.mkdir(parents=True, exist_ok=True)
        sockets = self.workdir / "sockets"
        if len(str(sockets)) > 64:
            # A unix socket path is limited to 107 bytes: a deep workdir gets a short one.
            sockets = Path(tempfile.mkdtemp(prefix="rotator-tfp-"))
        sockets.mkdir(exist_ok=True)
        out_path = self.workdir / "provider.out"
        env = {k: v for k, v in self.env.items() if k not in _DROPPED_ENV}
        # The provider makes its unix socket under TMPDIR: keep it where stop() cleans.
        env["TMPDIR"] = str(sockets)
        with open(out_path, "wb") as out, open(self.workdir / "provider.log", "ab") as log:
            nice = shutil.which("nice") if self.niceness else None
            prefix = [nice, "-n", str(self.niceness)] if nice else []
            self._proc = subprocess.Popen(
                [*prefix, str(self.binary), "-debug"],
                stdout=out,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.workdir,
                start_new_session=True,  # outlives Ctrl-C of the command that started it
            )
        self.pid = self._proc.pid
        deadline = time.monotonic() + timeout
        while True:
            self.reattach = _parse_reattach(out_path.read_text(errors="replace"))
            if self.reattach is not None:
                break
            if self._proc.poll() is not None:
                raise ProviderDaemonError(
                    f"provider {self.binary.name} exited with {self._proc.returncode} at "
                    f"start-up (log: {self.workdir / 'provider.log'})"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ProviderDaemonError(f"provider {self.binary.name} did not start in {timeout:.0f} s")
            time.sleep(0.05)
        state = {"pid": self.pid, "binary": str(self.binary), "reattach": self.reattach}
        tmp = self.workdir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.workdir / STATE_FILE)
        return self

    @classmethod
    def attach(cls, workdir: Path | str) -> ProviderDaemon | None:
        """The daemon recorded under ``workdir`` if it still runs and listens, else None."""
        workdir = Path(workdir)
        try:
            state = json.loads((workdir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        daemon = cls(state["binary"], {}, workdir)
        daemon.pid = int(state["pid"])
        daemon.reattach = state["reattach"]
        if not daemon.running():
            return None
        return daemon

    @property
    def started_here(self) -> bool:
        """Whether this object started the process (rather than attached to it)."""
        return self._proc is not None

    def running(self) -> bool:
        if self.pid is None or self.reattach is None:
            return False
        if self._proc is not None and self._proc.poll() is not None:
            return False
        if not pid_alive(self.pid):
            return False
        return all(Path(p).exists() for p in self.socket_paths())

    def socket_paths(self) -> list[str]:
        return [
            v["Addr"]["String"]
            for v in (self.reattach or {}).values()
            if v.get("Addr", {}).get("Network") == "unix"
        ]

    def reattach_env(self) -> dict[str, str]:
        """Environment that makes Terraform use this daemon instead of launching one."""
        if self.reattach is None:
            raise ProviderDaemonError("provider daemon not started")
        return {REATTACH_VAR: json.dumps(self.reattach)}

    def stop(self, timeout: float = 10.0) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc is not None:
                    if self._proc.poll() is not None:
                        break
                elif not pid_alive(self.pid):
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if self._proc is not None:
                    self._proc.wait()
        for path in self.socket_paths():
            parent = Path(path).parent
            # Only directories made for the socket (never a shared TMPDIR such as /tmp).
            if parent.name.startswith("rotator-tfp-") or parent == self.workdir / "sockets":
                shutil.rmtree(parent, ignore_errors=True)
        self.pid = None
        self.reattach = None
        self._proc = None
        shutil.rmtree(self.workdir / "sockets", ignore_errors=True)
        (self.workdir / STATE_FILE).unlink(missing_ok=True)


def _parse_reattach(text: str) -> dict | None:
    """The JSON of the provider's ``TF_REATTACH_PROVIDERS='...'`` line, once complete."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith(REATTACH_VAR + "="):
            continue
        value = line.split("=", 1)[1].strip().strip("'")
        try:
            parsed = json.loads(value)
        except ValueError:
            return None  # line still being written
        if isinstance(parsed, dict) and parsed:
            return parsed
    return None
